"""The long-format scores table the statistics read: one row per judge × transcript × item.

Columns: judge, heuristic, model, condition, seed, profile, item, score, plus the
transcript's length. Each transcript also gets ``total`` and ``percent`` rows, so any
analysis is a filter on ``item``. ``repeat`` is empty on the consensus rows every analysis
uses; a judge run with ``repeats: k`` adds each repeat's item and total rows (repeat 0..k-1)
for the reliability analysis.
"""

from __future__ import annotations

from typing import Any, Sequence

import polars as pl

SCHEMA = {"judge": pl.Utf8, "heuristic": pl.Boolean, "model": pl.Utf8, "condition": pl.Utf8, "seed": pl.Int64,
          "profile": pl.Utf8, "item": pl.Utf8, "score": pl.Float64, "transcript_tokens": pl.Int64,
          "transcript_turns": pl.Int64, "repeat": pl.Int64}
KEY_COLUMNS = ["judge", "model", "condition", "seed", "profile", "item", "score"]


def scores_table(documents: Sequence[dict[str, Any]]) -> pl.DataFrame:
    rows = []
    for doc in documents:
        base = {"judge": doc["judge"], "heuristic": bool(doc.get("heuristic", False)), "model": doc["model"],
                "condition": doc["condition"], "seed": int(doc["seed"]), "profile": doc["profile_id"],
                "transcript_tokens": int(doc.get("transcript_tokens", 0)),
                "transcript_turns": int(doc.get("transcript_turns", 0))}
        for item, value in doc["items"].items():
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
                rows.append({**base, "item": "total", "score": float(sum(s[r] for s in repeat_scores.values())),
                             "repeat": r})
    return pl.DataFrame(rows, schema=SCHEMA).sort(["judge", "model", "condition", "seed", "profile", "item"])


def read_scores(path: str) -> pl.DataFrame:
    """Read a scores table from parquet or CSV and check it has the required columns."""
    frame = pl.read_parquet(path) if str(path).endswith(".parquet") else pl.read_csv(path)
    missing = [c for c in KEY_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: scores table lacks columns {missing} (needs {KEY_COLUMNS})")
    if "judge" in frame.columns and frame["judge"].null_count():
        raise ValueError(f"{path}: column 'judge' has empty values")
    if "repeat" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Int64).alias("repeat"))
    return frame.with_columns(pl.col("score").cast(pl.Float64), pl.col("seed").cast(pl.Int64),
                              pl.col("repeat").cast(pl.Int64, strict=False))
