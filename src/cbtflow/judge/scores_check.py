"""Refuse a bad scores table before any statistic is computed.

A table someone hands to ``cbtflow stats`` (a rater's sheet, an export from elsewhere) can
hold text where a score should be, a score outside the rubric's scale, the same transcript
twice, or nothing at all. Any of those would give a wrong answer without a word, so each
is an error that names the file, the row (counting data rows from 1) or transcript, and
the rule it breaks; the caller writes nothing.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from cbtflow.instrument import item_ids

KEY_COLUMNS = ["judge", "model", "condition", "seed", "profile", "item", "score"]
TRANSCRIPT_KEYS = ["judge", "model", "condition", "seed", "profile", "session", "repeat"]


class BadTable(ValueError):
    """A scores table that breaks one of the rules below."""


def _where(frame: pl.DataFrame, row: int) -> str:
    values = frame.row(row, named=True)
    key = " ".join(f"{c}={values[c]}" for c in TRANSCRIPT_KEYS if c in values and values[c] is not None)
    return f"row {row + 1} ({key}, item={values.get('item')})"


def read_table(path: str) -> pl.DataFrame:
    """Read CSV or parquet; an unreadable or empty file is an error naming it."""
    try:
        frame = (
            pl.read_parquet(path)
            if str(path).endswith(".parquet")
            else pl.read_csv(path, schema_overrides={"score": pl.Utf8, "seed": pl.Utf8, "session": pl.Utf8})
        )
    except Exception as err:  # polars raises several kinds for a bad file
        raise BadTable(f"{path}: cannot read the scores table ({type(err).__name__}: {err})") from err
    if frame.height == 0:
        raise BadTable(f"{path}: the scores table has no rows (rule: a table to analyse holds scores)")
    missing = [c for c in KEY_COLUMNS if c not in frame.columns]
    if missing:
        raise BadTable(f"{path}: scores table lacks columns {missing} (rule: it needs {KEY_COLUMNS})")
    return frame


def _numbers(frame: pl.DataFrame, column: str, path: str, dtype: Any, rule: str) -> pl.DataFrame:
    """Cast a column, naming the first value that is empty or not a number."""
    original = frame[column]
    empty = original.is_null()
    if original.dtype == pl.Utf8:
        empty = empty | (original.str.strip_chars() == "")
    if empty.any():
        row = int(empty.arg_true()[0])
        raise BadTable(f"{path}: {_where(frame, row)}: '{column}' is empty (rule: {rule})")
    cast = original.cast(dtype, strict=False)
    bad = cast.is_null()
    if dtype == pl.Float64:
        bad = bad | ~cast.fill_null(0.0).is_finite()
    if bad.any():
        row = int(bad.arg_true()[0])
        raise BadTable(f"{path}: {_where(frame, row)}: '{column}' is {original[row]!r} (rule: {rule})")
    return frame.with_columns(cast.alias(column))


def coerce(frame: pl.DataFrame, path: str) -> pl.DataFrame:
    """Key columns present and non-empty, seeds integers, scores finite numbers."""
    for column in ("judge", "model", "condition", "profile", "item"):
        values = frame[column].cast(pl.Utf8)
        empty = values.is_null() | (values.str.strip_chars() == "")
        if empty.any():
            row = int(empty.arg_true()[0])
            raise BadTable(f"{path}: {_where(frame, row)}: '{column}' is empty (rule: every row names its {column})")
        frame = frame.with_columns(values.alias(column))
    frame = _numbers(frame, "seed", path, pl.Int64, "a seed is an integer")
    if "session" in frame.columns:
        frame = _numbers(frame, "session", path, pl.Int64, "a session is a whole number from 1")
        below = frame["session"] < 1
        if below.any():
            row = int(below.arg_true()[0])
            raise BadTable(
                f"{path}: {_where(frame, row)}: session {frame['session'][row]} (rule: sessions count from 1)"
            )
    return _numbers(frame, "score", path, pl.Float64, "a score is a finite number")


def check_scale(frame: pl.DataFrame, rubric: dict[str, Any], path: str) -> None:
    """Item scores within the rubric's scale; totals within its items' range; percent 0-100."""
    low, high = float(rubric["scale"]["min"]), float(rubric["scale"]["max"])
    n_items = len(item_ids(rubric))
    allowed = (
        set(item_ids(rubric)) | {i["id"] for i in rubric.get("course_items") or []} | {"total", "percent", "safety"}
    )
    unknown = frame.with_row_index("_row").filter(~pl.col("item").is_in(sorted(allowed)))
    if unknown.height:
        row = int(unknown["_row"][0])
        raise BadTable(
            f"{path}: {_where(frame, row)}: item '{unknown['item'][0]}' is not in rubric '{rubric['name']}' "
            f"(rule: items are the rubric's {item_ids(rubric)}, or total/percent/safety; pass the rubric they "
            "come from with --rubric FILE --variant NAME)"
        )
    ranges = {"total": (low * n_items, high * n_items), "percent": (0.0, 100.0)}
    for item, (lo, hi) in [*ranges.items(), ("item", (low, high))]:
        chosen = pl.col("item") == item if item in ranges else ~pl.col("item").is_in(list(ranges))
        outside = frame.with_row_index("_row").filter(chosen & ((pl.col("score") < lo) | (pl.col("score") > hi)))
        if outside.height:
            row = int(outside["_row"][0])
            what = "a transcript's total" if item == "total" else "a percent" if item == "percent" else "an item score"
            raise BadTable(
                f"{path}: {_where(frame, row)}: score {outside['score'][0]:g} is outside {lo:g}-{hi:g} "
                f"(rule: {what} lies in {lo:g}-{hi:g} on rubric '{rubric['name']}')"
            )


def check_unique(frame: pl.DataFrame, path: str) -> None:
    """One row per transcript and item: a repeated row would be counted twice."""
    keys = [c for c in [*TRANSCRIPT_KEYS, "item"] if c in frame.columns]
    indexed = frame.with_row_index("_row")
    again = indexed.filter(~pl.struct(keys).is_first_distinct())
    if again.height:
        second = int(again["_row"][0])
        match = pl.all_horizontal([pl.col(k).eq_missing(frame[k][second]) for k in keys])
        first = int(indexed.filter(match)["_row"][0])
        raise BadTable(
            f"{path}: {_where(frame, second)} repeats row {first + 1} (rule: one row per transcript and item; "
            "the same transcript twice would be counted twice)"
        )
