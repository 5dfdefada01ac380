"""Every statistic against an independent computation (scipy, statsmodels) on hand-built
tables, to 1e-9; the primary test calibrated on simulated null and true-effect data."""

import numpy as np
import pandas as pd
import polars as pl
import pytest
from fakes import make_scores
from scipy import stats as sps
from statsmodels.stats.anova import AnovaRM
from statsmodels.stats.multitest import multipletests

from cbtflow import stats
from cbtflow.judge.scores import scores_table
from cbtflow.stats.calibration import Design, studies

TOL = 1e-9


def totals_of(scores):
    return scores.filter(pl.col("item") == "total").to_pandas()


def profile_wide(scores, model):
    t = totals_of(scores)
    t = t[t["model"] == model]
    return t.groupby(["profile", "condition"])["score"].mean().unstack().dropna()


@pytest.mark.parametrize("ties", [False, True])
def test_conditional_test_is_a_paired_t_on_profile_means_and_says_so(ties):
    rng = np.random.default_rng(1)
    scores = make_scores(
        rng, effect={"a": 5.0}, ties=ties, seeds=(1, 2, 3), drop={("a", 0, 1, "cbt"), ("b", 3, 2, "instruct")}
    )  # unbalanced seeds still average
    primary = stats.analyse(scores)["judges"]["j"]["conditional_on_adapters"]["cbt_vs_instruct"]
    for model in ("a", "b", "c"):
        wide = profile_wide(scores, model)
        cbt, ins = wide["cbt"].to_numpy(), wide["instruct"].to_numpy()
        r, ref, diff = primary[model], sps.ttest_rel(cbt, ins), cbt - ins
        assert r["n_units"] == 8 and r["unit"].startswith("profile")
        assert r["estimate"] == pytest.approx(diff.mean(), abs=TOL), "positive = cbt better: instruct is reference"
        assert r["t"] == pytest.approx(ref.statistic, abs=TOL) and r["p"] == pytest.approx(ref.pvalue, abs=TOL)
        ci = sps.t.interval(0.95, len(diff) - 1, loc=diff.mean(), scale=sps.sem(diff))
        assert r["ci95"] == pytest.approx(list(ci), abs=TOL)
        assert r["cohens_dz"] == pytest.approx(diff.mean() / diff.std(ddof=1), abs=TOL)
        w = sps.wilcoxon(cbt, ins)
        assert r["wilcoxon"]["p"] == pytest.approx(w.pvalue, abs=TOL)
        assert r["mean_baseline"] == pytest.approx(ins.mean(), abs=TOL)
        assert r["label"].startswith("conditional on the adapters that were trained")


def test_pooled_is_the_mean_of_each_models_own_difference_and_not_a_holm_member():
    """Two models share instruct transcripts, a third's base is 10 points lower: the pooled
    row must average each model's own difference, never mix one model's tuned mean with
    another's baseline (the old formula, tuned over all minus distinct baselines, is off)."""
    rng = np.random.default_rng(2)
    scores = make_scores(
        rng,
        models=("a", "b", "c"),
        n_profiles=10,
        effect={"a": 3.0, "b": 1.0},
        model_shift={"c": -10.0},
        shared_baseline=("a", "b"),
        drop={("c", 4, 1, "cbt"), ("c", 4, 2, "cbt")},  # c lacks profile 4: unbalanced across models
    )
    result = stats.analyse(scores)["judges"]["j"]
    t = totals_of(scores)
    own = t.groupby(["model", "profile", "condition"])["score"].mean().unstack().dropna()
    per_profile = (own["cbt"] - own["instruct"]).groupby(level="profile").mean()
    pooled = result["conditional_on_adapters"]["cbt_vs_instruct"]["_pooled"]
    assert pooled["n_units"] == 10
    assert pooled["estimate"] == pytest.approx(per_profile.mean(), abs=TOL)
    assert pooled["p"] == pytest.approx(sps.ttest_1samp(per_profile, 0).pvalue, abs=TOL)
    distinct = t.drop_duplicates(subset=["condition", "transcript"])
    biased = distinct.groupby(["profile", "condition"])["score"].mean().unstack()
    assert abs((biased["cbt"] - biased["instruct"]).mean() - per_profile.mean()) > 1.0, "the old formula differs"
    for block in (result["primary"], result["conditional_on_adapters"]):
        contrast = block["cbt_vs_instruct"]
        expected = multipletests([contrast[m]["p"] for m in "abc"], method="holm")[1]
        assert [contrast[m]["p_holm"] for m in "abc"] == pytest.approx(list(expected), abs=TOL)
        assert contrast["_pooled"]["p_holm"] is None and contrast["_pooled"]["family"] is None
        assert {contrast[m]["family"] for m in "abc"} == {"primary"}
    assert result["multiplicity"]["families"]["primary"]["members"] == [f"cbt_vs_instruct.{m}" for m in "abc"]
    mixed = result["mixed_model"]
    assert mixed["n_observations"] == len(distinct), "the mixed model sees each distinct transcript once"


def test_dz_interval_covers_the_true_effect_at_its_nominal_rate():
    rng = np.random.default_rng(4)
    true_dz, n, covered = 0.5, 15, 0
    for _ in range(400):
        diff = rng.normal(true_dz, 1.0, size=n)
        res = stats.paired_test(diff, np.zeros(n))
        low, high = res["cohens_dz_ci95"]
        covered += low <= true_dz <= high
    assert 0.92 <= covered / 400 <= 0.98


def test_partial_eta_interval_agrees_with_the_dz_interval_for_two_levels():
    """Two levels: F = t² and the noncentral F(1, n−1, δ²) mirrors the noncentral t(δ), so
    the two intervals (different scipy distributions) must agree: η²p = δ² / (δ² + n + 1)."""
    n, t = 20, 4.2
    dz_low, dz_high = stats.cohens_dz_ci(t, n)
    delta = np.array([dz_low, dz_high]) * np.sqrt(n)
    expected = delta**2 / (delta**2 + n + 1)
    assert stats.partial_eta_squared_ci(t**2, 1, n - 1) == pytest.approx(list(expected), abs=1e-6)
    assert stats.partial_eta_squared_ci(0.01, 2, 30)[0] == 0.0, "a bound below zero is zero"


def test_rm_anova_on_profile_means_against_statsmodels_and_posthoc_holm():
    rng = np.random.default_rng(3)
    scores = make_scores(
        rng, n_profiles=10, model_shift={"b": 4.0, "c": -3.0}, drop={("c", 2, 1, "cbt"), ("c", 2, 2, "cbt")}
    )
    result = stats.analyse(scores)["judges"]["j"]["between_models"]
    for condition in ("instruct", "cbt"):
        t = totals_of(scores)
        means = t[t["condition"] == condition].groupby(["profile", "model"], as_index=False)["score"].mean()
        complete = means.groupby("profile").filter(lambda g: g["model"].nunique() == 3)
        ref = AnovaRM(complete, "score", "profile", within=["model"]).fit().anova_table
        r = result[condition]
        assert r["n"] == complete["profile"].nunique() and r["unit"].startswith("profile")
        assert r["F"] == pytest.approx(ref["F Value"].iloc[0], abs=TOL)
        assert r["p"] == pytest.approx(ref["Pr > F"].iloc[0], abs=TOL)
        assert r["df_effect"] == ref["Num DF"].iloc[0] and r["df_error"] == ref["Den DF"].iloc[0]
        wide = complete.pivot(index="profile", columns="model", values="score")
        raw = [sps.ttest_rel(wide[a], wide[b]).pvalue for a, b in (("a", "b"), ("a", "c"), ("b", "c"))]
        got = {(p["a"], p["b"]): p["p_holm"] for p in r["posthoc_holm"]}
        expected = multipletests(raw, method="holm")[1]
        assert [got[k] for k in (("a", "b"), ("a", "c"), ("b", "c"))] == pytest.approx(list(expected), abs=TOL)
        x = wide.to_numpy()
        k = x.shape[1]
        c = np.eye(k) - 1 / k
        sc = c @ np.cov(x, rowvar=False) @ c
        assert r["epsilon_gg"] == pytest.approx(np.trace(sc) ** 2 / ((k - 1) * np.trace(sc @ sc)), abs=TOL)
    assert result["cbt"]["subjects_dropped_incomplete"] == 1


def test_two_way_on_profile_means_and_the_study_analysis_on_pairs():
    rng = np.random.default_rng(5)
    scores = make_scores(rng, models=("a", "b"), n_profiles=9, effect={"a": 6.0})
    result = stats.analyse(scores)["judges"]["j"]
    t = totals_of(scores)
    means = t.groupby(["profile", "model", "condition"], as_index=False)["score"].mean()
    ref = AnovaRM(means, "score", "profile", within=["model", "condition"]).fit().anova_table
    for source, ref_name in (("model", "model"), ("condition", "condition"), ("model * condition", "model:condition")):
        assert result["model_by_condition"]["effects"][source]["F"] == pytest.approx(
            ref.loc[ref_name, "F Value"], abs=1e-7
        )
    study = result["as_in_study"]
    assert study["label"] == "as in the study: profile × seed treated as independent"
    pairs = t[t["model"] == "a"].pivot_table(index=["profile", "seed"], columns="condition", values="score")
    ref_pairs = sps.ttest_rel(pairs["cbt"], pairs["instruct"])
    assert study["paired"]["cbt_vs_instruct"]["a"]["n_units"] == 18
    assert study["paired"]["cbt_vs_instruct"]["a"]["p"] == pytest.approx(ref_pairs.pvalue, abs=TOL)
    t["subject"] = t["profile"] + "|" + t["seed"].astype(str)
    ref_study = AnovaRM(t, "score", "subject", within=["model", "condition"]).fit().anova_table
    assert study["model_by_condition"]["effects"]["condition"]["F"] == pytest.approx(
        ref_study.loc["condition", "F Value"], abs=1e-7
    )


def test_item_level_on_profile_means_with_holm():
    rng = np.random.default_rng(9)
    scores = make_scores(rng, models=("a",), n_profiles=6)
    items = stats.analyse(scores)["judges"]["j"]["items"]["cbt_vs_instruct"]["a"]
    names = sorted(items)
    assert len(names) == 11
    pvals = []
    for name in names:
        rows = scores.filter(pl.col("item") == name).to_pandas()
        w = rows.groupby(["profile", "condition"])["score"].mean().unstack()
        ref = sps.ttest_rel(w["cbt"], w["instruct"])
        assert items[name]["n"] == 6 and items[name]["t"] == pytest.approx(ref.statistic, abs=TOL)
        pvals.append(ref.pvalue)
    assert [items[n]["p_holm"] for n in names] == pytest.approx(list(multipletests(pvals, method="holm")[1]), abs=TOL)


def test_mixed_model_matches_statsmodels_and_recovers_the_adapter_run_variance():
    import statsmodels.formula.api as smf

    rng = np.random.default_rng(12)
    rows = []
    runs = {s: rng.normal(0, 4) for s in range(8)}  # each seed's adapter shifts all its patients
    for p in range(20):
        level = rng.normal(30, 4)
        for s in range(8):
            rows.append(
                {
                    "model": "m",
                    "condition": "instruct",
                    "seed": s,
                    "profile": f"p{p}",
                    "item": "total",
                    "score": level + rng.normal(0, 1),
                }
            )
            rows.append(
                {
                    "model": "m",
                    "condition": "cbt",
                    "seed": s,
                    "profile": f"p{p}",
                    "item": "total",
                    "score": level + 3 + runs[s] + rng.normal(0, 1),
                }
            )
    totals = pd.DataFrame(rows).assign(judge="j")
    mixed = stats.mixed_model(totals)
    assert mixed["converged"] and mixed["tuning_effect"]["m"]["estimate"] > 0, "cbt − instruct, not the reverse"
    assert "adapter_run_x_tuned" in mixed["variance_components"]
    assert 4.0 < mixed["variance_components"]["adapter_run_x_tuned"] < 64.0
    # Its CI is wider than a test that ignores the run variance: it generalises to re-training.
    low, high = mixed["tuning_effect"]["m"]["ci95"]
    assert high - low > 2 * 1.96 * np.sqrt(16 / 8) * 0.5
    data = totals.assign(
        tuned=(totals["condition"] == "cbt").astype(float),
        adapter_run="m|seed" + totals["seed"].astype(str),
        baseline_group="m",
        one=1,
    )
    ref = smf.mixedlm(
        "score ~ 0 + C(baseline_group) + C(model):tuned",
        data,
        groups="one",
        re_formula="0",
        vc_formula={
            "profile": "0 + C(profile)",
            "profile_x_tuned": "0 + C(profile):tuned",
            "adapter_run_x_tuned": "0 + C(adapter_run):tuned",
        },
    ).fit(reml=True, method=mixed["optimizer"])
    assert mixed["tuning_effect"]["m"]["estimate"] == pytest.approx(ref.fe_params["C(model)[m]:tuned"], abs=1e-6)


def _rejection_rate(results: dict, alpha: float = 0.05) -> float:
    ps = [r["p"] for m, r in results.items() if m != "_pooled"]
    return float(np.mean(np.array(ps) < alpha))


def test_calibration_primary_holds_alpha_on_null_data_where_the_study_analysis_does_not():
    from cbtflow.stats.paired import profile_contrast, study_contrast

    totals = studies(np.random.default_rng(2024), 400, effect=0.0, design=Design(run_sd=0.0))
    primary = _rejection_rate(profile_contrast(totals, "cbt", "instruct"))
    study = _rejection_rate(study_contrast(totals, "cbt", "instruct"))
    assert primary <= 0.08, f"primary false-positive rate {primary:.3f}"
    assert study > 0.10, f"the pseudo-replicated test should be anti-conservative here ({study:.3f})"


def test_calibration_primary_has_its_planned_power():
    from cbtflow.stats.paired import profile_contrast

    effect, n, seeds, response_sd, noise_sd = 1.5, 33, 3, 3.0, 2.0
    totals = studies(np.random.default_rng(7), 1000, effect=effect, design=Design(run_sd=0.0))
    empirical = _rejection_rate(profile_contrast(totals, "cbt", "instruct"))
    sd_diff = np.sqrt(response_sd**2 + 2 * noise_sd**2 / seeds)
    nc, crit = effect / sd_diff * np.sqrt(n), sps.t.ppf(0.975, n - 1)
    planned = sps.nct.sf(crit, n - 1, nc) + sps.nct.cdf(-crit, n - 1, nc)
    assert abs(empirical - planned) < 0.05, f"empirical {empirical:.3f} vs planned {planned:.3f}"


def test_one_model_gives_a_primary_and_a_reason_for_anova():
    rng = np.random.default_rng(2)
    result = stats.analyse(make_scores(rng, models=("only",)))["judges"]["j"]
    assert result["primary"]["cbt_vs_instruct"]["only"]["ran"] is True
    for condition in ("instruct", "cbt"):
        assert "2 models" in result["between_models"][condition]["reason"]
    assert result["model_by_condition"]["ran"] is False


def test_degenerate_inputs_say_why():
    assert stats.paired_test(np.array([1.0]), np.array([2.0]))["reason"].startswith("needs at least 2 pairs")
    same = stats.paired_test(np.array([3.0, 4.0, 5.0]), np.array([1.0, 2.0, 3.0]))
    assert same["t"] is None and "undefined" in same["note"]
    zero = stats.paired_test(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    assert zero["wilcoxon"]["ran"] is False


def test_a_single_condition_is_an_error_not_an_empty_analysis():
    rng = np.random.default_rng(2)
    scores = make_scores(rng, models=("m",)).filter(pl.col("condition") == "cbt")
    with pytest.raises(ValueError, match=r"judge 'j': conditions \['cbt'\] contain no pair"):
        stats.analyse(scores)


def test_context_length_slopes_against_scipy():
    rng = np.random.default_rng(11)
    docs = []
    for i in range(30):
        tokens, turns = int(rng.integers(200, 6000)), int(rng.integers(4, 40))
        for condition in ("instruct", "cbt"):
            docs.append(
                {
                    "judge": "j",
                    "model": "m",
                    "condition": condition,
                    "seed": 1,
                    "profile_id": f"eval-{i:03d}",
                    "items": {"a": {"score": 1.0}},
                    "total": 50 - 2.0 * tokens / 1000 + rng.normal(0, 1),
                    "percent": 0.0,
                    "transcript_tokens": tokens,
                    "transcript_turns": turns,
                }
            )
    table = scores_table(docs)
    ctx = stats.analyse(table)["judges"]["j"]["context_length"]
    t = table.filter(pl.col("item") == "total").to_pandas()
    ref = sps.linregress(t["transcript_tokens"], t["score"])
    assert ctx["slope_per_1000_tokens"] == pytest.approx(ref.slope * 1000, abs=1e-9)
    ref_turn = sps.linregress(t["transcript_turns"], t["score"])
    assert ctx["per_turn"]["slope"] == pytest.approx(ref_turn.slope, abs=1e-9)


def test_a_table_of_hundreds_of_models_skips_the_mixed_model_with_its_reason():
    totals = studies(np.random.default_rng(3), 250, effect=0.0, design=Design(n_profiles=10, run_sd=0.0))
    result = stats.mixed_model(totals)
    assert result["ran"] is False and "random-effect columns" in result["reason"]
