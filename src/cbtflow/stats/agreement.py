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
    if n_raters < 2 or complete["target"].nunique() < 3:  # pingouin's ICC needs 5 or more ratings
        return skipped(f"needs ≥2 {raters}s rating ≥3 common transcripts")
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


def _pair(frame: pd.DataFrame, a: str, b: str, labels: list[int]) -> dict[str, Any]:
    """Two raters (or a judge and a rater) on the transcripts both scored: ICC(A,1) on the
    total, quadratic-weighted Cohen's κ per item (sklearn; fractional scores rounded to the
    scale's integers for κ) and the confusion of b's item scores (rows) against a's."""
    from sklearn.metrics import cohen_kappa_score

    pair = frame[frame["judge"].isin([a, b])]
    entry: dict[str, Any] = {"total": icc(pair[pair["item"] == "total"], "judge"), "kappa_quadratic": {}}
    pairs: list[tuple[pd.Series, pd.Series]] = []
    for item, rows in pair[~pair["item"].isin(["total", "percent", "safety"])].groupby("item"):
        wide = rows.pivot_table(index="target", columns="judge", values="score", aggfunc="mean").dropna()
        if a not in wide or b not in wide or len(wide) < 2:
            continue
        x, y = wide[a].round().astype(int), wide[b].round().astype(int)
        kappa = cohen_kappa_score(x, y, weights="quadratic") if (x.nunique() > 1 or y.nunique() > 1) else None
        entry["kappa_quadratic"][str(item)] = {"kappa": kappa, "n": int(len(wide))}
        pairs.append((y, x))
    entry["confusion"] = confusion(pairs, labels)
    return entry


def _summary(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ICC(A,1) on the total and mean weighted κ over items, across pairs that ran."""
    iccs = [e["total"]["icc2_single"]["icc"] for e in entries if e["total"].get("ran")]
    kappas = [k["kappa"] for e in entries for k in e["kappa_quadratic"].values() if k["kappa"] is not None]
    return {
        "n_pairs": len(iccs),
        "mean_icc": float(np.mean(iccs)) if iccs else None,
        "mean_kappa": float(np.mean(kappas)) if kappas else None,
    }


CEILING = (
    "rater–rater agreement is the human ceiling: a judge that agrees with the raters as well as they agree with each "
    "other has reached it (VERA-MH's judge: 0.81 against clinicians' own 0.77)"
)


def human_agreement(frame: pd.DataFrame) -> dict[str, Any]:
    """Each judge against each human rater, never pooled, and the raters against each other
    (the human ceiling, every pair on the transcripts both rated), with each judge's mean
    agreement stated relative to that ceiling."""
    judges = sorted(frame["judge"].unique())
    scores = frame.loc[~frame["item"].isin(["total", "percent", "safety"]), "score"].dropna()
    labels = list(range(int(np.floor(scores.min())), int(np.ceil(scores.max())) + 1)) if len(scores) else []
    humans = [j for j in judges if j.startswith(HUMAN_PREFIX)]
    machines = [j for j in judges if not j.startswith(HUMAN_PREFIX)]
    if not humans or (not machines and len(humans) < 2):
        return skipped("needs human ratings (report.human_ratings) and at least one judge or a second rater")
    frame = frame.assign(target=_targets(frame))
    between = {f"{a} | {b}": _pair(frame, a, b, labels) for i, a in enumerate(humans) for b in humans[i + 1 :]}
    ceiling = {**_summary(list(between.values())), "label": CEILING} if between else skipped("one human rater")
    out: dict[str, Any] = {}
    relative: dict[str, Any] = {}
    for judge in machines:
        for human in humans:
            out.setdefault(judge, {})[human] = _pair(frame, judge, human, labels)
        mine = _summary(list(out[judge].values()))
        top = ceiling.get("mean_icc") if ceiling.get("n_pairs") else None
        relative[judge] = {
            **mine,
            "ceiling_icc": top,
            "ratio_to_ceiling": mine["mean_icc"] / top if mine["mean_icc"] is not None and top else None,
        }
    return {
        "ran": True,
        "by_judge": out,
        "between_raters": between,
        "ceiling": ceiling,
        "relative_to_ceiling": relative,
    }
