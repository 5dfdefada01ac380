"""Reliability: ICC(2,1) and ICC(2,k) across repeats or raters (pingouin)."""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd

from cbtflow.stats.paired import skipped


def _targets(frame: pd.DataFrame) -> pd.Series:
    """What was rated: the transcript's hash where known (a transcript two models share is
    one target), else its model, condition, seed and profile."""
    key = frame["model"] + "|" + frame["condition"] + "|" + frame["seed"].astype(str) + "|" + frame["profile"]
    if "transcript" in frame:
        key = frame["transcript"].where(frame["transcript"].notna(), key)
    return key


def icc(frame: pd.DataFrame, raters: str) -> dict[str, Any]:
    """ICC(2,1) and ICC(2,k) of Shrout & Fleiss: two-way random effects, absolute agreement
    (pingouin names them ICC(A,1) and ICC(A,k), after McGraw & Wong)."""
    import pingouin as pg

    data = frame.assign(target=_targets(frame)).drop_duplicates(subset=["target", raters])
    n_raters = data[raters].nunique()
    complete = data.groupby("target").filter(lambda g: g[raters].nunique() == n_raters)
    if n_raters < 2 or complete["target"].nunique() < 2:
        return skipped(f"needs ≥2 {raters}s rating ≥2 common transcripts")
    if complete["score"].var() == 0:
        return skipped("all scores are identical")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = pg.intraclass_corr(data=complete, targets="target", raters=raters, ratings="score").set_index("Type")

    def pick(kind: str) -> dict[str, Any]:
        return {"icc": table.loc[kind, "ICC"], "ci95": list(table.loc[kind, "CI95"]), "p": table.loc[kind, "pval"]}

    return {
        "ran": True,
        "n_transcripts": int(complete["target"].nunique()),
        "raters": int(n_raters),
        "icc2_single": pick("ICC(A,1)"),
        "icc2_mean": pick("ICC(A,k)"),
    }


def reliability(frame: pd.DataFrame, raters: str) -> dict[str, Any]:
    """ICC per item and for the total; identical transcripts count once."""
    items = [i for i in frame["item"].unique() if i != "percent"]
    return {item: icc(frame[frame["item"] == item], raters) for item in sorted(items)}
