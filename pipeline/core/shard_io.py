"""Opening the Arrow files a stage reads, with errors that name the file and what to do.

Every shard a stage reads from its upstream stage (document shards in clean, dedup and tokenize,
dedup's own work files, token shards in training and evaluation, fine-tuning's sample shards)
is opened here. A file that cannot be read is one line naming it (its URL for a run directory on
a bucket) and the stage to rerun, never pyarrow's bare `ArrowInvalid: Not an Arrow file`:

    /runs/r1/tokenize/train/shard-00000.arrow is unreadable (ArrowInvalid: Not an Arrow file):
    rerun the tokenize stage, which wrote it: delete /runs/r1/tokenize and run
    `lmpipe tokenize --output /runs/r1` again (with the run's --config)

`DamagedFile` is an `ArrowInvalid` and `MissingFile` a `FileNotFoundError`, so the stages that
record an unreadable upstream shard as one rejected row (`unreadable_shard`) keep doing so, with
this line as the row's detail. `mirror.fetch` raises `MissingFile` for an object its bucket does
not have. The stage is the nearest directory above the file named like a stage
(`pipeline.stages.STAGE_ORDER`); its parent is the run directory.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa

from pipeline.io import mirror
from pipeline.stages import STAGE_ORDER, upstream


class DamagedFile(pa.ArrowInvalid):
    """An Arrow file a stage reads is not readable; the message names it and the stage to rerun."""


class MissingFile(FileNotFoundError):
    """A file (or a bucket's object) a stage reads is not there; the message names it and the
    stage to rerun."""


UNREADABLE = (DamagedFile, MissingFile)
"""The errors of this module: one line each, shown as they are (`lmpipe`'s USER_ERRORS)."""


def written_by(location: str | os.PathLike) -> tuple[str, str, str] | None:
    """(stage, stage directory, run directory) of the file at `location` (a path or URL), as
    the user names them: the nearest directory above it named like a stage; None if none is."""
    text = str(location)
    if "://" in text:
        proto, rest = text.split("://", 1)
        parts, first = rest.split("/"), 1  # parts[0] is the bucket
    else:
        proto, parts, first = "", list(Path(text).parts), 0

    def join(head: list[str]) -> str:
        if proto:
            return f"{proto}://" + "/".join(head)
        return str(Path(*head)) if head else "."

    for i in range(len(parts) - 2, first - 1, -1):  # the directories above the file
        if parts[i] in STAGE_ORDER:
            return parts[i], join(parts[: i + 1]), join(parts[:i])
    return None


def rerun_advice(location: str | os.PathLike) -> str:
    """What to do about a damaged or missing file: rerun the stage that wrote it, from scratch
    (a finished stage is otherwise skipped: its manifest still matches)."""
    found = written_by(location)
    if found is None:
        return (
            "rerun the stage that wrote it (delete its directory first: a finished stage is"
            " otherwise skipped)"
        )
    name, stage_dir, run = found
    given = "--config" if upstream(name) else "--config and --input"  # ingest: the inputs
    return (
        f"rerun the {name} stage, which wrote it: delete {stage_dir} and run"
        f" `lmpipe {name} --output {run}` again (with the run's {given})"
    )


def damaged(path: str | os.PathLike, detail: str) -> DamagedFile:
    """The error for a file at `path` (a local or mirror path) that cannot be read."""
    where = mirror.location(path)
    return DamagedFile(f"{where} is unreadable ({detail}): {rerun_advice(where)}")


def missing(path: str | os.PathLike) -> MissingFile:
    """The error for a file at `path` (a local or mirror path, or a URL) that is not there."""
    where = mirror.location(path) if "://" not in str(path) else str(path)
    return MissingFile(
        f"{where} not found (deleted after its stage finished?): {rerun_advice(where)}"
    )


def _detail(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"


@contextlib.contextmanager
def reading(path: str | os.PathLike) -> Iterator[None]:
    """Inside the block, an error reading the file at `path` becomes a `DamagedFile` or
    `MissingFile` naming it. Refused access is not damage: a PermissionError passes through."""
    try:
        yield
    except UNREADABLE:
        raise
    except FileNotFoundError:
        raise missing(path) from None
    except PermissionError:
        raise
    except (OSError, pa.ArrowException, IndexError) as exc:
        raise damaged(path, _detail(exc)) from exc


def open_arrow(path: str | os.PathLike, memory_map: bool = True) -> pa.ipc.RecordBatchFileReader:
    """An Arrow IPC file's reader (memory-mapped unless `memory_map` is False)."""
    with reading(path):
        return pa.ipc.open_file(pa.memory_map(str(path)) if memory_map else str(path))


def arrow_batches(path: str | os.PathLike) -> Iterator[pa.RecordBatch]:
    """The record batches of an Arrow IPC file, read one at a time."""
    with reading(path):
        reader = pa.ipc.open_file(pa.memory_map(str(path)))
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)


def read_arrow(
    path: str | os.PathLike, columns: Sequence[str] | None = None, memory_map: bool = True
) -> pa.Table:
    """A whole Arrow IPC file as a table (only `columns`, if given)."""
    with reading(path):
        table = open_arrow(path, memory_map).read_all()
        return table.select(list(columns)) if columns is not None else table


def first_batch(path: str | os.PathLike) -> pa.RecordBatch:
    """The first record batch of a one-batch file (a token shard), memory-mapped."""
    with reading(path):
        reader = open_arrow(path)
        if reader.num_record_batches == 0:
            raise damaged(path, "no record batch")
        return reader.get_batch(0)
