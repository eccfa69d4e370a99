"""Flow parameters as the Prefect UI shows them: every one described, the stages a multi-select of
the real names; a misspelled stage is refused before anything runs, in the flows and the CLI."""

from __future__ import annotations

import re

import pytest
from prefect.exceptions import ParameterTypeError
from prefect.utilities.callables import parameter_schema

from flows.ablate import ablate_flow
from flows.cli import main
from flows.data import data_flow
from flows.end_to_end import pipeline_flow
from flows.evaluate import evaluate_model_flow
from flows.params import wanted_stages
from flows.refresh import refresh_flow
from flows.scaling import scaling_flow
from flows.train import training_flow
from pipeline.stages import DATA_STAGES, STAGE_ORDER, TRAINING_STAGES
from tests.conftest import REPO

FLOWS = {"data": data_flow, "train": training_flow, "pipeline": pipeline_flow}
# Every flow a deployment or a CLI command runs: each parameter has help text in the UI form.
ALL_FLOWS = {
    **FLOWS,
    "refresh": refresh_flow,
    "scaling": scaling_flow,
    "ablate": ablate_flow,
    "evaluate-model": evaluate_model_flow,
}


@pytest.mark.parametrize("name", ALL_FLOWS)
def test_every_parameter_has_a_description(name):
    schema = parameter_schema(ALL_FLOWS[name].fn).model_dump()
    for param, prop in schema["properties"].items():
        assert len(prop.get("description", "")) > 20, (name, param, prop)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("data", DATA_STAGES), ("train", TRAINING_STAGES), ("pipeline", STAGE_ORDER)],
)
def test_stages_is_a_multi_select_of_the_real_names(name, expected):
    prop = parameter_schema(FLOWS[name].fn).model_dump()["properties"]["stages"]
    arrays = [option for option in prop["anyOf"] if option.get("type") == "array"]
    assert arrays and tuple(arrays[0]["items"]["enum"]) == tuple(expected)


def test_misspelled_stage_fails_the_flow_before_any_stage_runs(tmp_path, prefect_harness):
    names = ", ".join(f"'{s}'" for s in DATA_STAGES[:-1])
    valid = f"stages.0: Input should be {names} or '{DATA_STAGES[-1]}'"
    with pytest.raises(ParameterTypeError, match=valid):
        data_flow(stages=["tokenise"], overrides=[f"run_dir={tmp_path}"])
    assert not any(tmp_path.iterdir())


def test_wanted_stages_keeps_pipeline_order_and_names_the_valid_ones():
    assert wanted_stages(["tokenize", "ingest"], DATA_STAGES) == ["ingest", "tokenize"]
    assert wanted_stages(None, TRAINING_STAGES) == list(TRAINING_STAGES)
    with pytest.raises(ValueError, match="unknown stage.*'pretrian'.*valid stages are ingest"):
        wanted_stages(["pretrian"], STAGE_ORDER)


def test_cli_refuses_a_misspelled_stage_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--stages", "pretrian"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "invalid choice: 'pretrian'" in err and "'pretrain'" in err and "'register'" in err


def test_progress_numbers_are_rounded_for_people():
    from flows.common import readable

    shown = [readable(v) for v in (12345.678, 1234567, 5.41754, 0.000321, "cpu")]
    assert shown == ["12,346", "1,234,567", "5.418", "0.000321", "cpu"]


# Issue 32 item 3: the served deployments' run forms and train-on-demand's defaults.


def served(**sets: str) -> dict:
    from flows.deploy import build_deployments
    from pipeline.config import load_config

    cfg = load_config(REPO / "configs" / "demo.yaml", [f"{k}={v}" for k, v in sets.items()])
    return {d.name: d for d in build_deployments(cfg)}


def sections(kind: str | None = None) -> list[str]:
    """The config sections of the table's stages (of one `kind`), in pipeline order."""
    from pipeline.stages import STAGES

    return [s.config_section for s in STAGES if kind in (None, s.kind)]


@pytest.mark.parametrize(
    ("name", "sections"),
    [
        ("train-on-demand", ["run_dir", *sections("training")]),
        ("corpus-refresh", ["inputs", "run_dir", "parallel", "refresh", *sections("data")]),
        ("end-to-end", ["inputs", "run_dir", "parallel", *sections()]),
    ],
)
def test_run_form_shows_stages_first_and_the_sections_the_flow_reads(name, sections):
    from prefect.utilities.schema_tools.validation import validate

    deployment = served()[name]
    schema = deployment._parameter_openapi_schema.model_dump()
    props = schema["properties"]
    order = sorted(props, key=lambda k: props[k]["position"])
    expected = ["stages", "overrides", "config_path", "config"]
    assert order == [p for p in expected if p in props]
    assert list(props) == order  # the JSON order too
    assert list(schema["definitions"]["PipelineConfig"]["properties"]) == sections
    # What the API is given still validates against the form's schema: the deployment's full
    # default config (a Quick run, a triggered run's payload) and a form with only its sections.
    validate(deployment.parameters, schema, raise_on_error=True)
    partial = {k: v for k, v in deployment.parameters["config"].items() if k in sections}
    validate({"config": partial, "stages": None}, schema, raise_on_error=True)


def test_train_on_demand_defaults_to_the_latest_snapshot(tmp_path):
    deps = served(**{"refresh.root": str(tmp_path / "snaps")})
    train = deps["train-on-demand"]
    assert train.parameters["config"]["run_dir"] == str(tmp_path / "snaps" / "latest")
    assert "corpus-refresh" in train.description and "data flow" not in train.description
    assert deps["end-to-end"].parameters["config"]["run_dir"] == "runs/demo"


def test_training_without_a_snapshot_says_so_in_one_line(tmp_path, prefect_harness):
    """The Quick run of train-on-demand before any corpus refresh: one line says so and the run
    ends having done nothing (no traceback), and no `latest` directory is made where the
    refresh's symlink belongs."""
    root = tmp_path / "snaps"
    cfg = {"run_dir": str(root / "latest"), "refresh": {"root": str(root)}}
    state = training_flow(config=cfg, return_state=True)
    assert state.is_completed() and state.result() is None
    assert state.message == (
        f"no corpus snapshot to train on yet: {root / 'latest'} does not exist; run the "
        "corpus-refresh deployment first (a completed refresh starts this training itself), or "
        "set `run_dir` to a run directory with a finished tokenize stage"
    )
    assert not root.exists()
    # `latest` pointing at a snapshot without token shards is an error naming that snapshot
    # (resolved), as for any run directory without them (`lmpipe pretrain` exits 1 on it).
    (root / "20261206T000000Z").mkdir(parents=True)
    (root / "latest").symlink_to("20261206T000000Z")
    missing = f"{root / '20261206T000000Z' / 'tokenize'} has no finished stage"
    with pytest.raises(FileNotFoundError, match=re.escape(missing)):
        training_flow(config=cfg)


def test_a_form_without_some_sections_gets_them_from_the_deployment(
    tmp_path, prefect_harness, monkeypatch
):
    """A custom run whose form sent only the sections the flow reads (`form_schema`) gets the
    others from the deployment's default config, not the built-in defaults."""
    from prefect.client.orchestration import get_client

    from flows.params import FLOW_SECTIONS, _with_deployment_defaults
    from pipeline.config import PipelineConfig

    train = served(**{"run_dir": str(tmp_path / "run"), "ingest.workers": "3"})["train-on-demand"]
    deployment_id = train.apply()
    form = {
        k: v for k, v in train.parameters["config"].items() if k in FLOW_SECTIONS[train.flow_name]
    }
    form["pretrain"]["max_steps"] = 7  # edited in the form
    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(deployment_id, parameters={"config": form})
    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", str(run.id))  # as inside that flow run
    given = PipelineConfig.model_validate(form)
    assert given.ingest.workers != 3  # the built-in default
    config = _with_deployment_defaults(given)
    assert config.ingest.workers == 3  # the deployment's
    assert config.pretrain.max_steps == 7 and config.run_dir == form["run_dir"]  # the form's
    monkeypatch.delenv("PREFECT__FLOW_RUN_ID")
    assert _with_deployment_defaults(given) is given  # no deployment run: unchanged
