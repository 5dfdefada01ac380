"""report.md shows what stats.json computes, primary table first, every column naming its
condition; the paired figure draws one line per simulated patient."""

import numpy as np
import pytest
from fakes import make_scores

from cbtflow import stats
from cbtflow.report import build as report
from cbtflow.report import figures


@pytest.fixture(scope="module")
def analysed():
    scores = make_scores(
        np.random.default_rng(8),
        n_profiles=9,
        seeds=(1, 2, 3),
        effect={"a": 4.0},
        model_shift={"b": 5.0},
        shared_baseline=("a", "b"),
    )
    return scores, stats.analyse(scores)


def test_report_leads_with_the_primary_table_and_shows_every_analysis(analysed, tmp_path):
    _, result = analysed
    report.write_report(
        tmp_path / "r.md", stats=result, primary_judge="j", figures={}, usage={}, train_logs={}, config_summary=""
    )
    text = (tmp_path / "r.md").read_text()
    order = [
        "## Answer",
        "### Primary result",
        "### Conditional on the adapters trained",
        "### Between models",
        "Post-hoc paired tests",
        "### Item level",
        "### Mixed model",
        "### The study's analysis",
    ]
    positions = [text.index(heading) for heading in order]
    assert positions == sorted(positions)
    primary = result["judges"]["j"]["primary"]["cbt_vs_instruct"]["a"]
    low, high = primary["ci95"]
    assert f"{primary['estimate']:.3f} [{low:.3f}, {high:.3f}]" in text
    assert f"| {primary['p_holm']:.3g} |" in text or f"| {primary['p_holm']:.3f} |" in text
    assert "| mean instruct | mean cbt | cbt − instruct [95% CI] |" in text
    answer = text.split("## Answer")[1].split("\n\n")[1]
    assert f"**a**: cbt − instruct = {primary['estimate']:.3f} [{low:.3f}, {high:.3f}]" in answer
    assert "generalises over patients and training runs" in answer and "judge `j`" in answer
    assert "9 simulated patients × 3 adapter runs" in answer and f"df {primary['df']:.1f}" in answer
    assert "Holm p: family *primary* (3 tests" in text
    assert "t (Satterthwaite df)" in text
    assert "p (Greenhouse-Geisser)" in text and "partial η² [95% CI]" in text
    assert "(0 + tuned | adapter run)" in text and "Variance components:" in text
    assert "as in the study: profile × seed treated as independent" in text
    assert "adapter" in text.split("*Variance sources.*")[1].split("\n")[0]


def test_paired_figure_plots_profile_means(analysed, tmp_path, monkeypatch):
    scores, _ = analysed
    captured = {}
    monkeypatch.setattr(figures, "_save", lambda fig, path: captured.setdefault("fig", fig))
    figures.fig_paired_totals(scores, "j", tmp_path / "f.png")
    for ax in captured["fig"].axes:
        assert len(ax.lines) == 9 + 1, "one line per profile (seeds averaged) and the mean"


def test_a_figure_with_nothing_to_draw_says_why_instead_of_an_empty_panel(tmp_path):
    import struct

    def size(path):
        header = path.read_bytes()[:24]
        return struct.unpack(">II", header[16:24])  # a PNG's IHDR width and height

    figures.fig_loss_curves({}, tmp_path / "loss.png")
    figures.fig_item_heatmap({"judges": {"j": {"items": {"cbt_vs_instruct": {}}}}}, "j", tmp_path / "items.png")
    figures.fig_usage({}, tmp_path / "usage.png")
    placeholder = size(tmp_path / "loss.png")
    assert placeholder == (550, 220), "the 5 × 2 inch message figure at 110 dpi"
    assert size(tmp_path / "items.png") == placeholder and size(tmp_path / "usage.png") == placeholder
    figures.fig_loss_curves(
        {"m/seed1": {"loss_curve": [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}]}}, tmp_path / "l.png"
    )
    assert size(tmp_path / "l.png") != placeholder, "a run with adapters draws its curves"


def test_degrees_of_freedom_are_rounded_to_what_they_can_mean():
    from cbtflow.report.format import fmt_df

    assert [fmt_df(v) for v in (11, 11.0, 1.9301, 2.6458, None)] == ["11", "11", "1.9", "2.6", "—"]
