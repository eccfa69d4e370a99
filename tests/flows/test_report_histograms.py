"""Any data stage's manifest may carry histograms (`histograms`: name -> edges, counts, cutoff);
the report draws them as bars in the markdown artifact and on the console."""

from __future__ import annotations

from flows.report import histogram_pictures, print_report, render_markdown
from pipeline.core.layout import RunLayout
from pipeline.core.stage import write_manifest


def _finished_dedup(run_dir, histograms):
    RunLayout(run_dir).dedup.mkdir(parents=True)
    write_manifest(
        RunLayout(run_dir).dedup,
        stage="dedup",
        counts={"records_in": 10, "documents": 7, "rejected": 3},
        reasons={"duplicate": 3},
        histograms=histograms,
    )


def test_a_stage_histogram_is_drawn_with_its_cutoff(tmp_path, capsys):
    h = {"edges": [0.0, 0.25, 0.5, 0.75, 1.0], "counts": [1, 2, 0, 7], "cutoff": 0.3}
    _finished_dedup(tmp_path, {"similarity": h})
    [(title, lines)] = histogram_pictures(tmp_path, width=7)
    assert title == "dedup: similarity (cutoff 0.3)"
    assert [line.split("|")[1].strip() for line in lines] == ["#", "##", "", "#######"]
    assert lines[1].endswith("2 <- cutoff") and not lines[0].endswith("cutoff")
    text = render_markdown(tmp_path)
    assert "**dedup: similarity (cutoff 0.3)**" in text and "|" + "#" * 40 + "| 7" in text
    print_report(tmp_path)
    assert "dedup: similarity" in capsys.readouterr().out


def test_a_manifest_without_histograms_draws_none(tmp_path):
    _finished_dedup(tmp_path, {})
    assert histogram_pictures(tmp_path) == []
    assert "cutoff" not in render_markdown(tmp_path)
