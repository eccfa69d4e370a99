"""Python values to Arrow columns, built from buffers: no per-value conversion, no pandas import.

`pa.array(list)` imports pandas the first time it runs in a process (to ask whether the list is a
pandas object: apache/arrow#34994): 0.5-0.7 CPU-s in every fresh worker process, more than a worker
spends reading a 5 MB WARC. It also converts and checks every string one by one, although the
shard writers' strings are mostly payloads already known to be UTF-8. `column` builds the arrays
the shard writers need (strings and binaries, integers and floats, timestamps from datetimes)
from their buffers, with the values and validity bitmaps `pa.array` would give, so the shards are
byte-identical; anything else, or a value of an unexpected type, goes to `pa.array`.
"""

from __future__ import annotations

import calendar
from datetime import datetime

import numpy as np
import pyarrow as pa

_OFFSETS = {
    pa.string(): np.int32,
    pa.binary(): np.int32,
    pa.large_string(): np.int64,
    pa.large_binary(): np.int64,
}
_UTF8 = (pa.string(), pa.large_string())
_INTS = "int8 int16 int32 int64 uint8 uint16 uint32 uint64"
# Each number type, the NumPy type of its values and the Python type they are given as.
_NUMBERS = {
    **{getattr(pa, name)(): (np.dtype(name), int) for name in _INTS.split()},
    pa.float32(): (np.dtype("float32"), float),
    pa.float64(): (np.dtype("float64"), float),
}


def record_batch(columns: dict[str, list], schema: pa.Schema) -> pa.RecordBatch:
    """A record batch of `schema` from one list of values per field."""
    arrays = [column(columns[field.name], field.type) for field in schema]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def column(values: list, type: pa.DataType) -> pa.Array:
    """`pa.array(values, type)`, from buffers where the type and the values allow it."""
    if type in _OFFSETS:
        built = _binary(values, type)
    elif type in _NUMBERS:
        built = _numbers(values, type)
    elif pa.types.is_timestamp(type) and type.unit == "s":
        built = _seconds(values, type)
    else:
        built = None
    return pa.array(values, type) if built is None else built


def _validity(values: list) -> tuple[pa.Buffer | None, int]:
    """The validity bitmap (None when nothing is null) and the null count."""
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    nulls = len(values) - int(valid.sum())
    if not nulls:
        return None, 0
    return pa.py_buffer(np.packbits(valid, bitorder="little")), nulls


def _binary(values: list, type: pa.DataType) -> pa.Array | None:
    parts: list[bytes] = []
    unchecked = False  # bytes in a string column: UTF-8 not yet known
    for v in values:
        if v is None:
            parts.append(b"")
        elif v.__class__ is str:
            parts.append(v.encode("utf-8"))  # a lone surrogate raises, as in pa.array
        elif v.__class__ is bytes:
            parts.append(v)
            unchecked = True
        else:
            return None
    dtype = _OFFSETS[type]
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, parts), np.int64, len(parts)), out=offsets[1:])
    if offsets[-1] > np.iinfo(dtype).max:
        return None  # too big for 32-bit offsets: pa.array chunks it
    validity, nulls = _validity(values)
    data = pa.py_buffer(b"".join(parts))
    offs = pa.py_buffer(offsets.astype(dtype, copy=False))
    array = pa.Array.from_buffers(type, len(parts), [validity, offs, data], null_count=nulls)
    if unchecked and type in _UTF8:
        array.validate(full=True)  # invalid UTF-8 raises ArrowInvalid, as in pa.array
    return array


def _numbers(values: list, type: pa.DataType) -> pa.Array | None:
    dtype, kind = _NUMBERS[type]
    if not all(v is None or v.__class__ is kind for v in values):
        return None  # bool, numpy scalars, ints for floats...: pa.array decides
    try:
        data = np.array([0 if v is None else v for v in values], dtype=dtype)
    except OverflowError:
        return None  # pa.array raises its own error
    return _fixed_width(type, values, data)


def _seconds(values: list, type: pa.DataType) -> pa.Array | None:
    if not all(v is None or v.__class__ is datetime for v in values):
        return None
    # The UTC wall time, whole seconds (microseconds dropped); a naive datetime counts as UTC.
    seconds = [0 if v is None else calendar.timegm(v.utctimetuple()) for v in values]
    return _fixed_width(type, values, np.array(seconds, dtype=np.int64))


def _fixed_width(type: pa.DataType, values: list, data: np.ndarray) -> pa.Array:
    validity, nulls = _validity(values)
    buffers = [validity, pa.py_buffer(data)]
    return pa.Array.from_buffers(type, len(values), buffers, null_count=nulls)
