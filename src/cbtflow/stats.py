"""The analysis a reviewer of the study would ask for, from a long-format scores table.

Pairs are (profile, seed): the same simulated patient and sampling seed under both
conditions. Every result records its n; a test that cannot run says why instead of
disappearing. Uses pingouin and statsmodels; tests check them against scipy and
statsmodels' AnovaRM independently.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from scipy import stats as sps

CONDITION_BASELINE, CONDITION_TUNED = "instruct", "cbt"


def _clean(value: Any) -> Any:
    """JSON-safe numbers: NaN/inf become None, numpy scalars become Python ones."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else value
    return value


def skipped(reason: str, **extra: Any) -> dict[str, Any]:
    return {"ran": False, "reason": reason, **extra}


def paired_test(tuned: np.ndarray, baseline: np.ndarray) -> dict[str, Any]:
    """Paired t (tuned − baseline) with 95% CI of the mean difference, Cohen's dz, Wilcoxon."""
    import pingouin as pg

    diff = np.asarray(tuned, float) - np.asarray(baseline, float)
    n = len(diff)
    if n < 2:
        return skipped(f"needs at least 2 pairs, has {n}", n=n)
    mean, sd = float(diff.mean()), float(diff.std(ddof=1))
    out: dict[str, Any] = {"ran": True, "n": n, "mean_tuned": float(np.mean(tuned)),
                           "mean_baseline": float(np.mean(baseline)), "mean_difference": mean, "sd_difference": sd}
    if sd == 0:
        out.update(t=None, df=n - 1, p=None, ci95=[mean, mean], cohens_dz=None,
                   note="all differences are equal; t is undefined")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = pg.ttest(tuned, baseline, paired=True)
        se = sd / math.sqrt(n)
        half = float(sps.t.ppf(0.975, n - 1)) * se
        out.update(t=float(res["T"].iloc[0]), df=int(res["dof"].iloc[0]), p=float(res["p_val"].iloc[0]
                   if "p_val" in res else res["p-val"].iloc[0]), ci95=[mean - half, mean + half], cohens_dz=mean / sd)
    nonzero = diff[diff != 0]
    if len(nonzero):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = sps.wilcoxon(tuned, baseline)
        out["wilcoxon"] = {"W": float(w.statistic), "p": float(w.pvalue), "n_nonzero": int(len(nonzero))}
    else:
        out["wilcoxon"] = skipped("all differences are zero", n=n)
    return out


def _pairs(frame: pd.DataFrame) -> pd.DataFrame:
    """Wide table: one row per (model, profile, seed), columns per condition."""
    wide = frame.pivot_table(index=["model", "profile", "seed"], columns="condition", values="score",
                             aggfunc="mean").reset_index()
    return wide


# Condition contrasts beyond the study's cbt vs instruct, run when both sides are present.
EXTRA_CONTRASTS = [("prompted", "instruct"), ("cbt", "prompted"), ("external", "instruct"), ("cbt", "external")]


def per_model_paired(totals: pd.DataFrame, tuned: str = CONDITION_TUNED,
                     baseline: str = CONDITION_BASELINE) -> dict[str, Any]:
    """Paired ``tuned`` − ``baseline`` per model, and pooled over models (the study's 11.33)."""
    out: dict[str, Any] = {}
    wide = _pairs(totals)
    if tuned not in wide or baseline not in wide:
        return {"_all": skipped(f"needs both conditions '{tuned}' and '{baseline}'")}
    for model, group in wide.groupby("model"):
        g = group.dropna(subset=[tuned, baseline])
        out[str(model)] = paired_test(g[tuned].to_numpy(), g[baseline].to_numpy())
    complete = wide.dropna(subset=[tuned, baseline])
    out["_pooled"] = paired_test(complete[tuned].to_numpy(), complete[baseline].to_numpy())
    return out


def _complete_subjects(frame: pd.DataFrame, within: list[str]) -> tuple[pd.DataFrame, int]:
    frame = frame.assign(subject=frame["profile"].astype(str) + "|s" + frame["seed"].astype(str))
    levels = frame.groupby(within).ngroups
    counts = frame.groupby("subject").apply(lambda g: g.groupby(within).ngroups, include_groups=False)
    keep = counts[counts == levels].index
    return frame[frame["subject"].isin(keep)], int((counts != levels).sum())


def rm_anova_models(totals: pd.DataFrame, condition: str) -> dict[str, Any]:
    """One-way RM-ANOVA across models (subject = profile × seed), GG-corrected, Holm post-hoc."""
    import pingouin as pg

    frame = totals[totals["condition"] == condition]
    models = sorted(frame["model"].unique())
    if len(models) < 2:
        return skipped(f"needs at least 2 models, has {len(models)}", n_models=len(models))
    data, dropped = _complete_subjects(frame, ["model"])
    n = data["subject"].nunique()
    if n < 2:
        return skipped(f"needs at least 2 subjects with every model scored, has {n}", n=n)
    if float(data.groupby("subject")["score"].transform(lambda s: s - s.mean()).var()) == 0:
        return skipped("no within-subject variance: every model scored identically for every subject", n=n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aov = pg.rm_anova(data=data, dv="score", within="model", subject="subject", correction=True, detailed=True)
        post = pg.pairwise_tests(data=data, dv="score", within="model", subject="subject", padjust="holm")
    row = aov.iloc[0]
    col = lambda *names: next((row[c] for c in names if c in aov.columns), None)  # noqa: E731
    result = {
        "ran": True, "n": n, "subjects_dropped_incomplete": dropped, "levels": models,
        "F": col("F"), "df_effect": col("DF", "ddof1"), "df_error": aov.iloc[1]["DF"] if "DF" in aov.columns else None,
        "p": col("p_unc", "p-unc"), "p_gg": col("p_GG_corr", "p-GG-corr"), "epsilon_gg": col("eps"),
        "partial_eta_squared": float(row["SS"] / (row["SS"] + aov.iloc[1]["SS"])),
        "generalized_eta_squared": col("ng2"),
        "sphericity": {"holds": col("sphericity"), "W": col("W_spher", "W-spher"), "p": col("p_spher", "p-spher")},
        "posthoc_holm": [
            {"a": r["A"], "b": r["B"], "t": r["T"], "df": r["dof"],
             "p": r.get("p_unc", r.get("p-unc")), "p_holm": r.get("p_corr", r.get("p-corr"))}
            for _, r in post.iterrows()
        ],
    }
    return result


def _partial_eta(f: float | None, df1: float | None, df2: float | None) -> float | None:
    """Partial eta squared from F and its degrees of freedom: F·df1 / (F·df1 + df2)."""
    if f is None or df1 is None or df2 is None or math.isnan(float(f)):
        return None
    return float(f) * float(df1) / (float(f) * float(df1) + float(df2))


def rm_anova_two_way(totals: pd.DataFrame) -> dict[str, Any]:
    """Model × condition RM-ANOVA: does the tuning gain differ between models?"""
    import pingouin as pg

    models, conditions = totals["model"].nunique(), totals["condition"].nunique()
    if models < 2 or conditions < 2:
        return skipped(f"needs ≥2 models and ≥2 conditions, has {models} and {conditions}")
    data, dropped = _complete_subjects(totals, ["model", "condition"])
    n = data["subject"].nunique()
    if n < 2:
        return skipped(f"needs at least 2 complete subjects, has {n}", n=n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aov = pg.rm_anova(data=data, dv="score", within=["model", "condition"], subject="subject", detailed=True)
    effects = {}
    for _, r in aov.iterrows():
        effects[str(r["Source"])] = {"F": r.get("F"), "df_effect": r.get("ddof1", r.get("DF")),
                                     "df_error": r.get("ddof2"), "p": r.get("p_unc", r.get("p-unc")),
                                     "p_gg": r.get("p_GG_corr", r.get("p-GG-corr")),
                                     "partial_eta_squared": _partial_eta(r.get("F"), r.get("ddof1"), r.get("ddof2"))}
    return {"ran": True, "n": n, "subjects_dropped_incomplete": dropped, "effects": effects}


def mixed_model(totals: pd.DataFrame) -> dict[str, Any]:
    """``total ~ model * condition + (1 | profile)`` as a robustness check (statsmodels)."""
    import statsmodels.formula.api as smf

    if totals["profile"].nunique() < 3:
        return skipped("needs at least 3 profiles for a random intercept")
    formula = "score ~ C(condition)" if totals["model"].nunique() < 2 else "score ~ C(model) * C(condition)"
    if totals["condition"].nunique() < 2:
        formula = "score ~ C(model)" if totals["model"].nunique() > 1 else None
    if formula is None:
        return skipped("needs two models or two conditions")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = smf.mixedlm(formula, totals, groups=totals["profile"]).fit(reml=True)
    except (ValueError, np.linalg.LinAlgError) as err:
        return skipped(f"mixed model failed to fit: {err}")
    return {"ran": True, "formula": formula + " + (1 | profile)", "n": int(fit.nobs), "converged": bool(fit.converged),
            "coefficients": {name: {"estimate": fit.params[name], "se": fit.bse[name], "p": fit.pvalues[name]}
                             for name in fit.params.index if name != "Group Var"},
            "group_variance": float(fit.cov_re.iloc[0, 0]) if fit.cov_re.size else None}


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (None stays None)."""
    indexed = [(p, i) for i, p in enumerate(pvalues) if p is not None and not math.isnan(p)]
    m = len(indexed)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(indexed)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def item_level(items: pd.DataFrame) -> dict[str, Any]:
    """Per model and item: mean difference cbt − instruct, paired t, Holm across items."""
    out: dict[str, Any] = {}
    wide = _pairs(items.rename(columns={}).assign(model=items["model"] + "\x1f" + items["item"]))
    if CONDITION_TUNED not in wide or CONDITION_BASELINE not in wide:
        return {"_all": skipped("needs both conditions")}
    for key, group in wide.groupby("model"):
        model, item = str(key).split("\x1f")
        g = group.dropna(subset=[CONDITION_TUNED, CONDITION_BASELINE])
        res = paired_test(g[CONDITION_TUNED].to_numpy(), g[CONDITION_BASELINE].to_numpy())
        out.setdefault(model, {})[item] = res
    for model, per_item in out.items():
        names = sorted(per_item)
        adjusted = holm([per_item[i].get("p") for i in names])
        for name, p in zip(names, adjusted):
            per_item[name]["p_holm"] = p
    return out


def competence(totals: pd.DataFrame, threshold: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for (model, condition), group in totals.groupby(["model", "condition"]):
        out.setdefault(str(model), {})[str(condition)] = {
            "n": int(len(group)), "at_or_above": int((group["score"] >= threshold).sum()),
            "share": float((group["score"] >= threshold).mean())}
    return {"threshold": threshold, "by_model": out}


def descriptives(totals: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for (model, condition), g in totals.groupby(["model", "condition"]):
        out.setdefault(str(model), {})[str(condition)] = {"n": int(len(g)), "mean": float(g["score"].mean()),
                                                           "sd": float(g["score"].std(ddof=1)) if len(g) > 1 else None}
    return out


def _slope(x: pd.Series, y: pd.Series, scale: float) -> dict[str, Any]:
    res = sps.linregress(x.astype(float), y.astype(float))
    half = float(sps.t.ppf(0.975, len(x) - 2)) * res.stderr
    return {"slope": res.slope * scale, "ci95": [(res.slope - half) * scale, (res.slope + half) * scale],
            "p": res.pvalue, "r": res.rvalue}


def context_length(totals: pd.DataFrame) -> dict[str, Any]:
    """Total score against transcript length: OLS slopes per 1,000 tokens and per turn, with 95% CIs.

    The study saw coherence fall as the context neared ~4,000 tokens; a negative slope
    here is the same signal, measured rather than eyeballed.
    """
    if "transcript_tokens" not in totals or totals["transcript_tokens"].nunique() < 3:
        return skipped("needs at least 3 distinct transcript lengths")
    tokens = _slope(totals["transcript_tokens"], totals["score"], 1000)
    out = {"ran": True, "n": int(len(totals)), "slope_per_1000_tokens": tokens["slope"],
           "ci95_per_1000_tokens": tokens["ci95"], "p": tokens["p"], "r": tokens["r"]}
    if "transcript_turns" in totals and totals["transcript_turns"].nunique() >= 3:
        out["per_turn"] = _slope(totals["transcript_turns"], totals["score"], 1)
    else:
        out["per_turn"] = skipped("every transcript has (nearly) the same number of turns")
    return out


def icc(frame: pd.DataFrame, raters: str) -> dict[str, Any]:
    """ICC(2,1) and ICC(2,k) of Shrout & Fleiss: two-way random effects, absolute agreement
    (pingouin names them ICC(A,1) and ICC(A,k), after McGraw & Wong)."""
    import pingouin as pg

    data = frame.assign(target=frame["model"] + "|" + frame["condition"] + "|" + frame["seed"].astype(str) + "|"
                        + frame["profile"])
    n_raters = data[raters].nunique()
    complete = data.groupby("target").filter(lambda g: g[raters].nunique() == n_raters)
    if n_raters < 2 or complete["target"].nunique() < 2:
        return skipped(f"needs ≥2 {raters}s rating ≥2 common transcripts")
    if complete["score"].var() == 0:
        return skipped("all scores are identical")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = pg.intraclass_corr(data=complete, targets="target", raters=raters, ratings="score").set_index("Type")
    pick = lambda t: {"icc": table.loc[t, "ICC"], "ci95": list(table.loc[t, "CI95"]), "p": table.loc[t, "pval"]}  # noqa: E731
    return {"ran": True, "n_transcripts": int(complete["target"].nunique()), "raters": int(n_raters),
            "icc2_single": pick("ICC(A,1)"), "icc2_mean": pick("ICC(A,k)")}


def reliability(frame: pd.DataFrame, raters: str) -> dict[str, Any]:
    """ICC per item and for the total."""
    items = [i for i in frame["item"].unique() if i != "percent"]
    return {item: icc(frame[frame["item"] == item], raters) for item in sorted(items)}


def analyse(scores: pl.DataFrame, threshold: float = 40.0) -> dict[str, Any]:
    """Every analysis, per judge; reliability across repeats and across judges."""
    everything = scores.to_pandas()
    if "repeat" not in everything:
        everything["repeat"] = np.nan
    frame = everything[everything["repeat"].isna()]
    result: dict[str, Any] = {"judges": {}}
    judges = sorted(frame["judge"].unique())
    result["reliability_across_judges"] = (reliability(frame, "judge") if len(judges) > 1
                                           else skipped("needs at least 2 judges"))
    for judge, jframe in frame.groupby("judge"):
        repeats = everything[(everything["judge"] == judge) & everything["repeat"].notna()]
        totals = jframe[jframe["item"] == "total"]
        items = jframe[~jframe["item"].isin(["total", "percent"])]
        conditions = sorted(totals["condition"].unique())
        result["judges"][str(judge)] = {
            "heuristic": bool(jframe["heuristic"].iloc[0]) if "heuristic" in jframe else False,
            "n_transcripts": int(len(totals)),
            "descriptives": descriptives(totals),
            "descriptives_percent": descriptives(jframe[jframe["item"] == "percent"]),
            "paired_cbt_vs_instruct": per_model_paired(totals),
            "paired_conditions": {f"{a}_vs_{b}": per_model_paired(totals, a, b) for a, b in EXTRA_CONTRASTS
                                  if a in conditions and b in conditions},
            "between_models": {c: rm_anova_models(totals, c) for c in conditions},
            "model_by_condition": rm_anova_two_way(totals),
            "mixed_model": mixed_model(totals),
            "items_cbt_vs_instruct": item_level(items),
            "competence": competence(totals, threshold),
            "context_length": context_length(totals),
            "reliability_across_repeats": (reliability(repeats, "repeat") if len(repeats)
                                           else skipped("judge ran with repeats: 1")),
        }
    return _clean(result)
