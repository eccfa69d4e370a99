"""Issue 33 row 14: a shard a stage reads that is truncated or gone is one line naming the file and
the stage to rerun, wherever it is opened (`pipeline/core/shard_io.py`), not `ArrowInvalid: Not an
Arrow file` with no path."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from flows.cli import error_line
from pipeline.ablate.evalset import eval_documents
from pipeline.core.shard_io import DamagedFile, MissingFile, rerun_advice, written_by
from pipeline.dedup.references import count_rows
from pipeline.evaluate.tasks import val_documents
from pipeline.finetune.data import read_split
from pipeline.pretrain.data import TokenStream
from pipeline.pretrain.launch import check_enough_tokens
from pipeline.tokenize.shards import load_token_shard, read_token_index, write_token_shard
from tests.pretrain.token_shards import train_tokenizer


def _write(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with pa.ipc.new_file(str(path), table.schema) as writer:
        writer.write_table(table)


@pytest.fixture
def run(tmp_path) -> Path:
    """A run directory with whole files of each kind a stage reads: token shards and their
    index (tokenize), the tokenizer, fine-tuning's sample shards, dedup's documents."""
    run = tmp_path / "runs" / "r1"
    texts = ["The cat sat on the mat. " * 20, "A dog ran in the park today. " * 20]
    tok = train_tokenizer(texts, 300)
    for split in ("train", "val"):
        (run / "tokenize" / split).mkdir(parents=True)
    tok.save(str(run / "tokenize" / "tokenizer.json"))
    for split in ("train", "val"):
        ids = [tok.encode(t).ids for t in texts]
        lengths = np.array([len(i) + 1 for i in ids], np.int64)
        tokens = np.concatenate([np.array([*i, 0], np.uint16) for i in ids])  # EOD is id 0
        write_token_shard(run / "tokenize" / split, "shard-00000", tokens, ["d0", "d1"], lengths)
    samples = pa.table({"id": ["s"], "input_ids": [[1, 2, 3]], "trained": [[False, True, True]]})
    _write(run / "finetune" / "data" / "val.arrow", samples)
    docs = pa.table({"id": ["a", "b", "c"], "url": ["u"] * 3, "text": texts + ["x"]})
    _write(run / "dedup" / "part-00000.arrow", docs)
    return run


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # cut mid-file: the footer is gone


# (file to damage, the stage that wrote it, the reader that must name it)
READERS: dict[str, tuple[str, str, Callable[[Path], object]]] = {
    "training's token stream": (
        "tokenize/train/shard-00000.arrow",
        "tokenize",
        lambda run: TokenStream(run / "tokenize" / "train"),
    ),
    "the launcher's token count": (
        "tokenize/val/shard-00000.arrow",
        "tokenize",
        lambda run: check_enough_tokens(run / "tokenize", 8, 1),
    ),
    "a token shard": (
        "tokenize/val/shard-00000.arrow",
        "tokenize",
        lambda run: load_token_shard(run / "tokenize" / "val" / "shard-00000.arrow"),
    ),
    "a token shard's index": (
        "tokenize/val/shard-00000.index.arrow",
        "tokenize",
        lambda run: read_token_index(run / "tokenize" / "val" / "shard-00000.arrow"),
    ),
    "evaluate's cloze texts": (
        "tokenize/val/shard-00000.arrow",
        "tokenize",
        lambda run: list(val_documents(run)),
    ),
    "evaluate's and fine-tuning's samples": (
        "finetune/data/val.arrow",
        "finetune",
        lambda run: read_split(run / "finetune", "val"),
    ),
    "the ablation's eval set": (
        "dedup/part-00000.arrow",
        "dedup",
        lambda run: eval_documents(run / "dedup", 1.0),
    ),
    "a dedup reference's index": (
        "dedup/part-00000.arrow",
        "dedup",
        lambda run: count_rows(run / "dedup" / "part-00000.arrow"),
    ),
}


# Readers of a directory's listing; "the samples": an absent file is an empty split.
LISTING = (
    "training's token stream",
    "the launcher's token count",
    "evaluate's cloze texts",
    "evaluate's and fine-tuning's samples",
    "the ablation's eval set",
)


@pytest.mark.parametrize("reader", READERS)
def test_a_truncated_file_is_one_line_naming_it_and_the_stage_to_rerun(run, reader):
    name, stage, read = READERS[reader]
    read(run)  # whole: it reads
    path = run / name
    _truncate(path)
    with pytest.raises(DamagedFile) as err:
        read(run)
    assert str(err.value) == (
        f"{path} is unreadable (ArrowInvalid: Not an Arrow file): rerun the {stage} stage, which"
        f" wrote it: delete {run / stage} and run `lmpipe {stage} --output {run}` again (with"
        " the run's --config)"
    )
    assert isinstance(err.value, pa.ArrowInvalid)  # the stages' `except` clauses still see it
    assert error_line(err.value) == str(err.value)  # what `lmpipe` prints: the message alone

    if reader in LISTING:
        return  # they read the shards they find: a deleted one makes a split short or empty
    path.unlink()
    with pytest.raises(MissingFile) as gone:
        read(run)
    assert str(gone.value).startswith(f"{path} not found (deleted after its stage finished?): ")
    assert f"rerun the {stage} stage, which wrote it: delete {run / stage} and" in str(gone.value)


def test_whole_files_read_as_before(run):
    assert [d.id for d in eval_documents(run / "dedup", 1.0)] == ["c", "a", "b"]  # by id hash
    assert count_rows(run / "dedup" / "part-00000.arrow") == 3
    assert read_split(run / "finetune", "val") == ([[1, 2, 3]], [[False, True, True]])
    texts = list(val_documents(run))
    assert len(texts) == 2 and texts[0].startswith("The cat sat")
    stream = TokenStream(run / "tokenize" / "train")
    assert len(stream) == sum(len(a) for a in stream.arrays) > 0


def test_a_token_shard_of_another_schema_names_the_file(run):
    path = run / "tokenize" / "train" / "shard-00000.arrow"
    _write(path, pa.table({"tokens": pa.array([1, 2, 3], pa.int64())}))
    with pytest.raises(DamagedFile, match="expected one uint16/uint32 column `tokens`") as err:
        TokenStream(run / "tokenize" / "train")
    assert str(err.value).startswith(f"{path} is unreadable (")
    assert "rerun the tokenize stage, which wrote it" in str(err.value)


def test_the_stage_is_the_nearest_directory_named_like_one():
    assert written_by("/data/clean/r1/ingest/x-00000.arrow") == (
        "ingest",
        "/data/clean/r1/ingest",
        "/data/clean/r1",
    )
    assert written_by("s3://b/runs/r1/tokenize/val/shard-00000.arrow") == (
        "tokenize",
        "s3://b/runs/r1/tokenize",
        "s3://b/runs/r1",
    )
    assert written_by("runs/r1/dedup/_work/links.arrow") == ("dedup", "runs/r1/dedup", "runs/r1")
    assert written_by("tokenize/train/shard-00000.arrow") == ("tokenize", "tokenize", ".")
    assert written_by("s3://tokenize/shard.arrow") is None  # a bucket is no stage directory
    assert written_by("/data/shards/x.arrow") is None
    assert rerun_advice("/data/shards/x.arrow") == (
        "rerun the stage that wrote it (delete its directory first: a finished stage is otherwise"
        " skipped)"
    )
    # ingest reads the run's inputs, which the rerun needs as well
    assert rerun_advice("/r/ingest/x.arrow").endswith("(with the run's --config and --input)")


def test_a_damaged_file_in_a_stage_that_keeps_going_is_its_rejected_row(run):
    """clean, dedup and tokenize record an unreadable upstream shard as one rejected row: its
    detail is the same line."""
    from pipeline.core.stage import fingerprint, write_manifest
    from pipeline.tokenize import TokenizeConfig, run_tokenize
    from tests.helpers import read_shards

    dedup = run / "dedup"
    _write(dedup / "part-00001.arrow", pa.table({"id": ["z"], "url": ["u"], "text": ["zz"]}))
    _truncate(dedup / "part-00001.arrow")
    write_manifest(dedup, stage="dedup", output_fingerprint=fingerprint("two shards"))
    cfg = TokenizeConfig(tokenizer_path=str(run / "tokenize" / "tokenizer.json"), workers=1)
    result = run_tokenize(cfg, dedup, run / "tokenize2")
    assert result.reasons == {"unreadable_shard": 1}
    (row,) = [r for r in read_shards(run / "tokenize2" / "rejected").to_pylist()]
    assert row["url"] == "part-00001.arrow"
    assert row["detail"] == (
        f"{dedup / 'part-00001.arrow'} is unreadable (ArrowInvalid: Not an Arrow file): rerun"
        f" the dedup stage, which wrote it: delete {dedup} and run `lmpipe dedup --output"
        f" {run}` again (with the run's --config)"
    )
    assert json.loads((run / "tokenize2" / "manifest.json").read_text())["counts"]["documents"]
