"""The data flow on a real (ephemeral) Prefect API: states, artifacts, and a cached rerun."""

from __future__ import annotations

from datetime import UTC, datetime

import flows.report_html
import pipeline.ingest
import pipeline.ingest.run
from flows.data import data_flow
from pipeline.config import load_config
from pipeline.ingest import plan_ingest
from tests.conftest import SAMPLE_WARC
from tests.flows.prefect_api import artifacts, task_states_since


def test_data_flow_runs_ingest_and_reports(tmp_path, prefect_harness, monkeypatch, caplog):
    cfg = load_config(None, [f"inputs=[{SAMPLE_WARC}]", f"run_dir={tmp_path}"])
    plans = []  # every planning of ingest (it lists and stats every input file)

    def counted(*args, **kw):
        plans.append(args)
        return plan_ingest(*args, **kw)

    monkeypatch.setattr(pipeline.ingest, "plan_ingest", counted)  # what the table's planner finds
    monkeypatch.setattr(pipeline.ingest.run, "plan_ingest", counted)  # what run_ingest calls
    state = data_flow(cfg, stages=["ingest"], return_state=True)
    assert state.is_completed()
    assert len(plans) == 1  # the cache key's plan is the one the stage ran from
    results = state.result()
    assert results["ingest"]["counts"]["documents"] == 350
    made = artifacts(flow_run_id=state.state_details.flow_run_id)
    assert {"markdown", "progress"} <= {a["type"] for a in made}
    report = next(a for a in made if a["key"] == "data-report")
    assert "| ingest | 721 | 350 | 10 |" in report["data"]
    # The whole report as one page in the run directory, linked from the flow run.
    (link,) = [a for a in made if a["key"] == "run-report"]
    page = tmp_path / "report.html"
    assert link["data"] == f"[lmpipe report of {tmp_path}]({page.as_uri()})"
    assert "<tr><td>ingest</td><td class='n'>721</td><td class='n'>350</td>" in page.read_text()
    progress = next(a for a in made if a["type"] == "progress")
    assert progress["data"] == 100.0

    t0 = datetime.now(UTC)

    def broken(run_dir):
        raise ValueError("no page today")

    monkeypatch.setattr(flows.report_html, "render_html", broken)  # a page that cannot be made
    again = data_flow(cfg, stages=["ingest"], return_state=True)
    assert again.is_completed()  # the stages' work is not lost to the report
    assert "report page not written (ValueError: no page today)" in caplog.text
    assert again.result()["ingest"] == results["ingest"]
    assert task_states_since(t0) == {"ingest": ["Cached"]}  # from Prefect's cache: not run
    assert len(plans) == 2
