"""The clean task inside the real data flow (ephemeral Prefect API): ingest then clean."""

from __future__ import annotations

from datetime import UTC, datetime

from flows.data import DATA_STAGES, data_flow
from pipeline.config import load_config
from tests.conftest import REPO, SAMPLE_WARC
from tests.flows.prefect_api import task_states_since


def test_data_flow_runs_clean_after_ingest(tmp_path, prefect_harness):
    assert DATA_STAGES.index("clean") == DATA_STAGES.index("ingest") + 1
    assert "clean" in DATA_STAGES
    cfg = load_config(
        REPO / "configs" / "demo.yaml", [f"inputs=[{SAMPLE_WARC}]", f"run_dir={tmp_path}"]
    )
    state = data_flow(cfg, stages=["ingest", "clean"], return_state=True)
    assert state.is_completed()
    clean = state.result()["clean"]
    assert clean["output_dir"] == str(tmp_path / "clean")
    assert clean["counts"]["records_in"] == 350
    assert clean["counts"]["documents"] + clean["counts"]["rejected"] == 350
    assert clean["counts"]["documents"] >= 300  # the demo config keeps most pages

    t0 = datetime.now(UTC)
    again = data_flow(cfg, stages=["ingest", "clean"], return_state=True)
    assert again.result()["clean"] == clean
    assert task_states_since(t0) == {"ingest": ["Cached"], "clean": ["Cached"]}
