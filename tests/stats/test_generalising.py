"""The headline generalises over patients and training runs: two implementations agree,
R's lmerTest agrees (when installed; required in CI), the fallback is never narrower, one
seed is stated, and the tests hold their level on nulls with every variance source."""

import os
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from fakes import make_scores

from cbtflow import stats
from cbtflow.report import build as report
from cbtflow.stats.calibration import Design, shared_baseline_study, studies
from cbtflow.stats.generalising import _reml, closed_form, crossed, headline_contrast
from cbtflow.stats.paired import profile_contrast


def crossed_table(rng, n_profiles=12, seeds=4, response_sd=2.0, run_sd=1.5, noise_sd=2.0, effect=1.0):
    response, runs = rng.normal(0, response_sd, n_profiles), rng.normal(0, run_sd, seeds)
    rows = [
        {"profile": f"p{p}", "seed": s, "d": effect + response[p] + runs[s] + rng.normal(0, noise_sd)}
        for p in range(n_profiles)
        for s in range(seeds)
    ]
    return pd.DataFrame(rows)


def test_closed_form_equals_reml_with_satterthwaite_on_a_complete_table():
    """The ANOVA closed form and the REML fit (statsmodels + our Satterthwaite) are separate
    computations; on a balanced table with no component at zero they must agree."""
    frame = crossed_table(np.random.default_rng(5))
    closed = crossed(frame)
    assert closed["fallback"] is None and closed["method"].endswith("t-based 95% CI")
    reml = _reml(frame)
    assert reml["boundary"] == []
    a, b = closed["inference"], reml["result"]
    assert a.estimate == pytest.approx(b.estimate, abs=1e-9)
    assert a.se == pytest.approx(b.se, rel=1e-6) and a.df == pytest.approx(b.df, rel=1e-6)
    assert a.ci95 == pytest.approx(b.ci95, rel=1e-6)
    for name in ("patient_x_tuning", "adapter_run", "residual"):
        assert closed["variance_components"][name] == pytest.approx(reml["components"][name], rel=1e-6)
    assert 2 < a.df < 12 - 1 + 4 - 1, "small-sample df, not a z test"


def require_lmertest() -> None:
    """Skip without R's lmerTest, unless CI requires it (CBTFLOW_REQUIRE_R=1)."""
    found = shutil.which("Rscript") is not None
    if found:
        found = subprocess.run(["Rscript", "-e", "library(lmerTest)"], capture_output=True).returncode == 0
    if not found and os.environ.get("CBTFLOW_REQUIRE_R") == "1":
        pytest.fail("CBTFLOW_REQUIRE_R=1 but Rscript with lmerTest is not installed (apt r-cran-lmertest)")
    if not found:
        pytest.skip("R's lmerTest is not installed (apt-get install r-cran-lmertest)")


R_SCRIPT = r"""
suppressMessages(library(lmerTest))
long <- read.csv("long.csv")
out <- NULL
for (m in unique(long$model)) {
  x <- long[long$model == m, ]
  t <- x[x$condition == "cbt", c("profile", "seed", "score")]
  b <- x[x$condition == "instruct", c("profile", "seed", "score")]
  d <- merge(t, b, by = c("profile", "seed"))
  d$d <- d$score.x - d$score.y
  d$profile <- factor(d$profile); d$seed <- factor(d$seed)
  fit <- lmer(d ~ 1 + (1 | profile) + (1 | seed), data = d, REML = TRUE,
              control = lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12)))
  s <- summary(fit)$coefficients
  ci <- s[1, 1] + c(-1, 1) * qt(0.975, s[1, 3]) * s[1, 2]
  out <- rbind(out, data.frame(model = m, estimate = s[1, 1], se = s[1, 2], df = s[1, 3],
                               low = ci[1], high = ci[2], p = s[1, 5]))
}
write.csv(out, "reference.csv", row.names = FALSE)
"""


def test_headline_matches_lmertest(tmp_path):
    """R's lmerTest (Satterthwaite) on differences R builds itself from the long table.
    Needs Debian's r-cran-lmertest; .ci/run installs it and sets CBTFLOW_REQUIRE_R=1."""
    require_lmertest()
    rng = np.random.default_rng(11)
    long = []
    for model, (n_profiles, seeds, drop) in {"bal": (10, 3, 0), "wide": (16, 5, 0), "unbal": (12, 4, 5)}.items():
        frame = crossed_table(rng, n_profiles, seeds, response_sd=2.5, run_sd=2.0)
        frame = frame.drop(rng.choice(len(frame), size=drop, replace=False)) if drop else frame
        for row in frame.itertuples():
            base = rng.normal(30, 4)
            common = {"judge": "j", "item": "total", "model": model, "profile": row.profile, "seed": row.seed}
            long.append({**common, "condition": "instruct", "score": base})
            long.append({**common, "condition": "cbt", "score": base + row.d})
    long = pd.DataFrame(long)
    long.to_csv(tmp_path / "long.csv", index=False)
    (tmp_path / "ref.R").write_text(R_SCRIPT)
    subprocess.run(["Rscript", "ref.R"], cwd=tmp_path, check=True, capture_output=True)
    reference = pd.read_csv(tmp_path / "reference.csv").set_index("model")
    headline = headline_contrast(long, "cbt", "instruct", profile_contrast(long, "cbt", "instruct"))
    for model, ref in reference.iterrows():
        block = headline[model]
        assert block["fallback"] is None, f"{model}: the reference tables have every component positive"
        assert block["estimate"] == pytest.approx(ref["estimate"], abs=1e-6)
        assert block["se"] == pytest.approx(ref["se"], rel=1e-4)
        assert block["df"] == pytest.approx(ref["df"], rel=1e-3)
        assert block["ci95"] == pytest.approx([ref["low"], ref["high"]], rel=1e-3)
        assert block["p"] == pytest.approx(ref["p"], rel=1e-3, abs=1e-6)
    assert "closed form" in headline["bal"]["method"] and "REML" in headline["unbal"]["method"]


def test_a_component_at_zero_falls_back_to_a_wider_interval_and_says_which():
    rng = np.random.default_rng(3)
    for drop in (0, 4):  # closed form, then REML on an incomplete table
        frame = crossed_table(rng, n_profiles=15, seeds=3, run_sd=0.0, noise_sd=3.0)
        seed_shift = frame.groupby("seed")["d"].transform("mean") - frame["d"].mean()
        frame = frame.assign(d=frame["d"] - seed_shift).iloc[drop:]  # runs vary less than noise
        result = crossed(frame)
        assert result["fallback"] is not None, "the run variance is zero in truth and estimated so"
        assert "adapter-run" in result["fallback"]["reason"] or "adapter_run" in result["fallback"]["reason"]
        assert result["method"].startswith("conservative fallback")
        width = np.diff(result["inference"].ci95)[0]
        means = frame.groupby("profile")["d"].mean()
        conditional = np.diff(stats.paired_test(means.to_numpy(), np.zeros(len(means)))["ci95"])[0]
        assert width >= conditional > 0, "never narrower than the test that ignores training runs"
        boundary = _reml(frame)["result"]  # the fit it replaces, run variance held at zero
        assert width >= np.diff(boundary.ci95)[0] - 1e-9, "never narrower than the fit it replaces"
        assert result["inference"].df <= min(frame["profile"].nunique(), frame["seed"].nunique()) - 1


def test_one_seed_is_stated_in_the_block_and_the_reports_first_lines(tmp_path):
    scores = make_scores(np.random.default_rng(4), models=("a", "b"), seeds=(1,), effect={"a": 3.0})
    result = stats.analyse(scores)
    block = result["judges"]["j"]["primary"]["cbt_vs_instruct"]["a"]
    assert block["generalises_over"] == ["patients"] and block["scope_note"].startswith("one seed")
    conditional = result["judges"]["j"]["conditional_on_adapters"]["cbt_vs_instruct"]["a"]
    assert block["estimate"] == conditional["estimate"] and block["ci95"] == conditional["ci95"]
    report.write_report(
        tmp_path / "r.md", stats=result, primary_judge="j", figures={}, usage={}, train_logs={}, config_summary=""
    )
    opening = (tmp_path / "r.md").read_text().split("> Research software")[0]
    assert "holds for the one adapter trained per model" in opening
    assert "generalises over patients only (one seed" in opening


def test_two_seeds_generalise_over_training_runs_with_their_df():
    scores = make_scores(np.random.default_rng(6), models=("a",), n_profiles=8, seeds=(1, 2, 3))
    block = stats.analyse(scores)["judges"]["j"]["primary"]["cbt_vs_instruct"]["a"]
    assert block["generalises_over"] == ["patients", "training runs"]
    assert block["n_adapter_runs"] == 3 and block["n_profiles"] == 8 and block["df"] <= 7 + 2
    assert {"estimate", "ci95", "p", "df", "method", "generalises_over", "n_units"} <= set(block)


def test_vectorised_closed_form_equals_the_one_table_path():
    rng = np.random.default_rng(9)
    tables = rng.normal(0, 1, size=(5, 7, 3)) + rng.normal(0, 2, size=(5, 1, 3))
    batch = closed_form(tables)
    for i, table in enumerate(tables):
        frame = pd.DataFrame([{"profile": p, "seed": s, "d": table[p, s]} for p in range(7) for s in range(3)])
        one = crossed(frame)["inference"]
        assert one.estimate == pytest.approx(batch["estimate"][i]) and one.df == pytest.approx(batch["df"][i])
        assert one.se == pytest.approx(np.sqrt(batch["variance"][i]))


def _rejections(blocks: dict, alpha: float = 0.05) -> float:
    return float(np.mean([b["p"] < alpha for m, b in blocks.items() if m != "_pooled"]))


def test_calibration_headline_holds_alpha_with_training_run_variance():
    """Null: patients respond differently (sd 3) and every adapter run shifts its patients
    (sd 1.5), 3 seeds, 33 profiles, 400 studies. The conditional test is anti-conservative
    here; the headline must not be."""
    totals = studies(np.random.default_rng(2026), 400, effect=0.0, design=Design(run_sd=1.5, seeds=3))
    conditional = profile_contrast(totals, "cbt", "instruct")
    headline = headline_contrast(totals, "cbt", "instruct", profile_contrast(totals, "cbt", "instruct"))
    assert _rejections(headline) <= 0.08, f"headline false-positive rate {_rejections(headline):.3f}"
    assert _rejections(conditional) > 0.15, "the conditional test ignores run variance and over-rejects"


def test_calibration_pooled_headline_with_shared_baselines_and_unequal_bases():
    """Null: models a and b share instruct transcripts, c's base is 10 points lower, no model
    has any effect. The pooled headline (each model's own difference) holds its level."""
    rng = np.random.default_rng(77)
    design = Design(n_profiles=12, seeds=3)
    rejected, estimates = [], []
    for _ in range(150):
        totals = shared_baseline_study(rng, design=design)
        pooled = headline_contrast(totals, "cbt", "instruct", profile_contrast(totals, "cbt", "instruct"))["_pooled"]
        rejected.append(pooled["p"] < 0.05)
        estimates.append(pooled["estimate"])
    assert np.mean(rejected) <= 0.08, f"pooled false-positive rate {np.mean(rejected):.3f}"
    assert abs(np.mean(estimates)) < 0.3, "unbiased: the lower base does not leak into the pooled difference"


R_MIXED = r"""
suppressMessages(library(lmerTest))
x <- read.csv("design.csv")
x$profile <- factor(x$profile); x$adapter_run <- factor(x$adapter_run)
x$baseline_group <- factor(x$baseline_group); x$model <- factor(x$model)
fit <- lmer(score ~ 0 + baseline_group + model:tuned + (1 | profile) + (0 + tuned | profile) +
            (0 + tuned | adapter_run), data = x, REML = TRUE,
            control = lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12)))
s <- summary(fit)$coefficients
rows <- grep(":tuned", rownames(s))
write.csv(data.frame(term = rownames(s)[rows], estimate = s[rows, 1], se = s[rows, 2], df = s[rows, 3]),
          "mixed.csv", row.names = FALSE)
"""


def test_mixed_model_section_has_lmertest_satterthwaite_df(tmp_path):
    require_lmertest()
    from cbtflow.stats.mixed import _design

    rng = np.random.default_rng(21)
    rows = []
    for model in ("a", "b"):
        runs = rng.normal(0, 2.0, 4)
        for p in range(14):
            level, response = rng.normal(30, 4), rng.normal(0, 2.5)
            for s in range(4):
                common = {"judge": "j", "item": "total", "model": model, "profile": f"p{p}", "seed": s}
                rows.append({**common, "condition": "instruct", "score": level + rng.normal(0, 1.5)})
                cbt = level + 1 + response + runs[s] + rng.normal(0, 1.5)
                rows.append({**common, "condition": "cbt", "score": cbt})
    totals = pd.DataFrame(rows)
    _design(totals, "cbt", "instruct").to_csv(tmp_path / "design.csv", index=False)
    (tmp_path / "mixed.R").write_text(R_MIXED)
    subprocess.run(["Rscript", "mixed.R"], cwd=tmp_path, check=True, capture_output=True)
    reference = pd.read_csv(tmp_path / "mixed.csv")
    mixed = stats.mixed_model(totals)
    for row in reference.itertuples():
        model = row.term.split(":")[0].removeprefix("model")
        effect = mixed["tuning_effect"][model]
        assert effect["estimate"] == pytest.approx(row.estimate, abs=1e-5)
        assert effect["se"] == pytest.approx(row.se, rel=1e-3) and effect["df"] == pytest.approx(row.df, rel=1e-2)
