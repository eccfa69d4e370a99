"""Task scores in the Prefect artifact's table and the model card (pure functions)."""

from __future__ import annotations

from pathlib import Path

from pipeline.evaluate.report import tasks_markdown, tasks_sentence
from pipeline.register.lineage import RunModel, model_card

METRICS = {
    "sft_val_loss": 4.7,
    "cloze_acc": 0.25,
    "cloze_acc_stderr": 0.031,
    "cloze_perplexity": 900.0,
    "cloze_perplexity_stderr": 80.0,
    "base_cloze_acc": 0.2,
    "base_cloze_acc_stderr": 0.028,
    "mc_acc": 0.5,
    "mc_acc_stderr": 0.05,
    "mc_acc_norm": 0.45,
    "mc_acc_norm_stderr": 0.05,
    "base_mc_acc": 0.3,
    "base_mc_acc_stderr": 0.046,
    "base_mc_acc_norm": 0.35,
    "base_mc_acc_norm_stderr": 0.048,
}


def test_the_task_table_has_a_row_per_accuracy_with_standard_errors():
    table = tasks_markdown(METRICS).splitlines()
    assert table[0] == "| task metric | model | base |"
    assert "| cloze_acc | 0.250 ± 0.031 | 0.200 ± 0.028 |" in table
    assert "| mc_acc_norm | 0.450 ± 0.050 | 0.350 ± 0.048 |" in table
    assert len(table) == 2 + 3  # cloze_acc, mc_acc, mc_acc_norm; perplexity is not a row
    assert tasks_markdown({"sft_val_loss": 4.7}) == ""


def test_the_model_card_carries_the_task_scores(tmp_path):
    evaluate = {"metrics": METRICS, "tasks": {"cloze": {"examples": 200}, "mc": {"examples": 86}}}
    rm = RunModel(tmp_path, "finetune", Path("w"), Path("c"), Path("t"), {"evaluate": evaluate})
    card = model_card(rm, "lm")
    assert f"examples: cloze 200, mc 86): {tasks_sentence(METRICS)}." in card
    assert "cloze_acc 0.250 ± 0.031 (base 0.200 ± 0.028)" in card
    metrics_line = next(line for line in card.splitlines() if line.startswith("- **Metrics**"))
    assert "sft_val_loss 4.7" in metrics_line and "cloze" not in metrics_line
