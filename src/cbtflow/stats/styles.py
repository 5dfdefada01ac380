"""Does tuning help with every kind of patient? The tuning effect by patient style.

Each simulated patient (profile, the unit) has one style and gives one effect: the mean
over seeds of its tuned scores minus the mean over seeds of its baseline scores. Styles
are between-patient groups, so whether the effect depends on the style is a one-way ANOVA
of those effects across styles (per model: the condition × style interaction), and, with
several models, a mixed ANOVA with model within patients and style between them, whose
interaction term is the model × style test. Calibrated on null data in the tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from cbtflow.conditions import BASELINE, TUNED
from cbtflow.stats.descriptive import mean_ci
from cbtflow.stats.paired import skipped
from cbtflow.stats.units import PROFILE_UNIT, profile_means

MIN_PER_STYLE = 2


def profile_effects(totals: pd.DataFrame, tuned: str = TUNED, baseline: str = BASELINE) -> pd.DataFrame:
    """One row per model × profile: its style and its tuned − baseline effect."""
    cells = totals[totals["condition"].isin([tuned, baseline]) & totals["style"].notna()]
    means = profile_means(cells, by=("model", "style", "condition")).pivot_table(
        index=["model", "style", "profile"], columns="condition", values="score"
    )
    if tuned not in means or baseline not in means:
        return pd.DataFrame(columns=["model", "style", "profile", "effect"])
    return (means[tuned] - means[baseline]).dropna().rename("effect").reset_index()


def _one_way(effects: pd.DataFrame) -> dict[str, Any]:
    groups = [g["effect"].to_numpy() for _, g in effects.groupby("style")]
    groups = [g for g in groups if len(g) >= MIN_PER_STYLE]
    if len(groups) < 2:
        return skipped(f"needs at least 2 styles with {MIN_PER_STYLE}+ profiles each")
    f, p = sps.f_oneway(*groups)
    values = np.concatenate(groups)
    ss_between = sum(len(g) * (g.mean() - values.mean()) ** 2 for g in groups)
    ss_total = float(((values - values.mean()) ** 2).sum())
    return {
        "ran": True,
        "test": "one-way ANOVA of profile effects across styles",
        "F": float(f),
        "df": [len(groups) - 1, int(len(values) - len(groups))],
        "p": float(p),
        "eta_squared": ss_between / ss_total if ss_total > 0 else None,
        "n_profiles": int(len(values)),
    }


def style_interaction(totals: pd.DataFrame, tuned: str = TUNED, baseline: str = BASELINE) -> dict[str, Any]:
    """The effect per style (mean, 95% CI, n profiles), per model, and the tests above."""
    if "style" not in totals or totals["style"].dropna().nunique() < 2:
        return skipped("one patient style (set profiles.styles to compare styles)")
    effects = profile_effects(totals, tuned, baseline)
    if effects.empty:
        return skipped(f"needs '{tuned}' and '{baseline}' for the same profiles")
    by_model: dict[str, Any] = {}
    for model, frame in effects.groupby("model"):
        per_style = {}
        for style, group in frame.groupby("style"):
            cell = mean_ci(group["effect"].to_numpy())
            per_style[str(style)] = {"estimate": cell.pop("mean"), **cell}
        by_model[str(model)] = {"by_style": per_style, "condition_by_style": _one_way(frame)}
    result: dict[str, Any] = {
        "ran": True,
        "tuned": tuned,
        "baseline": baseline,
        "unit": PROFILE_UNIT,
        "by_model": by_model,
    }
    models = sorted(effects["model"].unique())
    if len(models) < 2:
        result["model_by_style"] = skipped("one model")
        return result
    complete = effects.groupby("profile").filter(lambda g: g["model"].nunique() == len(models))
    import pingouin as pg

    if complete.groupby("style")["profile"].nunique().ge(MIN_PER_STYLE).sum() < 2:
        result["model_by_style"] = skipped(f"needs at least 2 styles with {MIN_PER_STYLE}+ complete profiles each")
        return result
    table = pg.mixed_anova(data=complete, dv="effect", within="model", between="style", subject="profile")
    row = table[table["Source"] == "Interaction"].iloc[0]
    result["model_by_style"] = {
        "ran": True,
        "test": "mixed ANOVA of profile effects: model within, style between (interaction term)",
        "F": float(row["F"]),
        "df": [float(row["DF1"]), float(row["DF2"])],
        "p": float(row["p_unc"] if "p_unc" in row else row["p-unc"]),
        "n_profiles": int(complete["profile"].nunique()),
    }
    return result
