"""The refresh flow (`lmpipe refresh`, the corpus-refresh deployment): a new immutable snapshot
of the inputs that are new since the last one (`pipeline/refresh/snapshot.py`, ARCHITECTURE.md).

Each run lists the inputs, skips those an earlier snapshot ingested, builds the corpus of the new
ones in `<refresh.root>/<UTC start time>/` with the data stages (deduplicated against every earlier
snapshot), marks the snapshot complete and read-only, moves `latest`, and announces the corpus so
the triggered training run trains on this snapshot. With no new input it writes no snapshot; new
inputs whose documents all go (duplicates of earlier snapshots, rejected by clean) make no
snapshot either: `latest` stays, nothing is announced, and the inputs count as seen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.common import flow_lock
from flows.data import announce_corpus, build_corpus
from flows.params import documented, resolve_config
from pipeline.config import PipelineConfig
from pipeline.ingest.sources import fingerprint_inputs, known_fingerprints
from pipeline.refresh.snapshot import (
    LATEST,
    complete_snapshots,
    finish_snapshot,
    plan_snapshot,
    point_latest,
    prune_snapshots,
    retain_tokenizer,
    snapshot_config,
)

REFRESH_LOCK_WAIT_SECONDS = 30.0


@flow(name="lmpipe-refresh", log_prints=True)
@documented
def refresh_flow(
    config: PipelineConfig | None = None,
    config_path: str | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """A new corpus snapshot of the new inputs under `refresh.root`; earlier snapshots are never
    changed, and their documents are removed from the new one."""
    config = resolve_config(config, config_path, overrides)
    root = Path(config.refresh.root)
    root.mkdir(parents=True, exist_ok=True)
    logger = get_run_logger()
    # One refresh at a time per root: two would both take the same inputs as new.
    with flow_lock(root, "flow refresh_flow", REFRESH_LOCK_WAIT_SECONDS):
        net = (config.ingest.network_timeout_seconds, config.ingest.storage_options)
        snap = plan_snapshot(root, fingerprint_inputs(list(config.inputs), *net))
        if not snap.new_inputs:
            return _nothing_new(root, snap, logger)
        logger.info(
            "refresh: snapshot %s%s: %d new input(s), %d already in earlier snapshots",
            snap.dir.name,
            " (resuming a killed refresh)" if snap.resumed else "",
            len(snap.new_inputs),
            len(snap.skipped_inputs),
        )
        snap_config = snapshot_config(config, snap, config.refresh.shared_tokenizer)
        # The plan's fingerprints serve the ingest stage and its cache key: an object rewritten
        # since is ingested as it is now and counts as new in the next refresh.
        with (
            flow_lock(snap.dir, "flow refresh_flow", REFRESH_LOCK_WAIT_SECONDS),
            known_fingerprints(snap.new_inputs),
        ):
            results = build_corpus(snap_config)
        record = finish_snapshot(snap, root)
        if record.get("empty"):
            return _empty(root, record, results, logger)
        if config.refresh.shared_tokenizer:
            retain_tokenizer(root)  # later snapshots share this copy, not the snapshot's file
        if config.refresh.keep_last:
            _prune(config, root, logger)
    create_markdown_artifact(
        _markdown(record), key="refresh-snapshot", description="the snapshot this refresh wrote"
    )
    announce_corpus(snap_config, snapshot=record)
    return {"snapshot": str(snap.dir), **record["counts"], "stages": results}


def _nothing_new(root: Path, snap: Any, logger: Any) -> dict[str, Any]:
    """No new input: no snapshot; `latest` still names the newest complete one (a refresh killed
    between completing its snapshot and moving `latest` is mended here)."""
    snapshots = complete_snapshots(root)
    if snapshots and (root / LATEST).resolve() != snapshots[-1].resolve():
        point_latest(root, snapshots[-1])
    newest = snapshots[-1].name if snapshots else None
    logger.info(
        "refresh: no new inputs (%d already in earlier snapshots): no snapshot written; latest "
        "is %s",
        len(snap.skipped_inputs),
        newest,
    )
    return {"snapshot": None, "inputs_new": 0, "inputs_skipped": len(snap.skipped_inputs)}


def empty_message(root: Path, record: dict[str, Any]) -> str:
    """The one line a refresh whose new inputs left no document says."""
    funnel = " -> ".join(f"{stage} {n:,}" for stage, n in record["funnel"].items())
    latest = (root / LATEST).resolve().name if (root / LATEST).exists() else None
    return (
        f"refresh: no snapshot: the {record['counts']['inputs_new']} new input(s) left 0 "
        f"documents ({funnel}); latest stays {latest}, no training triggered, and the inputs "
        f"count as seen (retained/{record['name']}/snapshot.json)"
    )


def _empty(
    root: Path, record: dict[str, Any], results: dict[str, Any], logger: Any
) -> dict[str, Any]:
    """New inputs, 0 documents: not a snapshot (`discard_empty_snapshot`); nothing announced."""
    message = empty_message(root, record)
    logger.warning("%s", message)
    return {
        "snapshot": None,
        "empty": record["name"],
        "message": message,
        **record["counts"],
        "stages": results,
    }


def _prune(config: PipelineConfig, root: Path, logger: Any) -> None:
    """`refresh.keep_last`: older snapshots go unless a registered version was trained on one."""
    from pipeline.register.register import trained_run_dirs

    keep, shared = config.refresh.keep_last, config.refresh.shared_tokenizer
    for gone in prune_snapshots(root, keep, trained_run_dirs(config.registry), shared):
        logger.info(
            "refresh: deleted snapshot %s (refresh.keep_last=%d); its inputs and dedup/ stay in "
            "%s/retained",
            gone.name,
            keep,
            root,
        )


def _markdown(record: dict[str, Any]) -> str:
    c = record["counts"]
    lines = [
        f"# Snapshot `{record['name']}`",
        "",
        "| | |",
        "|---|---:|",
        f"| new inputs | {c['inputs_new']:,} |",
        f"| inputs already in earlier snapshots (skipped) | {c['inputs_skipped']:,} |",
        f"| documents | {c['documents']:,} |",
        f"| tokens | {c['tokens']:,} |",
        "",
        f"Earlier snapshots deduplicated against: {', '.join(record['previous']) or 'none'}",
        "",
        f"Deleted snapshots deduplicated against (retained): "
        f"{', '.join(record['previous_deleted']) or 'none'}",
        "",
        f"Fingerprint `{record['fingerprint']}`",
    ]
    return "\n".join(lines)
