"""`pipeline.core.columns` builds the arrays `pa.array` would (same IPC bytes, same errors), without
importing pandas; the shard writer built on it writes in a thread and reports its errors."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa
import pytest

from pipeline.core.columns import column
from pipeline.core.stage import ShardWriter

UTC8 = timezone(timedelta(hours=8))
CASES = [
    (["a", None, "é", "", b"xyz", "\u2014x"], pa.large_string()),
    (["a", None, "é"], pa.string()),
    ([None, None], pa.large_string()),
    ([], pa.string()),
    ([b"\x00\xff", None, "é"], pa.binary()),
    ([b"\x00\xff", None], pa.large_binary()),
    ([1, None, -5, 32767], pa.int16()),
    ([2**40, 2], pa.int64()),
    ([None], pa.uint32()),
    ([1.5, None, float("nan")], pa.float32()),
    ([0.1, None], pa.float64()),
    ([1, 2], pa.float64()),  # ints for floats: left to pa.array
    ([[1, 2], None], pa.list_(pa.int32())),  # not built here: pa.array
    (
        [
            datetime(2020, 1, 1, tzinfo=UTC),
            None,
            datetime(1960, 5, 5, 3, 4, 5, 999999, tzinfo=UTC),
            datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
            datetime(2021, 3, 3, 1, 2, 3, 500000),  # naive: taken as UTC
            datetime(2021, 3, 3, 1, 2, 3, tzinfo=UTC8),
        ],
        pa.timestamp("s", tz="UTC"),
    ),
    ([datetime(2021, 3, 3, 1, 2, 3, tzinfo=UTC8), None], pa.timestamp("s")),
]


def _ipc(array: pa.Array) -> bytes:
    schema = pa.schema([("c", array.type)])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as w:
        w.write_batch(pa.RecordBatch.from_arrays([array], schema=schema))
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize(("values", "arrow_type"), CASES, ids=lambda c: str(c)[:30])
def test_the_same_bytes_as_pa_array(values, arrow_type):
    built, reference = column(values, arrow_type), pa.array(values, arrow_type)
    assert built.null_count == reference.null_count
    assert _ipc(built) == _ipc(reference)


@pytest.mark.parametrize(
    ("values", "arrow_type"),
    [
        (["\ud800"], pa.string()),  # a lone surrogate
        ([b"\xff"], pa.large_string()),  # bytes that are not UTF-8
        ([70000], pa.int16()),
        ([-1], pa.uint8()),
        ([1], pa.string()),
        ([True], pa.int16()),
    ],
)
def test_the_same_errors_as_pa_array(values, arrow_type):
    with pytest.raises(Exception) as expected:
        pa.array(values, arrow_type)
    with pytest.raises(type(expected.value)):
        column(values, arrow_type)


def test_writing_a_shard_imports_no_pandas(tmp_path):
    # pa.array imports pandas on its first call in a process: 0.5-0.7 CPU-s in every worker.
    code = (
        "import sys; from pathlib import Path; from pipeline.ingest.events import DOCUMENT_SCHEMA;"
        "from pipeline.core.stage import ShardWriter;"
        f"w = ShardWriter(Path({str(tmp_path)!r}), 'x', DOCUMENT_SCHEMA);"
        "w.write({'id': 'a', 'raw': b'<html>', 'http_status': 200}); w.close();"
        "assert 'pandas' not in sys.modules, 'pandas imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (tmp_path / "x-00000.arrow").exists()


def test_a_failed_batch_write_is_raised_and_aborted(tmp_path):
    schema = pa.schema([("id", pa.string())])
    writer = ShardWriter(tmp_path, "x", schema, batch_records=1)
    writer.write({"id": "a"})  # opens the shard, writes the batch in the writer thread
    writer._writer.close()  # the next write fails like a lost disk would
    with pytest.raises(Exception):  # noqa: B017 (Arrow's error for a closed writer)
        writer.write({"id": "b"})
        writer.close()
    writer.abort()
    assert not list(tmp_path.iterdir())
