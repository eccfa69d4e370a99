"""The local mirror of a run directory on a bucket: naming, and rebasing for another node."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.core.layout import RunLayout
from pipeline.io import mirror
from tests.storage.helpers import keys


@dataclass
class Job:
    shard: str
    files: list[Path]
    other: int = 3


def test_a_url_run_dir_is_its_mirror_and_back(tmp_path, monkeypatch):
    monkeypatch.setenv(mirror.SCRATCH_ENV, str(tmp_path))
    run = RunLayout("s3://work/runs/r1")
    assert run.clean == tmp_path.resolve() / "s3" / "work" / "runs" / "r1" / "clean"
    assert mirror.remote_url(run.clean / "x.arrow") == "s3://work/runs/r1/clean/x.arrow"
    assert run.location() == "s3://work/runs/r1"


def test_a_local_run_dir_is_untouched(tmp_path, monkeypatch):
    monkeypatch.setenv(mirror.SCRATCH_ENV, str(tmp_path / "scratch"))
    assert RunLayout("runs/demo").clean == Path("runs/demo/clean")
    assert mirror.remote_url(tmp_path / "runs" / "x.arrow") is None
    assert mirror.remote_url("runs/demo/clean") is None
    assert mirror.location(tmp_path / "a") == str(tmp_path / "a")
    assert mirror.fetch(tmp_path / "a") == tmp_path / "a"  # no store asked


def test_ray_tasks_get_mirror_paths_rebased_onto_their_node(tmp_path, monkeypatch):
    driver, node = tmp_path / "driver", tmp_path / "node"
    monkeypatch.setenv(mirror.SCRATCH_ENV, str(driver))
    stage = RunLayout("s3://work/runs/r1").dedup
    job = Job(str(stage / "a.arrow"), [stage / "b.arrow", Path("/elsewhere/c.arrow")])

    def unit(j: Job, label: str) -> tuple:
        return j.shard, j.files, j.other, label

    assert mirror.on_workers(unit, stage, "process") is unit  # local processes share the disk
    assert mirror.on_workers(unit, tmp_path / "local", "ray") is unit  # a local run needs nothing
    rebased = mirror.on_workers(unit, stage, "ray")
    monkeypatch.setenv(mirror.SCRATCH_ENV, str(node))  # as on another node
    here = node.resolve() / "s3" / "work" / "runs" / "r1" / "dedup"
    assert rebased(job, "x") == (
        str(here / "a.arrow"),
        [here / "b.arrow", Path("/elsewhere/c.arrow")],
        3,
        "x",
    )
    assert job.shard == str(stage / "a.arrow")  # the driver's job is not changed


def test_a_process_on_a_local_copy_sees_mirror_paths_as_local(tmp_path, monkeypatch):
    monkeypatch.setenv(mirror.SCRATCH_ENV, str(tmp_path))
    stage = RunLayout("s3://work/runs/r1").pretrain
    monkeypatch.setenv(mirror.LOCAL_COPY_ENV, "1")  # what a training process gets
    assert mirror.remote_url(stage / "model.safetensors") is None
    assert mirror.push(stage) == 0  # nothing to upload from there


def test_push_uploads_what_changed_manifest_last_and_prunes_replaced_objects(
    s3, tmp_path, monkeypatch
):
    monkeypatch.setenv(mirror.SCRATCH_ENV, str(tmp_path))
    url = f"s3://{s3.bucket()}/runs/r1/pretrain"
    stage = RunLayout(url.removesuffix("/pretrain")).pretrain
    (stage / "checkpoints").mkdir(parents=True)
    for name in ("manifest.json", "metrics.jsonl", "checkpoints/best-step=5.ckpt", ".prepared"):
        (stage / name).write_text(name)
    uploaded: list[str] = []
    commit = mirror.commit
    monkeypatch.setattr(mirror, "commit", lambda p: uploaded.append(p.name) or commit(p))

    assert mirror.push(stage, held=("manifest.json",)) == 2  # while training: no manifest
    assert sorted(uploaded) == ["best-step=5.ckpt", "metrics.jsonl"]
    assert mirror.push(stage, held=("manifest.json",)) == 0  # unchanged: not again

    (stage / "checkpoints" / "best-step=5.ckpt").unlink()
    (stage / "checkpoints" / "best-step=10.ckpt").write_text("better")
    s3.client().put_object(Bucket=url.split("/")[2], Key="runs/r1/pretrain/.prefect_cache.json")
    uploaded.clear()
    assert mirror.push(stage, last=("manifest.json",), prune=True) == 2
    assert uploaded == ["best-step=10.ckpt", "manifest.json"]  # the manifest last
    assert keys(s3, url) == [
        ".prefect_cache.json",  # a hidden object (the flow's marker) is never pruned
        "checkpoints/best-step=10.ckpt",
        "manifest.json",
        "metrics.jsonl",
    ]

    # Another node resumes: what the bucket has comes down.
    monkeypatch.setenv(mirror.SCRATCH_ENV, str(tmp_path / "other"))
    other = RunLayout(url.removesuffix("/pretrain")).pretrain
    assert mirror.pull_tree(other) == 4
    assert (other / "checkpoints" / "best-step=10.ckpt").read_text() == "better"
