"""Descriptive summaries per model × condition: means, competence share, score against length.

These describe transcripts; they are not tests, so their n is transcripts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from cbtflow.stats.paired import skipped


def mean_ci(x: np.ndarray) -> dict[str, Any]:
    """Mean and t-based 95% CI of per-unit values (None for the CI below two units)."""
    if len(x) < 2:
        return {"mean": float(x.mean()) if len(x) else None, "ci95": None, "n_units": int(len(x))}
    half = float(sps.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return {"mean": float(x.mean()), "ci95": [float(x.mean()) - half, float(x.mean()) + half], "n_units": int(len(x))}


def descriptives(totals: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for (model, condition), g in totals.groupby(["model", "condition"]):
        out.setdefault(str(model), {})[str(condition)] = {
            "n": int(len(g)),
            "n_profiles": int(g["profile"].nunique()),
            "mean": float(g["score"].mean()),
            "sd": float(g["score"].std(ddof=1)) if len(g) > 1 else None,
        }
    return out


def competence(totals: pd.DataFrame, threshold: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for (model, condition), group in totals.groupby(["model", "condition"]):
        out.setdefault(str(model), {})[str(condition)] = {
            "n": int(len(group)),
            "at_or_above": int((group["score"] >= threshold).sum()),
            "share": float((group["score"] >= threshold).mean()),
        }
    return {"threshold": threshold, "by_model": out}


def _slope(x: pd.Series, y: pd.Series, scale: float) -> dict[str, Any]:
    res = sps.linregress(x.astype(float), y.astype(float))
    half = float(sps.t.ppf(0.975, len(x) - 2)) * res.stderr
    return {
        "slope": res.slope * scale,
        "ci95": [(res.slope - half) * scale, (res.slope + half) * scale],
        "p": res.pvalue,
        "r": res.rvalue,
    }


def context_length(totals: pd.DataFrame) -> dict[str, Any]:
    """Total score against transcript length: OLS slopes per 1,000 tokens and per turn, with 95% CIs.

    The study saw coherence fall as the context neared ~4,000 tokens; a negative slope
    here is the same signal, measured rather than eyeballed. Transcripts are the unit, so
    read it as a description, not a test.
    """
    if "transcript_tokens" not in totals or totals["transcript_tokens"].nunique() < 3:
        return skipped("needs at least 3 distinct transcript lengths")
    tokens = _slope(totals["transcript_tokens"], totals["score"], 1000)
    out = {
        "ran": True,
        "unit": "transcript (descriptive)",
        "n": int(len(totals)),
        "slope_per_1000_tokens": tokens["slope"],
        "ci95_per_1000_tokens": tokens["ci95"],
        "p": tokens["p"],
        "r": tokens["r"],
    }
    if "transcript_turns" in totals and totals["transcript_turns"].nunique() >= 3:
        out["per_turn"] = _slope(totals["transcript_turns"], totals["score"], 1)
    else:
        out["per_turn"] = skipped("every transcript has (nearly) the same number of turns")
    return out
