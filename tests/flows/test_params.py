"""Flow parameters as the Prefect UI shows them: every one described, the stages a multi-select of
the real names; a misspelled stage is refused before anything runs, in the flows and the CLI."""

from __future__ import annotations

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
