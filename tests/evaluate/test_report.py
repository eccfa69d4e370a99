"""Task scores in the Prefect artifact's table and the model card (pure functions)."""

from __future__ import annotations

from pathlib import Path

from pipeline.evaluate.report import (
    contamination_markdown,
    contamination_sentence,
    tasks_markdown,
    tasks_sentence,
)
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


def test_the_contamination_table_puts_clean_scores_beside_the_full_sets():
    shares = {"mc_items": 86.0, "mc_clean_items": 60.0, "mc_contaminated_share": 26 / 86}
    shares |= {"cloze_items": 200.0, "cloze_clean_items": 0.0, "cloze_contaminated_share": 1.0}
    clean = {"mc_acc_clean": 0.55, "mc_acc_clean_stderr": 0.064, "base_mc_acc_clean": 0.3}
    table = contamination_markdown(METRICS | shares | clean).splitlines()
    assert table[0].startswith("| task metric | contaminated | clean items | all | clean |")
    assert table[2:] == [
        "| mc_acc | 30.2% of 86 | 60 | 0.500 ± 0.050 | 0.550 ± 0.064 | 0.300 ± 0.046 | 0.300 |"
    ]
    assert tasks_markdown(METRICS | shares | clean).endswith("\n".join(table))
    assert contamination_markdown(METRICS) == ""  # no check ran: no table
    assert contamination_sentence(METRICS | shares | clean) == (
        "cloze 100.0% of 200 items in the training text (acc 0.250, clean - (no clean item)); "
        "mc 30.2% of 86 items in the training text (acc 0.500, clean 0.550)"
    )
