"""Repeated-measures ANOVA (pingouin) at a chosen unit: profile means by default, profile ×
seed for the study's own analysis. One-way across models per condition with sphericity,
Greenhouse-Geisser and Holm post-hoc tests; two-way model × condition."""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd

from cbtflow.stats.paired import partial_eta_squared_ci, skipped
from cbtflow.stats.units import PROFILE_UNIT, STUDY_UNIT, subjects, unique_transcripts

UNIT_LABELS = {"profile": PROFILE_UNIT, "profile_seed": STUDY_UNIT}


def _complete(frame: pd.DataFrame, within: list[str]) -> tuple[pd.DataFrame, int]:
    """Subjects observed in every cell of ``within`` (RM-ANOVA needs them complete)."""
    levels = frame.groupby(within).ngroups
    counts = frame.groupby("subject").apply(lambda g: g.groupby(within).ngroups, include_groups=False)
    keep = counts[counts == levels].index
    return frame[frame["subject"].isin(keep)], int((counts != levels).sum())


def _first(row: pd.Series, *names: str) -> Any:
    """pingouin renamed columns between releases (p-unc → p_unc); read whichever is there."""
    return next((row[c] for c in names if c in row.index), None)


def rm_anova_models(totals: pd.DataFrame, condition: str, unit: str = "profile") -> dict[str, Any]:
    """One-way RM-ANOVA across models within one condition, GG-corrected, Holm post-hoc.

    Models whose transcripts in this condition are identical (instruct on one base) are one
    level, named by the first of them: comparing a system with itself is no test.
    """
    import pingouin as pg

    everything = totals[totals["condition"] == condition]
    frame = unique_transcripts(everything)
    models = sorted(frame["model"].unique())
    merged = sorted(set(everything["model"]) - set(models))
    if len(models) < 2:
        return skipped(
            f"needs at least 2 models with distinct transcripts, has {len(models)}",
            n_models=len(models),
            identical_to_another_model=merged,
        )
    data, dropped = _complete(subjects(frame, unit), ["model"])
    n = data["subject"].nunique()
    if n < 2:
        return skipped(f"needs at least 2 subjects with every model scored, has {n}", n=n)
    if float(data.groupby("subject")["score"].transform(lambda s: s - s.mean()).var()) == 0:
        return skipped("no within-subject variance: every model scored identically for every subject", n=n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aov = pg.rm_anova(data=data, dv="score", within="model", subject="subject", correction=True, detailed=True)
        post = pg.pairwise_tests(data=data, dv="score", within="model", subject="subject", padjust="holm")
    effect, error = aov.iloc[0], aov.iloc[1]
    df1, df2, f = float(effect["DF"]), float(error["DF"]), float(effect["F"])
    return {
        "ran": True,
        "unit": UNIT_LABELS[unit],
        "n": n,
        "subjects_dropped_incomplete": dropped,
        "levels": models,
        "identical_to_another_model": merged,
        "F": f,
        "df_effect": df1,
        "df_error": df2,
        "p": _first(effect, "p_unc", "p-unc"),
        "p_gg": _first(effect, "p_GG_corr", "p-GG-corr"),
        "epsilon_gg": _first(effect, "eps"),
        "partial_eta_squared": float(effect["SS"] / (effect["SS"] + error["SS"])),
        "partial_eta_squared_ci95": partial_eta_squared_ci(f, df1, df2),
        "generalized_eta_squared": _first(effect, "ng2"),
        "sphericity": {
            "holds": _first(effect, "sphericity"),
            "W": _first(effect, "W_spher", "W-spher"),
            "p": _first(effect, "p_spher", "p-spher"),
        },
        # One pair is its own family: pingouin leaves its corrected p out, Holm's is the p itself.
        "posthoc_holm": [
            {
                "a": r["A"],
                "b": r["B"],
                "t": r["T"],
                "df": r["dof"],
                "p": _first(r, "p_unc", "p-unc"),
                "p_holm": _first(r, "p_corr", "p-corr") if len(post) > 1 else _first(r, "p_unc", "p-unc"),
            }
            for _, r in post.iterrows()
        ],
    }


def rm_anova_two_way(totals: pd.DataFrame, unit: str = "profile") -> dict[str, Any]:
    """Model × condition RM-ANOVA: does the tuning gain differ between models?"""
    import pingouin as pg

    models, conditions = totals["model"].nunique(), totals["condition"].nunique()
    if models < 2 or conditions < 2:
        return skipped(f"needs ≥2 models and ≥2 conditions, has {models} and {conditions}")
    data, dropped = _complete(subjects(totals, unit), ["model", "condition"])
    n = data["subject"].nunique()
    if n < 2:
        return skipped(f"needs at least 2 complete subjects, has {n}", n=n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aov = pg.rm_anova(data=data, dv="score", within=["model", "condition"], subject="subject", detailed=True)
    effects = {}
    for _, r in aov.iterrows():
        f, df1, df2 = r.get("F"), r.get("ddof1"), r.get("ddof2")
        eta = None if f is None or pd.isna(f) else float(f) * df1 / (float(f) * df1 + df2)
        effects[str(r["Source"])] = {
            "F": f,
            "df_effect": df1,
            "df_error": df2,
            "p": _first(r, "p_unc", "p-unc"),
            "p_gg": _first(r, "p_GG_corr", "p-GG-corr"),
            "partial_eta_squared": eta,
            "partial_eta_squared_ci95": (partial_eta_squared_ci(float(f), df1, df2) if eta is not None else None),
        }
    return {"ran": True, "unit": UNIT_LABELS[unit], "n": n, "subjects_dropped_incomplete": dropped, "effects": effects}
