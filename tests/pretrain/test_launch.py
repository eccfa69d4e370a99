"""The training launcher: a process group with streamed output, a time limit and a clean kill."""

from __future__ import annotations

import sys
import time

import pytest

from pipeline.pretrain.launch import (
    TrainingTimeout,
    stream_process,
    training_command,
)
from tests.helpers import alive

# A process that starts a grandchild and prints its pid, then both wait: a stand-in for
# Lightning's rank 0 and the DDP rank it starts.
TREE = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
    "print('child', child.pid, flush=True)\n"
    "sys.stdout.write('bar 10%\\rbar 20%\\r')\n"
    "print('bar 30%', flush=True)\n"
    "time.sleep(120)\n"
)


def test_time_limit_kills_the_whole_process_group():
    lines: list[str] = []
    t0 = time.monotonic()
    with pytest.raises(TrainingTimeout, match="exceeded 3 s"):
        stream_process([sys.executable, "-c", TREE], lines.append, time_limit_seconds=3)
    assert time.monotonic() - t0 < 20  # SIGTERM is enough for plain processes
    child = int(next(line for line in lines if line.startswith("child")).split()[1])
    assert [ln for ln in lines if ln.startswith("bar")] == ["bar 10%", "bar 20%", "bar 30%"]
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child)


def test_an_exception_in_the_caller_kills_the_group():
    seen: list[int] = []

    def on_line(line: str) -> None:
        if line.startswith("child"):
            seen.append(int(line.split()[1]))
            raise KeyboardInterrupt  # what a cancelled Prefect task run looks like here

    with pytest.raises(KeyboardInterrupt):
        stream_process([sys.executable, "-c", TREE], on_line)
    time.sleep(0.5)
    assert seen and not alive(seen[0])


def test_exit_code_and_output_come_back():
    lines: list[str] = []
    code = stream_process([sys.executable, "-c", "print('hi'); raise SystemExit(3)"], lines.append)
    assert (code, lines) == (3, ["hi"])


def test_launcher_commands(tmp_path):
    cfg_path, run = tmp_path / "c.json", tmp_path / "run"
    local = training_command("python", [], cfg_path, run)
    assert local[1:4] == ["-m", "pipeline.pretrain", "--run-dir"] and "--parent-pid" in local
    torchrun = training_command("torchrun", ["--nproc-per-node=8"], cfg_path, run)
    assert torchrun[1:4] == ["-m", "torch.distributed.run", "--nproc-per-node=8"]
    assert torchrun[4:6] == ["-m", "pipeline.pretrain"]
    srun = training_command("srun", ["--nodes=2"], cfg_path, run)
    assert srun[:3] == ["srun", "--nodes=2", sys.executable] and "--parent-pid" not in srun
    # Fine-tuning starts through the same launchers (`finetune.launcher`, issue 17).
    tune = training_command("srun", ["--nodes=2"], cfg_path, run, entry="pipeline.finetune")
    assert tune[:5] == ["srun", "--nodes=2", sys.executable, "-m", "pipeline.finetune"]
