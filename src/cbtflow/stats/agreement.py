"""Reliability: ICC(2,1) and ICC(2,k) across repeats or raters (pingouin), and each judge's
agreement with human raters (ICC on the total, quadratic-weighted Cohen's κ per item)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from cbtflow.stats.paired import skipped


def _targets(frame: pd.DataFrame) -> pd.Series:
    """What was rated: the transcript's hash when every row has one (a transcript two models
    share is one target), else its model, condition, seed and profile, so that raters from
    sources with and without hashes still meet on the same transcripts."""
    key = frame["model"] + "|" + frame["condition"] + "|" + frame["seed"].astype(str) + "|" + frame["profile"]
    if "transcript" in frame and frame["transcript"].notna().all():
        return frame["transcript"]
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


HUMAN_PREFIX = "human:"


def confusion(pairs: list[tuple[pd.Series, pd.Series]], labels: list[int]) -> dict[str, Any]:
    """Item scores of a human (rows) against a judge (columns, rounded as for κ), pooled over
    the items and transcripts both rated: where on the scale a judge departs from the human."""
    counts = np.zeros((len(labels), len(labels)), dtype=int)
    index = {label: i for i, label in enumerate(labels)}
    for human, judge in pairs:
        for h, j in zip(human, judge):
            counts[index[int(h)], index[int(j)]] += 1
    return {"labels": labels, "counts": counts.tolist()}


def human_agreement(frame: pd.DataFrame) -> dict[str, Any]:
    """Each judge against each human rater, never pooled: ICC(A,1) on the total and
    quadratic-weighted Cohen's κ per item (sklearn) on the transcripts both scored. A judge's
    fractional item scores (a local judge's expectation, a lexicon score) are rounded to the
    scale's integers for κ; the ICC uses them as they are."""
    from sklearn.metrics import cohen_kappa_score

    judges = sorted(frame["judge"].unique())
    scores = frame.loc[~frame["item"].isin(["total", "percent", "safety"]), "score"].dropna()
    labels = list(range(int(np.floor(scores.min())), int(np.ceil(scores.max())) + 1)) if len(scores) else []
    humans = [j for j in judges if j.startswith(HUMAN_PREFIX)]
    machines = [j for j in judges if not j.startswith(HUMAN_PREFIX)]
    if not humans or not machines:
        return skipped("needs human ratings (report.human_ratings) and at least one judge")
    frame = frame.assign(target=_targets(frame))
    out: dict[str, Any] = {}
    for judge in machines:
        for human in humans:
            pair = frame[frame["judge"].isin([judge, human])]
            entry: dict[str, Any] = {"total": icc(pair[pair["item"] == "total"], "judge"), "kappa_quadratic": {}}
            pairs: list[tuple[pd.Series, pd.Series]] = []
            for item, rows in pair[~pair["item"].isin(["total", "percent", "safety"])].groupby("item"):
                wide = rows.pivot_table(index="target", columns="judge", values="score", aggfunc="mean").dropna()
                if judge not in wide or human not in wide or len(wide) < 2:
                    continue
                a, b = wide[judge].round().astype(int), wide[human].round().astype(int)
                kappa = cohen_kappa_score(a, b, weights="quadratic") if (a.nunique() > 1 or b.nunique() > 1) else None
                entry["kappa_quadratic"][str(item)] = {"kappa": kappa, "n": int(len(wide))}
                pairs.append((b, a))
            entry["confusion"] = confusion(pairs, labels)
            out.setdefault(judge, {})[human] = entry
    return {"ran": True, "by_judge": out}
