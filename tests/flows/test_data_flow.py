"""The data flow on a real (ephemeral) Prefect API: states, artifacts, and a cached rerun."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from prefect.client.orchestration import get_client

from flows.data import data_flow
from pipeline.config import load_config
from tests.conftest import SAMPLE_WARC
from tests.flows.prefect_api import task_states_since


async def _artifacts(flow_run_id) -> list[dict]:
    # Raw API call: prefect 3.8.8's read_artifacts sends nulls that its own server rejects (422).
    body = {"artifacts": {"flow_run_id": {"any_": [str(flow_run_id)]}}, "limit": 50}
    async with get_client() as client:
        response = await client._client.post("/artifacts/filter", json=body)
        response.raise_for_status()
        return response.json()


def test_data_flow_runs_ingest_and_reports(tmp_path, prefect_harness):
    cfg = load_config(None, [f"inputs=[{SAMPLE_WARC}]", f"run_dir={tmp_path}"])
    state = data_flow(cfg, stages=["ingest"], return_state=True)
    assert state.is_completed()
    results = state.result()
    assert results["ingest"]["counts"]["documents"] == 350
    artifacts = asyncio.run(_artifacts(state.state_details.flow_run_id))
    assert {"markdown", "progress"} <= {a["type"] for a in artifacts}
    report = next(a for a in artifacts if a["type"] == "markdown")
    assert "| ingest | 721 | 350 | 10 |" in report["data"]
    progress = next(a for a in artifacts if a["type"] == "progress")
    assert progress["data"] == 100.0

    t0 = datetime.now(UTC)
    again = data_flow(cfg, stages=["ingest"], return_state=True)
    assert again.result()["ingest"] == results["ingest"]
    assert task_states_since(t0) == {"ingest": ["Cached"]}  # from Prefect's cache: not run
