"""Two "nodes" on one machine: two torchrun launchers meet at a c10d rendezvous on 127.0.0.1.

Each launcher is what the Prefect task starts on one node (`launch_pretrain` with
`pretrain.launcher: torchrun`), with the same `launcher_args` a cluster would use; each node
runs one CPU rank, and the two ranks train one model over gloo with DDP or FSDP.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from pipeline.pretrain.launch import launch_pretrain
from pipeline.pretrain.metrics import read_metrics
from tests.pretrain.helpers import make_run_dir, tiny_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rendezvous_args(run_id: str) -> str:
    """torchrun arguments of each node, as a YAML list for `--set`: the same on both nodes."""
    args = ["--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d"]
    args += [f"--rdzv-endpoint=127.0.0.1:{free_port()}", f"--rdzv-id={run_id}"]
    return str(args).replace("'", '"')


def two_node_config(strategy: str):
    return tiny_config(
        f"pretrain.strategy={strategy}",
        "pretrain.accelerator=cpu",
        "pretrain.devices=1",
        "pretrain.num_nodes=2",
        "pretrain.launcher=torchrun",
        f"pretrain.launcher_args={rendezvous_args(f'lmpipe-{strategy}')}",
        "pretrain.max_steps=4",
        "pretrain.val_interval=4",
        "pretrain.log_interval=1",
        "pretrain.model.d_model=32",
        "pretrain.model.n_heads=2",
        "pretrain.model.block_size=32",
    )


def launch_two_nodes(cfg, run_dir, launch=launch_pretrain, stage="pretrain") -> list[list[str]]:
    """Both node launchers at once (threads: each blocks streaming its process group)."""
    outputs: list[list[str]] = [[], []]
    errors: list[BaseException] = []

    def node(lines: list[str]) -> None:
        try:
            launch(cfg, run_dir, lines.append)
        except BaseException as err:  # re-raised in the test thread below
            errors.append(err)

    threads = [threading.Thread(target=node, args=(out,), daemon=True) for out in outputs]
    threads[0].start()
    # Both launchers write the same `launch_config.json`; on a cluster they are on two hosts,
    # here in one process, so node 1 starts once node 0 has written it (one writer at a time).
    config = run_dir / stage / "launch_config.json"
    deadline = time.monotonic() + 60
    while not config.is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    threads[1].start()
    for t in threads:
        t.join(timeout=240)
    assert not errors, "\n".join(str(e) for e in errors)
    assert not any(t.is_alive() for t in threads), "a node launcher did not finish"
    return outputs


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_nodes_on_loopback_train_one_model(tokenize_dir, tmp_path, strategy):
    run_dir = make_run_dir(tmp_path / "run", tokenize_dir)
    outputs = launch_two_nodes(two_node_config(strategy), run_dir)
    joined = ["\n".join(out) for out in outputs]
    for rank in (0, 1):  # one rank started by each launcher
        assert sum(f"GLOBAL_RANK: {rank}, MEMBER: {rank + 1}/2" in text for text in joined) == 1
    manifest = (run_dir / "pretrain" / "manifest.json").read_text()
    assert '"world_size": 2' in manifest
    train, _ = read_metrics(run_dir / "pretrain")
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    assert (run_dir / "pretrain" / "model.safetensors").is_file()
