"""Shared pieces of the run-directory-on-a-bucket tests: the data stages in-process, and the
digests of a run's shards, local or in a bucket."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipeline.config import load_config
from pipeline.core.layout import RunLayout
from pipeline.core.stage import StageResult
from pipeline.exec.parallel import ParallelConfig
from pipeline.ingest import run_ingest
from pipeline.stages import DATA_STAGES, active, call_args, stage
from pipeline.tokenize import run_tokenize
from tests.conftest import REPO, SAMPLE_WARC

INSTRUCTIONS = REPO / "data" / "sample" / "python-docs-instructions.jsonl"

# Small units, so a kill during clean finds some finished and some not.
SETS = ["clean.unit_documents=60", "ingest.shard_max_records=100", "tokenize.vocab_size=512"]


def upload_inputs(s3, copies: int = 2) -> str:
    """`copies` of the sample WARC in a fresh bucket; the glob that names them."""
    bucket = s3.bucket()
    client = s3.client()
    for i in range(copies):
        client.upload_file(str(SAMPLE_WARC), bucket, f"crawl-{i}.warc.gz")
    return f"s3://{bucket}/*.warc.gz"


def data_stages(
    inputs: str, run_dir: str, parallel: ParallelConfig | None = None, sets: list[str] = ()
) -> list[StageResult]:
    """Every data stage `sets` switch on (ingest -> clean -> dedup -> tokenize by default) into
    `run_dir` (a path or a URL), without Prefect, as the data flow calls them."""
    cfg = load_config(None, [f"inputs=[{json.dumps(inputs)}]", *SETS, *sets])
    return [
        stage(name).runner()(*call_args(name, cfg, run_dir), parallel=parallel)
        for name in active(cfg)
        if name in DATA_STAGES
    ]


def optional_stage_sets(tmp_path: Path) -> list[str]:
    """`--set`s that switch on the optional corpus stages too: decontaminate against five of the
    bundled instruction set's records (answers taken from the sample's pages: some pages are
    contaminated), the learned quality stage (that instruction set its reference, keeping 90%)."""
    eval_set = tmp_path / "eval-set.jsonl"
    with INSTRUCTIONS.open() as fh:
        records = [r for r in map(json.loads, fh) if "instruction" in r][:5]
    items = [{"question": r["instruction"], "answer": r["output"]} for r in records]
    eval_set.write_text("".join(json.dumps(item) + "\n" for item in items))
    return [
        "decontaminate.enabled=true",
        f"decontaminate.eval_sets=[{json.dumps(str(eval_set))}]",
        "quality.enabled=true",
        f"quality.reference=[{json.dumps(str(INSTRUCTIONS))}]",
        "quality.keep_fraction=0.9",  # the sample's pages are good: drop the lowest tenth
    ]


def bucket_digest(s3, url: str) -> dict[str, str]:
    """sha256 of every `.arrow` object under `url`, by key relative to it (as `tree_digest`)."""
    bucket, prefix = url.removeprefix("s3://").split("/", 1)
    client = s3.client()
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".arrow"):
                body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                found[obj["Key"][len(prefix) + 1 :]] = hashlib.sha256(body).hexdigest()
    return dict(sorted(found.items()))


def keys(s3, url: str) -> list[str]:
    bucket, prefix = url.removeprefix("s3://").split("/", 1)
    listing = s3.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return [o["Key"][len(prefix) + 1 :] for o in listing.get("Contents", [])]


def local_digest(run_dir: Path) -> dict[str, str]:
    from tests.helpers import tree_digest

    return tree_digest(run_dir)


def sample_dedup_dir(root: Path) -> Path:
    """`<root>/dedup`: the sample's 350 pages as text, in 2 dedup-shaped shards (a stand-in for
    the data stages: tokenize then runs as it does in a run)."""
    from resiliparse.extract.html2text import extract_plain_text

    from pipeline.ingest import IngestConfig
    from tests.helpers import read_shards
    from tests.tokenize.conftest import write_dedup_dir

    run_ingest(IngestConfig(workers=1), [str(SAMPLE_WARC)], root / "ingest")
    table = read_shards(root / "ingest")
    rows = zip(*(table.column(c).to_pylist() for c in ("id", "url", "raw")))
    docs = [{"id": i, "url": u, "text": extract_plain_text(raw)} for i, u, raw in rows]
    write_dedup_dir(root / "dedup", docs, n_shards=2)
    return root / "dedup"


def tokenize_on_bucket(dedup_dir: Path, run_url: str) -> StageResult:
    """A tokenize stage in the bucket run `run_url`, written by `run_tokenize` from `dedup_dir`."""
    from pipeline.tokenize import TokenizeConfig

    cfg = TokenizeConfig(vocab_size=1024, val_fraction=0.2, workers=1)
    return run_tokenize(cfg, dedup_dir, RunLayout(run_url).tokenize)
