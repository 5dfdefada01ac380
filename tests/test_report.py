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


def _usage_log(stage, job, label, n=4):
    from cbtflow.llm.usage import FIELDS

    totals = {**dict.fromkeys(FIELDS, 0), "calls": n}
    return {"stage": stage, "job": job, "totals": totals, "runs_as": {"local/m": {label: n}} if label else {}}


def test_jobs_compared_with_each_other_but_computed_at_different_precisions_lead_the_report(analysed, tmp_path):
    """A model's cbt sessions in int4 on one machine and its instruct sessions in bfloat16 on
    another (auto resolves per machine; the call cache keys the declared precision): the
    contrast mixes precision with condition, and the report says so in its first lines. The
    same precision everywhere, or an API model's jobs with no local replies, say nothing."""
    from cbtflow.report.sections.usage import usage_by_stage

    _, result = analysed
    uniform = [
        _usage_log("simulate", {"model": "a", "condition": c, "seed": "1"}, "int4 on cpu") for c in ("cbt", "instruct")
    ] + [_usage_log("judge", {"model": "a", "condition": "cbt", "seed": "1", "judge": "api"}, None)]
    assert all("precision_mixes" not in row for row in usage_by_stage(uniform).values())
    mixed = uniform + [
        _usage_log("simulate", {"model": "a", "condition": "instruct", "seed": "2"}, "bfloat16 on cuda"),
        _usage_log("judge", {"model": "a", "condition": "cbt", "seed": "1", "judge": "small"}, "int4 on cpu"),
        _usage_log("judge", {"model": "a", "condition": "instruct", "seed": "1", "judge": "small"}, "float32 on cpu"),
    ]
    usage = usage_by_stage(mixed)
    assert usage["simulate"]["precision_mixes"] == [
        "simulate jobs of model `a` ran differently: bfloat16 on cuda in 1 job (a/instruct/2, ...); "
        "int4 on cpu in 2 jobs (a/cbt/1, ...)"
    ]
    assert len(usage["judge"]["precision_mixes"]) == 1 and "judge `small`" in usage["judge"]["precision_mixes"][0]
    report.write_report(
        tmp_path / "r.md", stats=result, primary_judge="j", figures={}, usage=usage, train_logs={}, config_summary=""
    )
    head = (tmp_path / "r.md").read_text().split("## Answer")[0]
    assert head.count("**Mixed precision.**") == 2 and "model `a`" in head and "judge `small`" in head
