"""Every statistic against an independent computation (scipy, statsmodels AnovaRM), to 1e-9."""


import numpy as np
import polars as pl
import pytest
from scipy import stats as sps
from statsmodels.stats.anova import AnovaRM
from statsmodels.stats.multitest import multipletests

from cbtflow import stats
from cbtflow.scores import scores_table

TOL = 1e-9


def make_scores(rng, models=("a", "b", "c"), n_profiles=8, seeds=(1, 2), effect=None, model_shift=None,
                drop=(), ties=False):
    effect = effect or {}
    model_shift = model_shift or {}
    docs = []
    for m in models:
        for p in range(n_profiles):
            subject_level = rng.normal(30, 5)
            for s in seeds:
                for cond in ("instruct", "cbt"):
                    if (m, p, s, cond) in drop:
                        continue
                    items = rng.integers(0, 7, size=11).astype(float) if ties else rng.uniform(0, 6, size=11)
                    total = subject_level + model_shift.get(m, 0) + (effect.get(m, 0) if cond == "cbt" else 0) + rng.normal(0, 2)
                    if ties:
                        total = float(round(total))
                    docs.append({"judge": "j", "heuristic": False, "model": m, "condition": cond, "seed": s,
                                 "profile_id": f"eval-{p:03d}", "items": {f"i{k}": {"score": float(v)} for k, v in enumerate(items)},
                                 "total": total, "percent": 100 * total / 66})
    return scores_table(docs)


def wide_totals(scores, model):
    t = scores.filter((pl.col("item") == "total") & (pl.col("model") == model)).to_pandas()
    w = t.pivot_table(index=["profile", "seed"], columns="condition", values="score").dropna()
    return w["cbt"].to_numpy(), w["instruct"].to_numpy()


@pytest.mark.parametrize("ties", [False, True])
def test_paired_against_scipy(ties):
    rng = np.random.default_rng(1)
    scores = make_scores(rng, effect={"a": 5.0}, ties=ties,
                         drop={("a", 0, 1, "cbt"), ("b", 3, 2, "instruct")})  # unbalanced: incomplete pairs drop
    result = stats.analyse(scores)["judges"]["j"]["paired_cbt_vs_instruct"]
    for model in ("a", "b", "c"):
        cbt, ins = wide_totals(scores, model)
        r = result[model]
        ref = sps.ttest_rel(cbt, ins)
        diff = cbt - ins
        assert r["n"] == len(diff)
        assert r["t"] == pytest.approx(ref.statistic, abs=TOL)
        assert r["p"] == pytest.approx(ref.pvalue, abs=TOL)
        assert r["df"] == len(diff) - 1
        assert r["mean_difference"] == pytest.approx(diff.mean(), abs=TOL)
        assert r["cohens_dz"] == pytest.approx(diff.mean() / diff.std(ddof=1), abs=TOL)
        ci = sps.t.interval(0.95, len(diff) - 1, loc=diff.mean(), scale=sps.sem(diff))
        assert r["ci95"] == pytest.approx(list(ci), abs=TOL)
        w = sps.wilcoxon(cbt, ins)
        assert r["wilcoxon"]["W"] == pytest.approx(w.statistic, abs=TOL)
        assert r["wilcoxon"]["p"] == pytest.approx(w.pvalue, abs=TOL)
    assert result["a"]["n"] == 15 and result["b"]["n"] == 15


def test_planted_effect_is_recovered():
    rng = np.random.default_rng(7)
    scores = make_scores(rng, n_profiles=20, effect={"a": 11.33, "b": 11.33, "c": 0.0})
    result = stats.analyse(scores)["judges"]["j"]
    paired = result["paired_cbt_vs_instruct"]
    assert paired["a"]["p"] < 1e-6 and paired["a"]["ci95"][0] < 11.33 < paired["a"]["ci95"][1]
    assert paired["c"]["p"] > 0.01
    assert paired["_pooled"]["mean_difference"] == pytest.approx(11.33 * 2 / 3, abs=1.0)
    assert result["model_by_condition"]["effects"]["model * condition"]["p"] < 1e-3


def test_rm_anova_against_statsmodels_and_posthoc_holm():
    rng = np.random.default_rng(3)
    scores = make_scores(rng, n_profiles=10, model_shift={"b": 4.0, "c": -3.0},
                         drop={("c", 2, 1, "cbt")})  # subject eval-002|s1 lacks model c under cbt
    result = stats.analyse(scores)["judges"]["j"]["between_models"]
    for condition in ("instruct", "cbt"):
        t = scores.filter((pl.col("item") == "total") & (pl.col("condition") == condition)).to_pandas()
        t["subject"] = t["profile"] + "|s" + t["seed"].astype(str)
        complete = t.groupby("subject").filter(lambda g: g["model"].nunique() == 3)
        ref = AnovaRM(complete, "score", "subject", within=["model"]).fit().anova_table
        r = result[condition]
        assert r["n"] == complete["subject"].nunique()
        assert r["F"] == pytest.approx(ref["F Value"].iloc[0], abs=TOL)
        assert r["p"] == pytest.approx(ref["Pr > F"].iloc[0], abs=TOL)
        assert r["df_effect"] == ref["Num DF"].iloc[0] and r["df_error"] == ref["Den DF"].iloc[0]
        wide = complete.pivot(index="subject", columns="model", values="score")
        raw = [sps.ttest_rel(wide[a], wide[b]).pvalue for a, b in (("a", "b"), ("a", "c"), ("b", "c"))]
        holm = multipletests(raw, method="holm")[1]
        got = {(p["a"], p["b"]): p["p_holm"] for p in r["posthoc_holm"]}
        assert [got[k] for k in (("a", "b"), ("a", "c"), ("b", "c"))] == pytest.approx(list(holm), abs=TOL)
        # Greenhouse-Geisser epsilon from the covariance of the double-centred matrix.
        x = wide.to_numpy()
        k = x.shape[1]
        s = np.cov(x, rowvar=False)
        c = np.eye(k) - 1 / k
        sc = c @ s @ c
        eps = np.trace(sc) ** 2 / ((k - 1) * np.trace(sc @ sc))
        assert r["epsilon_gg"] == pytest.approx(eps, abs=TOL)
    assert result["cbt"]["subjects_dropped_incomplete"] == 1


def test_two_way_against_statsmodels():
    rng = np.random.default_rng(5)
    scores = make_scores(rng, models=("a", "b"), n_profiles=9, effect={"a": 6.0})
    result = stats.analyse(scores)["judges"]["j"]["model_by_condition"]
    t = scores.filter(pl.col("item") == "total").to_pandas()
    t["subject"] = t["profile"] + "|s" + t["seed"].astype(str)
    ref = AnovaRM(t, "score", "subject", within=["model", "condition"]).fit().anova_table
    for source, ref_name in (("model", "model"), ("condition", "condition"), ("model * condition", "model:condition")):
        assert result["effects"][source]["F"] == pytest.approx(ref.loc[ref_name, "F Value"], abs=1e-7)
        assert result["effects"][source]["p"] == pytest.approx(ref.loc[ref_name, "Pr > F"], abs=1e-7)


def test_item_level_holm_and_competence():
    rng = np.random.default_rng(9)
    scores = make_scores(rng, models=("a",), n_profiles=6)
    result = stats.analyse(scores, threshold=30)["judges"]["j"]
    items = result["items_cbt_vs_instruct"]["a"]
    names = sorted(items)
    assert len(names) == 11
    pvals = []
    for name in names:
        w = scores.filter(pl.col("item") == name).to_pandas().pivot_table(index=["profile", "seed"], columns="condition", values="score")
        ref = sps.ttest_rel(w["cbt"], w["instruct"])
        assert items[name]["t"] == pytest.approx(ref.statistic, abs=TOL)
        pvals.append(ref.pvalue)
    assert [items[n]["p_holm"] for n in names] == pytest.approx(list(multipletests(pvals, method="holm")[1]), abs=TOL)
    totals = scores.filter(pl.col("item") == "total").to_pandas()
    for cond in ("instruct", "cbt"):
        sub = totals[totals["condition"] == cond]["score"]
        assert result["competence"]["by_model"]["a"][cond]["share"] == pytest.approx((sub >= 30).mean(), abs=TOL)


def test_one_model_gives_paired_results_and_a_reason_for_anova():
    rng = np.random.default_rng(2)
    result = stats.analyse(make_scores(rng, models=("only",)))["judges"]["j"]
    assert result["paired_cbt_vs_instruct"]["only"]["ran"] is True
    for condition in ("instruct", "cbt"):
        assert result["between_models"][condition]["ran"] is False
        assert "2 models" in result["between_models"][condition]["reason"]
    assert result["model_by_condition"]["ran"] is False


def test_degenerate_inputs_say_why():
    assert stats.paired_test(np.array([1.0]), np.array([2.0]))["reason"].startswith("needs at least 2 pairs")
    same = stats.paired_test(np.array([3.0, 4.0, 5.0]), np.array([1.0, 2.0, 3.0]))
    assert same["t"] is None and "undefined" in same["note"]
    zero = stats.paired_test(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    assert zero["wilcoxon"]["ran"] is False


def test_cli_stats_reads_csv_and_parquet(tmp_path):
    from cbtflow.cli import main
    from cbtflow.io import read_json

    rng = np.random.default_rng(4)
    scores = make_scores(rng, models=("only",))
    scores.write_csv(tmp_path / "s.csv")
    scores.write_parquet(tmp_path / "s.parquet")
    assert main(["stats", str(tmp_path / "s.csv"), "-o", str(tmp_path / "a.json")]) == 0
    assert main(["stats", str(tmp_path / "s.parquet"), "-o", str(tmp_path / "b.json")]) == 0
    a, b = read_json(tmp_path / "a.json"), read_json(tmp_path / "b.json")
    assert a["judges"]["j"]["paired_cbt_vs_instruct"]["only"]["t"] == pytest.approx(
        b["judges"]["j"]["paired_cbt_vs_instruct"]["only"]["t"], abs=TOL)
    assert "2 models" in a["judges"]["j"]["between_models"]["cbt"]["reason"]
    pl.DataFrame({"model": ["x"]}).write_csv(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="lacks columns"):
        main(["stats", str(tmp_path / "bad.csv"), "-o", str(tmp_path / "c.json")])


def test_context_length_slopes_against_scipy():
    rng = np.random.default_rng(11)
    docs = []
    for i in range(30):
        tokens, turns = int(rng.integers(200, 6000)), int(rng.integers(4, 40))
        total = 50 - 2.0 * tokens / 1000 + rng.normal(0, 1)
        docs.append({"judge": "j", "model": "m", "condition": "cbt", "seed": 1, "profile_id": f"eval-{i:03d}",
                     "items": {"a": {"score": 1.0}}, "total": total, "percent": 0.0, "transcript_tokens": tokens,
                     "transcript_turns": turns})
    table = scores_table(docs)
    ctx = stats.analyse(table)["judges"]["j"]["context_length"]
    t = table.filter(pl.col("item") == "total").to_pandas()
    ref = sps.linregress(t["transcript_tokens"], t["score"])
    assert ctx["slope_per_1000_tokens"] == pytest.approx(ref.slope * 1000, abs=1e-9)
    assert ctx["ci95_per_1000_tokens"][0] < -2.0 * 0.8 and ctx["ci95_per_1000_tokens"][1] > -2.0 * 1.2
    ref_turn = sps.linregress(t["transcript_turns"], t["score"])
    assert ctx["per_turn"]["slope"] == pytest.approx(ref_turn.slope, abs=1e-9)
