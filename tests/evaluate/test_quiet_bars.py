"""On a terminal, scoring a model on lm-eval tasks draws no lm-eval or datasets progress bar
(issue 32: `make demo` showed them between lmpipe's lines). The evaluate stage's scoring code
(`task_scores`) runs in a child process whose stdout and stderr are a pseudo-terminal, as in a
user's shell; the same code with the quieting taken out draws the bars there, so the check can
fail."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
import time

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # two child processes importing torch and lm-eval (~15 s each)

CHILD = r"""
import contextlib, sys
from pathlib import Path

import pipeline.evaluate.task_scores as ts
from pipeline.evaluate.harness import LmpipeLM
from pipeline.evaluate.tasks import CLOZE_YAML, MC_YAML, write_task
from pipeline.model import DecoderLM
from pipeline.model.config import ModelConfig
from tests.pretrain.token_shards import train_tokenizer

task_dir, mode = Path(sys.argv[1]), sys.argv[2]
task_dir.mkdir(parents=True)
assert sys.stderr.isatty() and sys.stdout.isatty()
if mode == "bars":  # the control: the quieting taken out
    ts.library_bars_off = contextlib.nullcontext
words = "the cat sat on a mat while the dog ran in the park and a bird sang".split()
texts = [" ".join(words[i:] + words[:i]) for i in range(len(words))]
tok = train_tokenizer(texts, 300)
model = DecoderLM(ModelConfig(vocab_size=tok.get_vocab_size(), block_size=64, n_layers=1,
                              n_heads=2, d_model=16))
cloze = [{"text": t.rsplit(" ", 1)[0], "target": t.split()[-1]} for t in texts]
write_task(task_dir, "cloze", cloze, CLOZE_YAML)
mc = [{"question": t, "choices": ["cat", "dog", "bird"], "gold": i % 3}
      for i, t in enumerate(texts)]
write_task(task_dir, "mc", mc, MC_YAML)
lm = LmpipeLM(model=model, tokenizer=tok, batch_size=4)
scores = ts.task_scores(lm, ["cloze", "mc"], task_dir)
print("SCORES", sorted(scores))
"""

BAR = re.compile(r"\d+%\|")  # tqdm's "100%|█████| 16/16"


def on_a_terminal(args: list[str], timeout: float = 300) -> str:
    """stdout and stderr of `python -c CHILD args` run on a pseudo-terminal."""
    master, slave = os.openpty()
    # 40 rows, 120 columns: a fresh pseudo-terminal is 0 wide, and tqdm cuts a bar to that width.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TQDM_")}
    env["PYTHONPATH"] = str(REPO)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=REPO,
        close_fds=True,
    )
    os.close(slave)
    out, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
        child.kill() if child.poll() is None else None
        child.wait()
    text = out.decode("utf-8", "replace")
    assert child.returncode == 0, text
    return text


def test_scoring_on_a_terminal_draws_no_library_bars(tmp_path):
    quiet = on_a_terminal([str(tmp_path / "quiet"), "quiet"])
    assert "SCORES ['cloze_acc'" in quiet, quiet
    assert not BAR.search(quiet), quiet
    assert "Generating" not in quiet and "Map" not in quiet, quiet  # datasets' bars
    control = on_a_terminal([str(tmp_path / "bars"), "bars"])
    assert "SCORES ['cloze_acc'" in control, control
    assert len(BAR.findall(control)) >= 3, control  # requests of both tasks, the bootstrap
    assert "Generating test split" in control, control
