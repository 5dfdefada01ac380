"""The long-format scores table the statistics read: one row per judge × transcript × item.

Columns: judge, heuristic, model, condition, seed, profile, session (of a course; 1 for
a one-session run), item, score, not_applicable (course items not applicable here), plus the
transcript's length and content hash (``transcript``: identical transcripts, such as the
instruct sessions of two models on one base, are then counted once where that matters).
Each transcript also gets ``total`` and ``percent`` rows, so any analysis is a filter on
``item``; a table of item rows only (a rater's sheet) gets them from the rubric's items.
``repeat`` is empty on the consensus rows every analysis uses; a judge run with
``repeats: k`` adds each repeat's item and total rows (repeat 0..k-1) for the reliability
analysis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import polars as pl

from cbtflow.instrument import item_ids, load_rubric, max_total
from cbtflow.judge import scores_check
from cbtflow.packaged import DEFAULT_RUBRIC
from cbtflow.session_key import SessionKey

SCHEMA = {
    "judge": pl.Utf8,
    "heuristic": pl.Boolean,
    "model": pl.Utf8,
    "condition": pl.Utf8,
    "seed": pl.Int64,
    "profile": pl.Utf8,
    "session": pl.Int64,
    "item": pl.Utf8,
    "score": pl.Float64,
    "transcript_tokens": pl.Int64,
    "transcript_turns": pl.Int64,
    "repeat": pl.Int64,
    "transcript": pl.Utf8,
    "answered_by": pl.Utf8,
    "eval_split": pl.Utf8,
    "style": pl.Utf8,
    "harmful_flags": pl.Int64,
    "degenerate_flags": pl.Int64,
    "low_confidence_items": pl.Int64,
    "digit_mass": pl.Float64,
    "not_applicable": pl.Int64,
}
TRANSCRIPT_KEYS = scores_check.TRANSCRIPT_KEYS
NOT_RUBRIC_ITEMS = {"total", "percent", "safety"}
KEY_COLUMNS = scores_check.KEY_COLUMNS


def failures(documents: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Failure records (judging failed within the judge's ``max_failures``), for the report."""
    return [
        {k: doc.get(k) for k in ("stage", "judge", "model", "condition", "seed", "profile_id", "reason", "raw_output")}
        for doc in documents
        if doc.get("status") == "failed"
    ]


def scores_table(documents: Sequence[dict[str, Any]]) -> pl.DataFrame:
    """Scored documents only: failure records are listed by ``failures`` and never analysed."""
    rows = []
    for doc in documents:
        if doc.get("status") == "failed":
            continue
        base = {
            "judge": doc["judge"],
            "heuristic": bool(doc.get("heuristic", False)),
            **SessionKey.of(doc).row(),
            "transcript_tokens": int(doc.get("transcript_tokens", 0)),
            "transcript_turns": int(doc.get("transcript_turns", 0)),
            "transcript": doc.get("transcript_sha256"),
            "answered_by": "+".join(doc["answered_by"]) if doc.get("answered_by") else None,
            "eval_split": doc.get("eval_split"),
            "style": doc.get("style"),
            "harmful_flags": sum(f["kind"] == "harmful" for f in doc.get("flags", [])),
            "degenerate_flags": sum(f["kind"] == "degenerate" for f in doc.get("flags", [])),
            "low_confidence_items": sum(
                len(f.get("items", [])) for f in doc.get("flags", []) if f["kind"] == "low_confidence"
            ),
            "digit_mass": None,
            "not_applicable": len(doc.get("not_applicable") or []),
        }
        for item, value in doc["items"].items():
            rows.append(
                {
                    **base,
                    "item": item,
                    "score": float(value["score"]),
                    "repeat": None,
                    "digit_mass": value.get("score_token_mass"),
                }
            )
        for item, value in (doc.get("course_items") or {}).items():  # never in the total
            rows.append({**base, "item": item, "score": float(value["score"]), "repeat": None})
        rows.append({**base, "item": "total", "score": float(doc["total"]), "repeat": None})
        rows.append({**base, "item": "percent", "score": float(doc["percent"]), "repeat": None})
        if doc.get("safety"):  # apart from the total, risk profiles only
            rows.append({**base, "item": "safety", "score": float(doc["safety"]["score"]), "repeat": None})
        repeat_scores = {item: value.get("repeat_scores") for item, value in doc["items"].items()}
        if all(repeat_scores.values()):
            for r in range(len(next(iter(repeat_scores.values())))):
                for item, scores in repeat_scores.items():
                    rows.append({**base, "item": item, "score": float(scores[r]), "repeat": r})
                rows.append(
                    {**base, "item": "total", "score": float(sum(s[r] for s in repeat_scores.values())), "repeat": r}
                )
    return pl.DataFrame(rows, schema=SCHEMA).sort(["judge", "model", "condition", "seed", "profile", "session", "item"])


def read_scores(path: str, rubric: dict[str, Any] | None = None) -> pl.DataFrame:
    """Read a scores table from parquet or CSV, refuse a bad one (``cbtflow.judge.scores_check``:
    unreadable or empty, missing columns, empty or non-numeric values, scores outside the
    rubric's scale, a transcript's row twice), and give every transcript that has item
    rows but no ``total`` its total and percent from ``rubric`` (default: the project's CTRS)."""
    rubric = rubric or load_rubric(DEFAULT_RUBRIC, "ctrs-modified")
    frame = scores_check.coerce(scores_check.read_table(path), str(path))
    if "session" not in frame.columns:  # a sheet of one-session transcripts
        frame = frame.with_columns(pl.lit(1, dtype=pl.Int64).alias("session"))
    for column, dtype in (
        ("repeat", pl.Int64),
        ("transcript", pl.Utf8),
        ("answered_by", pl.Utf8),
        ("eval_split", pl.Utf8),
        ("style", pl.Utf8),
    ):
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=dtype).alias(column))
    frame = frame.with_columns(
        pl.col("repeat").cast(pl.Int64, strict=False),
        pl.col("transcript").cast(pl.Utf8),
    )
    scores_check.check_scale(frame, rubric, str(path))
    scores_check.check_unique(frame, str(path))
    return add_missing_totals(frame, rubric, str(path))


def _describe(key: tuple) -> str:
    judge, model, condition, seed, profile, session, repeat = key
    where = f"judge={judge} model={model} condition={condition} seed={seed} profile={profile}"
    where += f" session={int(session)}" if not pd.isna(session) and int(session) > 1 else ""
    return where + ("" if pd.isna(repeat) else f" repeat={int(repeat)}")


def add_missing_totals(frame: pl.DataFrame, rubric: dict[str, Any], source: str) -> pl.DataFrame:
    """Totals (sum of the rubric's items) and percent rows for transcripts that have item
    rows only. Fails naming the transcript and item when an item is missing, and naming the
    columns when the table holds neither item nor total rows."""
    table = frame.to_pandas()
    wanted = item_ids(rubric)
    has_total = set(map(tuple, table.loc[table["item"] == "total", TRANSCRIPT_KEYS].astype(object).to_numpy()))
    items = table[~table["item"].isin(NOT_RUBRIC_ITEMS)]
    if items.empty and not has_total:
        raise ValueError(
            f"{source}: no 'total' rows and no item rows; the 'item' column must hold 'total' or the "
            f"rubric's items {wanted}"
        )
    keyed = items.assign(_key=list(map(tuple, items[TRANSCRIPT_KEYS].astype(object).to_numpy())))
    need = keyed[~keyed["_key"].isin(has_total)]
    if need.empty:
        return frame
    unknown = sorted(set(need["item"]) - set(wanted))
    if unknown:
        raise ValueError(
            f"{source}: items {unknown} are not in rubric '{rubric['name']}' {wanted}; pass the rubric "
            "they come from (cbtflow stats --rubric FILE --variant NAME) or add 'total' rows"
        )
    rows = []
    for key, group in need.groupby("_key", sort=True):
        lacking = [i for i in wanted if i not in set(group["item"])]
        if lacking:
            raise ValueError(
                f"{source}: transcript {_describe(key)} lacks item(s) {lacking}, so its total cannot "
                "be computed; add them or a 'total' row"
            )
        repeated = sorted(set(group.loc[group["item"].duplicated(), "item"]))
        if repeated:
            raise ValueError(f"{source}: transcript {_describe(key)} has item(s) {repeated} more than once")
        first = group.iloc[0].drop(labels=["_key"])
        total = float(group["score"].sum())
        rows.append({**first.to_dict(), "item": "total", "score": total})
        rows.append({**first.to_dict(), "item": "percent", "score": 100.0 * total / max_total(rubric)})
    added = pl.from_pandas(pd.DataFrame(rows)[frame.columns]).cast(frame.schema)
    return pl.concat([frame, added], how="vertical")
