"""Starting training as its own process group: streamed output, a time limit, a clean kill.

The Prefect task calls `launch_pretrain`; it runs `python -m pipeline.pretrain` (alone, under
torchrun or under srun) in a new session, so every rank it starts shares one process group.
Each output line goes to `on_line` (the task's logger); `lmpipe-progress` lines become
`progress()` calls. On the time limit, an exception or a cancellation of the caller, the whole
group gets SIGTERM, then SIGKILL after a grace period. Importing this module is cheap: no torch.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from pipeline.core import local_copy
from pipeline.core.layout import RunLayout
from pipeline.core.shard_io import arrow_batches
from pipeline.core.stage import (
    Plan,
    StageResult,
    upstream_fingerprint,
    write_json_atomic,
)
from pipeline.pretrain.config import PretrainConfig, training_config_hash
from pipeline.stages import stage as stage_entry

PROGRESS_PREFIX = "lmpipe-progress "
SHARD = re.compile(r"shard-\d+\.arrow$")  # token shards; `shard-NNNNN.index.arrow` are indexes
LAUNCH_CONFIG = "launch_config.json"


class TrainingFailed(RuntimeError):
    """The training process exited with an error (its last output lines are in the message)."""


class TrainingTimeout(RuntimeError):
    """The training process group outlived `pretrain.time_limit_minutes` and was killed."""


STAGE = "pretrain"


def launch_record(config: Any, stage: str) -> dict[str, Any]:
    """What a training process gets (`--launch-config`): its stage's section and the run
    directory, not the whole pipeline config."""
    section = stage_entry(stage).config_section
    dumped = config.model_dump(mode="json", include={"run_dir", section})
    return {"stage": stage, **dumped}


def training_command(
    launcher: str,
    launcher_args: list[str],
    config: Path,
    run_dir: Path,
    output_dir: Path | None = None,
    entry: str = "pipeline.pretrain",
):
    """The command line that starts `entry` (pretraining or fine-tuning) with the launcher."""
    module = ["-m", entry, "--run-dir", str(run_dir), "--launch-config", str(config)]
    if output_dir is not None:
        module += ["--output-dir", str(output_dir)]
    if launcher == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", *launcher_args, *module]
    if launcher == "srun":
        return ["srun", *launcher_args, sys.executable, *module]
    # One local process (Lightning starts further local ranks): it dies with its launcher.
    return [sys.executable, *module, "--parent-pid", str(os.getpid())]


def _pump(stream: IO[bytes], lines: queue.Queue) -> None:
    """Reader thread: split the output on newlines and carriage returns (progress bars)."""
    buffer = b""
    while chunk := stream.read1(65536):
        buffer += chunk.replace(b"\r", b"\n")
        *complete, buffer = buffer.split(b"\n")
        for raw in complete:
            if raw.strip():
                lines.put(raw.decode("utf-8", errors="replace"))
    if buffer.strip():
        lines.put(buffer.decode("utf-8", errors="replace"))
    lines.put(None)


def kill_process_group(proc: subprocess.Popen, grace_seconds: float = 10.0) -> None:
    """SIGTERM the group (Lightning stops cleanly), then SIGKILL whatever is left."""
    for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):  # ranks may outlive their leader
        os.killpg(proc.pid, signal.SIGKILL)


# Prestarted training processes (`prestart`), by entry module: at most one each, used once.
_prestarted: dict[str, tuple[subprocess.Popen, dict[str, str]]] = {}
# Variables that may change between a prestart and its launch (the Prefect API the CLI started,
# MLflow's telemetry session) without mattering to what the process imported: it gets the
# launch's environment. Any other change discards the prestarted process.
PRESTART_ENV_FREE = ("PREFECT_", "_MLFLOW_", local_copy.LOCAL_COPY_ENV)


def prestart(entry: str = "pipeline.pretrain") -> None:
    """Start a training process for `entry` now: it imports torch and Lightning while the
    caller does other work, and `stream_process` hands it the command line when it launches
    `python -m entry` (one local process). Unused, it exits when this process does."""
    if entry in _prestarted:
        return
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.pretrain.warm", entry],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=env,
    )
    _prestarted[entry] = (proc, env)


def _take_prestarted(cmd: list[str], env: dict[str, str], cwd: str | Path | None):
    """The prestarted process for `cmd` (`python -m ENTRY ...`), given its arguments, or None
    (none started, it died, or the environment changed since: then it is discarded)."""
    if len(cmd) < 3 or cmd[:2] != [sys.executable, "-m"] or cmd[2] not in _prestarted:
        return None
    proc, started_env = _prestarted.pop(cmd[2])

    def relevant(e: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in e.items() if not k.startswith(PRESTART_ENV_FREE)}

    if proc.poll() is not None or relevant(started_env) != relevant(env):
        kill_process_group(proc, grace_seconds=2.0)
        return None
    launch = {"args": cmd[3:], "cwd": str(Path(cwd or os.getcwd()).resolve()), "env": env}
    try:
        proc.stdin.write((json.dumps(launch) + "\n").encode())
        proc.stdin.close()
    except OSError:  # it died meanwhile
        kill_process_group(proc, grace_seconds=2.0)
        return None
    return proc


def discard_prestarted() -> None:
    """End the prestarted processes nobody launched (they exit at the end of their input)."""
    while _prestarted:
        _, (proc, _) = _prestarted.popitem()
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            kill_process_group(proc, grace_seconds=2.0)


def stream_process(
    cmd: list[str],
    on_line: Callable[[str], None],
    time_limit_seconds: float = 0.0,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Run `cmd` in a new process group, feeding its output lines to `on_line`; its exit code.

    `env`: variables added to this process's environment. A process `prestart`ed for `cmd`'s
    module runs it instead of a new one.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    popen = _take_prestarted(cmd, env, cwd) or subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=env,
        cwd=cwd,
    )
    with popen as proc:  # closes the pipe and reaps the process on the way out
        lines: queue.Queue = queue.Queue()
        reader = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
        reader.start()
        deadline = time.monotonic() + time_limit_seconds if time_limit_seconds else None
        try:
            while (line := _next_line(lines, deadline)) is not None:
                on_line(line)
            return proc.wait()
        except TimeoutError:
            raise TrainingTimeout(
                f"training exceeded {time_limit_seconds:.0f} s and was killed"
            ) from None
        finally:
            if proc.poll() is None:  # timeout, an exception in on_line, or a cancelled caller
                kill_process_group(proc)
            reader.join(timeout=5)  # the pipe reaches EOF once the group is gone


def _next_line(lines: queue.Queue, deadline: float | None) -> str | None:
    while True:
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError
        try:
            return lines.get(timeout=0.5)
        except queue.Empty:
            continue


def plan_pretrain(cfg: PretrainConfig, tokenize_dir: str | Path, output_dir: str | Path) -> Plan:
    """The token shards and the settings that decide the weights (not launch or display)."""
    inputs_fp = upstream_fingerprint(Path(tokenize_dir))
    return Plan(STAGE, Path(output_dir), inputs_fp, training_config_hash(cfg))


def launch_pretrain(
    config: Any,
    run_dir: str | Path,
    on_line: Callable[[str], None] = print,
    progress: Callable[[int, int, dict[str, Any]], None] | None = None,
    stage_dir: str | Path | None = None,
) -> StageResult:
    """Pretrain `<run_dir>/tokenize` into `<run_dir>/pretrain` in a separate process group.

    `config` is the whole `PipelineConfig`; it is handed to the process as a JSON file.
    `stage_dir` puts the output elsewhere (a scaling point: `<run>/scaling/<point>/pretrain`).
    A run directory on a bucket trains on this node's copy (`pipeline/core/local_copy.py`).
    """
    run = run_layout(run_dir)
    custom_dir = stage_dir is not None
    stage_dir = Path(stage_dir).resolve() if custom_dir else run.pretrain
    if plan_pretrain(config.pretrain, run.tokenize, stage_dir).done():
        return StageResult.from_dir(STAGE, stage_dir, skipped=True)  # no process, no torch
    p = config.pretrain
    local_copy.pull_tokenize(run.tokenize)
    check_enough_tokens(run.tokenize, p.model.block_size, p.micro_batch_size)
    local_copy.pull_training_state(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    config_path = stage_dir / LAUNCH_CONFIG
    write_json_atomic(config_path, launch_record(config, STAGE))
    cmd = training_command(
        p.launcher, p.launcher_args, config_path, run.run_dir, stage_dir if custom_dir else None
    )
    run_training_process(cmd, stage_dir, on_line, progress, p.time_limit_minutes * 60, "training")
    return StageResult.from_dir(STAGE, stage_dir, skipped=False)


def run_layout(run_dir: str | Path) -> RunLayout:
    """The layout of a run directory: a local one made absolute (the training process may start
    elsewhere), a bucket's its mirror in this node's scratch directory."""
    return RunLayout.absolute(run_dir)


def pretrain_would_start(config: Any, run_dir: str | Path) -> bool:
    """Whether `launch_pretrain(config, run_dir)` would start one local training process
    (not skipped, python launcher, one device): what `prestart` can stand in for."""
    p, run = config.pretrain, run_layout(run_dir)
    if p.launcher != "python" or p.devices != 1 or p.num_nodes != 1:
        return False
    try:
        return not plan_pretrain(p, run.tokenize, run.pretrain).done()
    except Exception:  # no tokenize stage yet: the flow reports that
        return False


def run_training_process(
    cmd: list[str],
    stage_dir: Path,
    on_line: Callable[[str], None],
    progress: Callable[[int, int, dict[str, Any]], None] | None,
    time_limit_seconds: float,
    what: str,
) -> None:
    """Run a training process group writing `stage_dir` to its end: each `lmpipe-progress`
    line becomes a `progress()` call and one readable log line; a failure raises with the last
    40 lines. A bucket's `stage_dir` is uploaded while it runs and after it ends
    (`local_copy.pushing`), and the process works on the local copy (`local_copy.process_env`)."""
    tail: deque[str] = deque(maxlen=40)

    def handle(line: str) -> None:
        if PROGRESS_PREFIX in line:
            event = json.loads(line.split(PROGRESS_PREFIX, 1)[1])
            if progress:
                progress(event["done"], event["total"], event["counts"])
            line = _describe(event)
        tail.append(line)
        on_line(line)

    with local_copy.pushing(stage_dir, on_line):
        env = local_copy.process_env(stage_dir)
        code = stream_process(cmd, handle, time_limit_seconds, env=env)
        if code != 0:  # inside: a failure uploads all but the manifest
            raise TrainingFailed(f"{what} exited with code {code}:\n" + "\n".join(tail))


def _describe(event: dict[str, Any]) -> str:
    c = event["counts"]
    mfu = f", MFU {c['mfu']:.1%}" if "mfu" in c else ""
    return (
        f"step {event['done']}/{event['total']}: loss {c['loss']:.4f}, lr {c['lr']:.2e}, "
        f"{c['tokens_per_sec']:,.0f} tokens/s{mfu}"
    )


class NotEnoughTokens(ValueError):
    """The token shards are too small to train on; the message says what there is and needs."""


def split_tokens(split_dir: Path) -> dict[str, int]:
    """Tokens and shards of a token split, from the shards' row counts (no token is read). A
    shard that cannot be read stops here, before any process starts, with one line naming it and
    the stage to rerun (`pipeline/core/shard_io.py`)."""
    shards = [p for p in sorted(Path(split_dir).glob("shard-*.arrow")) if SHARD.match(p.name)]
    tokens = sum(batch.num_rows for path in shards for batch in arrow_batches(path))
    return {"tokens": tokens, "shards": len(shards)}


def check_enough_tokens(tokenize_dir: Path, block_size: int, micro_batch_size: int) -> None:
    """Before a training process starts: train must fill one window of T + 1 tokens, val one
    micro-batch of windows (what PretrainDataModule and its validation sampler need, one device).
    """
    have = {split: split_tokens(Path(tokenize_dir) / split) for split in ("train", "val")}
    need = {"train": block_size + 1, "val": micro_batch_size * block_size + 1}
    if all(have[split]["tokens"] >= need[split] for split in need):
        return
    shown = ", ".join(
        f"{k} {v['tokens']:,} tokens in {v['shards']} shards" for k, v in have.items()
    )
    raise NotEnoughTokens(
        f"not enough data to pretrain: {tokenize_dir} has {shown}; it needs at least "
        f"{need['train']:,} train tokens (one window, `pretrain.model.block_size` + 1) and "
        f"{need['val']:,} val tokens (one batch of `pretrain.micro_batch_size` windows): add "
        "input documents, or check the clean funnel (`lmpipe report`) for what was dropped"
    )
