"""`ablate_flow` scored on a user's eval file (issue 31 item 3): real data stages (the quality
stage among them), real proxy training, real MLflow.

Three variants on the bundled sample: the base (quality and decontaminate off, as
configs/ablations/quality.yaml has it: decontaminate would remove the leaky variant's copies of the
eval pages, `ablate.eval_set` being one of its evaluation sets), the learned quality stage
keeping the best half, and a variant that adds the eval file itself to its inputs: the report
must count its eval documents in its corpus, and only its.
"""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from flows.ablate import ablate_flow
from pipeline.ablate.evalset import eval_set_fingerprint, file_documents
from pipeline.ablate.report import REPORT_FILE, RESULTS_FILE
from pipeline.core.stage import read_manifest
from pipeline.scaling.tracking import PARENT_FILE
from tests.ablate.test_flow import OVERRIDES, SETTINGS
from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

HELDOUT = REPO / "data" / "sample" / "python-docs-heldout.jsonl"
PROXY = SETTINGS[SETTINGS.index("proxy:") : SETTINGS.index("variants:")]
VARIANTS = f"""ablate: {{bootstrap_samples: 500, eval_set: [{HELDOUT}]}}
base: {{quality.enabled: false, quality.register_as: '', decontaminate.enabled: false}}
{PROXY}variants:
  quality_half: {{quality.enabled: true, quality.keep_fraction: 0.5}}
  leaky: {{extra_inputs: [{HELDOUT}]}}
"""


def test_every_variant_is_scored_on_the_eval_file_and_a_leak_is_counted(
    tmp_path, with_mlflow, prefect_harness
):
    variants, out = tmp_path / "variants.yaml", tmp_path / "abl"
    variants.write_text(VARIANTS)
    ablate_flow(str(variants), str(out), str(REPO / "configs" / "demo.yaml"), OVERRIDES)

    results = json.loads((out / RESULTS_FILE).read_text())
    docs = file_documents([str(HELDOUT)])
    fingerprint = eval_set_fingerprint(docs, by_text=True)
    assert results["eval_documents"] == len(docs) == 31
    assert results["eval_bytes"] == sum(len(d.text.encode()) for d in docs)
    assert results["eval_set"] == {
        "source": "files",
        "files": [str(HELDOUT)],
        "fingerprint": fingerprint,
    }
    rows = results["variants"]
    # Every variant scored the same documents, in the file's order.
    for name in rows:
        scores = json.loads((out / name / "seed-0" / "eval_scores.json").read_text())
        assert scores["ids"] == [d.id for d in docs], name
    # The eval file is in no variant's corpus but the one that ingests it.
    assert rows["base"]["data"]["eval_in_corpus"] == 0
    assert rows["quality_half"]["data"]["eval_in_corpus"] == 0
    assert rows["leaky"]["data"]["eval_in_corpus"] == 31
    # The quality variant's corpus is the quality stage's output: half the base's pages.
    kept = read_manifest(out / "quality_half" / "quality")["counts"]["documents"]
    assert rows["quality_half"]["data"]["documents"] == kept == 155
    assert rows["base"]["data"]["documents"] == 310
    assert rows["quality_half"]["data"]["stages"]["quality"] == 155
    assert "quality" not in rows["base"]["data"]["stages"]
    report = (out / REPORT_FILE).read_text()
    assert f"Eval set: `{HELDOUT}` (31 documents" in report and fingerprint in report
    assert "| after quality |" in report and "| base | 350 | 310 | 310 | — |" in report

    parent = json.loads((out / PARENT_FILE).read_text())["run_id"]
    tags = MlflowClient().get_run(parent).data.tags
    assert tags["lmpipe.ablate.eval_fingerprint"] == fingerprint
    assert tags["lmpipe.ablate.eval_set"] == str(HELDOUT)
    metrics = MlflowClient().get_run(parent).data.metrics
    assert metrics["leaky.eval_in_corpus"] == 31 and metrics["base.eval_in_corpus"] == 0
