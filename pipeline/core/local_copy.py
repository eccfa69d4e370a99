"""Training a run directory on an object store, on a local copy its launcher pulls and pushes.

A training process memory-maps token shards and writes checkpoints with `os.replace`, on every
rank: it works on local disk. For a run directory on a bucket (`s3://...`) the launcher
(`launch_pretrain`, `launch_finetune`) pulls what the stage reads into this node's mirror
(`pipeline/io/mirror.py`), each file checked against the sha256 its stage's manifest records, and
the state a killed run left in the bucket; it starts the process with `LMPIPE_LOCAL_COPY=1`
(mirror paths are plain paths there: no rank touches the bucket), uploads the checkpoints while
it trains and the whole stage, manifest last, when it ends. For a local run directory every
function here does nothing. Launchers call these and never the mirror: the stage skeleton's
storage (`pipeline/core/stage.py`) for the training stages.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipeline.core.stage import MANIFEST, PROGRESS_DIR, file_sha256, fingerprint
from pipeline.io import mirror
from pipeline.io.mirror import LOCAL_COPY_ENV

PUSH_SECONDS_ENV = "LMPIPE_PUSH_SECONDS"
"""How often checkpoints go up while training, in seconds (default 30): a kill loses less."""
STAMP = f"{PROGRESS_DIR}/_run.json"


def on_bucket(path: str | Path) -> bool:
    return mirror.remote_url(path) is not None


def process_env(stage_dir: Path) -> dict[str, str]:
    """What the training process's environment adds: for a bucket's stage, `LMPIPE_LOCAL_COPY`."""
    return {LOCAL_COPY_ENV: "1"} if on_bucket(stage_dir) else {}


def pull_tokenize(tokenize_dir: Path) -> None:
    """The tokenizer and token shards of a bucket's tokenize stage in this node's mirror, each
    verified by the sha256 its manifest records (a file already there with it is not fetched
    again), with the manifest itself: what `run_pretrain` reads, as a local directory."""
    if not on_bucket(tokenize_dir):
        return
    from pipeline.tokenize.shards import SPLITS, token_sha256, token_shard_paths  # numpy: only now

    manifest = _pull_tokenizer(tokenize_dir)
    for split in SPLITS:
        stats = manifest[split]["shard_stats"]
        wanted = {s["shard"] for s in stats}
        for stale in token_shard_paths(tokenize_dir / split):  # of an earlier tokenize run
            if stale.name not in wanted:
                stale.unlink()
        for shard in stats:
            mirror.pull(tokenize_dir / split / shard["shard"], shard["sha256"], token_sha256)


def _pull_tokenizer(tokenize_dir: Path) -> dict[str, Any]:
    """A bucket's tokenize manifest and its tokenizer (checked by its sha256) in the mirror."""
    text = mirror.read_text(tokenize_dir / MANIFEST)
    manifest = json.loads(text)
    tok = manifest["tokenizer"]
    mirror.pull(tokenize_dir / tok["path"], tok["fingerprint"], file_sha256)
    _write_local(tokenize_dir / MANIFEST, text)
    return manifest


def pull_pretrained(pretrain_dir: Path, tokenize_dir: Path) -> None:
    """What fine-tuning reads of a bucket's run in this node's mirror: the tokenizer and the
    pretrained weights and model config, with both manifests; the weights checked against the
    pretrain manifest's `output_fingerprint` (their sha256's first 16 digits), the model config
    against its `model_config`."""
    if not on_bucket(pretrain_dir):
        return
    from pipeline.model.io import CONFIG

    _pull_tokenizer(tokenize_dir)
    text = mirror.read_text(pretrain_dir / MANIFEST)
    if text is None:  # the launcher checked the upstream stage first; a race is still an error
        raise FileNotFoundError(f"{mirror.location(pretrain_dir)} has no manifest.json")
    manifest = json.loads(text)
    weights, expected = pretrain_dir / manifest["weights"], manifest["output_fingerprint"]
    mirror.pull(weights, expected, lambda p: file_sha256(p)[: len(expected)])
    mirror.pull(pretrain_dir / CONFIG, fingerprint(manifest["model_config"]), _json_fingerprint)
    _write_local(pretrain_dir / MANIFEST, text)


def _json_fingerprint(path: Path) -> str:
    try:
        return fingerprint(json.loads(path.read_text()))
    except ValueError:
        return ""


def _write_local(path: Path, text: str) -> None:
    """Write a mirror file without uploading it (it came from the bucket)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def pull_training_state(stage_dir: Path) -> int:
    """Before a bucket's training stage starts: what a killed run left in the bucket (its stamp,
    checkpoints, metrics, MLflow run), so the process resumes as it would on the node that was
    killed. A node copy of another start (another stamp) is dropped first; the bucket's
    manifest, of an earlier config, goes (the stage is about to be rewritten)."""
    if not on_bucket(stage_dir):
        return 0
    mirror.remove(stage_dir / MANIFEST)
    theirs, mine = mirror.read_text(stage_dir / STAMP), stage_dir / STAMP
    if theirs is None or not mine.is_file() or json.loads(mine.read_text()) != json.loads(theirs):
        shutil.rmtree(stage_dir, ignore_errors=True)
    return mirror.pull_tree(stage_dir) if theirs is not None else 0


@contextlib.contextmanager
def pushing(
    stage_dir: Path, on_line: Callable[[str], None], every: float | None = None
) -> Iterator[None]:
    """While the block runs (the training process): upload what changed under a bucket's stage
    directory every `every` seconds, the manifest excepted, so a killed launch resumes from the
    bucket's checkpoint. After it: everything, the manifest last (the stage is done only then);
    after a failure, everything but the manifest. `every` defaults to `$LMPIPE_PUSH_SECONDS`
    or 30."""
    if not on_bucket(stage_dir):
        yield
        return
    every = every or float(os.environ.get(PUSH_SECONDS_ENV) or 30)
    stop = threading.Event()
    thread = threading.Thread(target=_push_loop, args=(stage_dir, stop, on_line, every))
    thread.start()
    try:
        yield
    except BaseException:
        _stop(stop, thread)
        _push_quietly(stage_dir, on_line)
        raise
    _stop(stop, thread)
    mirror.push(stage_dir, last=(MANIFEST,), prune=True)


def _stop(stop: threading.Event, thread: threading.Thread) -> None:
    stop.set()
    thread.join()


def _push_loop(
    stage_dir: Path, stop: threading.Event, on_line: Callable[[str], None], every: float
) -> None:
    while not stop.wait(every):
        _push_quietly(stage_dir, on_line)


def _push_quietly(stage_dir: Path, on_line: Callable[[str], None]) -> None:
    """An upload that fails is reported, not raised: the next one (or the final) tries again."""
    try:
        mirror.push(stage_dir, held=(MANIFEST,))
    except Exception as err:  # noqa: BLE001 (a network error must not end the training)
        on_line(f"warning: uploading {mirror.location(stage_dir)} failed: {err}")
