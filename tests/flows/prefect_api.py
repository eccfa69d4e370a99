"""Reading task runs and artifacts from the Prefect API the tests run against."""

from __future__ import annotations

import asyncio
from datetime import datetime

from prefect.client.orchestration import get_client


async def _post(path: str, body: dict) -> list[dict]:
    # Raw API calls: prefect 3.8.8's typed filters send nulls that its own server rejects (422).
    async with get_client() as client:
        response = await client._client.post(path, json=body)
        response.raise_for_status()
        return response.json()


def task_states_since(t0: datetime) -> dict[str, list[str]]:
    """Task run state names by stage, for task runs created after `t0`."""
    body = {"sort": "EXPECTED_START_TIME_DESC", "limit": 200}
    runs = asyncio.run(_post("/task_runs/filter", body))
    states: dict[str, list[str]] = {}
    for r in runs:
        if datetime.fromisoformat(r["created"]) >= t0:
            states.setdefault(r["name"].rsplit("-", 1)[0], []).append(r["state_name"])
    return states


def artifacts(*, key: str | None = None, flow_run_id=None, limit: int = 50) -> list[dict]:
    """Artifacts with this key and/or of this flow run."""
    match = {}
    if key is not None:
        match["key"] = {"any_": [key]}
    if flow_run_id is not None:
        match["flow_run_id"] = {"any_": [str(flow_run_id)]}
    return asyncio.run(_post("/artifacts/filter", {"artifacts": match, "limit": limit}))


def latest_artifact(key: str) -> dict:
    body = {"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC", "limit": 1}
    found = asyncio.run(_post("/artifacts/filter", body))
    assert found, f"no artifact with key {key}"
    return found[0]


def log_messages_since(t0: datetime) -> list[str]:
    """Every log line the API received after `t0` (flow and task runs alike), oldest first."""
    messages, offset = [], 0
    while True:
        body = {"logs": {"timestamp": {"after_": t0.isoformat()}}, "limit": 200, "offset": offset}
        page = asyncio.run(_post("/logs/filter", {**body, "sort": "TIMESTAMP_ASC"}))
        messages += [entry["message"] for entry in page]
        if len(page) < 200:
            return messages
        offset += 200
