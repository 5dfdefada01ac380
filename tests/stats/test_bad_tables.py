"""Every bad scores table is refused by ``cbtflow stats``: exit 2, nothing written, and a
message that names the file, the row or transcript, and the rule broken."""

import polars as pl
import pytest
from fakes import rater_table

from cbtflow.cli import main


def _set(table: pl.DataFrame, row: int, column: str, value) -> pl.DataFrame:
    frame = table.with_columns(pl.col(column).cast(pl.Utf8))
    values = frame[column].to_list()
    values[row] = value
    return frame.with_columns(pl.Series(column, values, dtype=pl.Utf8))


def _first(table: pl.DataFrame, item: str) -> int:
    return int(table.with_row_index("r").filter(pl.col("item") == item)["r"][0])


def _bad(case: str) -> tuple[pl.DataFrame, list[str]]:
    table = rater_table().sort(["model", "condition", "seed", "profile", "item"])
    total, agenda = _first(table, "total"), _first(table, "agenda")
    if case == "non-numeric score":
        return _set(table, agenda, "score", "abc"), [f"row {agenda + 1}", "'abc'", "a score is a finite number"]
    if case == "missing score":
        return _set(table, agenda, "score", None), [f"row {agenda + 1}", "'score' is empty"]
    if case == "infinite score":
        return _set(table, agenda, "score", "inf"), [f"row {agenda + 1}", "a score is a finite number"]
    if case == "item above the scale":
        return _set(table, agenda, "score", "9"), [f"row {agenda + 1}", "outside 0-6", "an item score lies in 0-6"]
    if case == "item below the scale":
        return _set(table, agenda, "score", "-1"), [f"row {agenda + 1}", "outside 0-6", "an item score"]
    if case == "total outside the scale":
        return _set(table, total, "score", "999"), [f"row {total + 1}", "a transcript's total lies in 0-66"]
    if case == "a total row twice":
        return pl.concat([table, table[total]]), [f"repeats row {total + 1}", "one row per transcript and item"]
    if case == "an item row twice":
        return pl.concat([table, table[agenda]]), [f"repeats row {agenda + 1}", "item=agenda"]
    if case == "missing seed":
        return _set(table, agenda, "seed", None), [f"row {agenda + 1}", "'seed' is empty"]
    if case == "missing column":
        return table.drop("condition"), ["lacks columns ['condition']"]
    if case == "session below 1":
        table = table.with_columns(pl.lit(1).alias("session"))
        return _set(table, agenda, "session", "0"), [f"row {agenda + 1}", "sessions count from 1"]
    raise AssertionError(case)


CASES = [
    "non-numeric score",
    "missing score",
    "infinite score",
    "item above the scale",
    "item below the scale",
    "total outside the scale",
    "a total row twice",
    "an item row twice",
    "missing seed",
    "missing column",
    "session below 1",
]


@pytest.mark.parametrize("case", CASES)
def test_a_bad_table_is_refused_naming_file_row_and_rule(tmp_path, capsys, case):
    table, expected = _bad(case)
    path, out = tmp_path / "scores.csv", tmp_path / "stats.json"
    table.write_csv(path)
    assert main(["stats", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert not out.exists(), "nothing is written"
    assert str(path) in err
    for fragment in expected:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    if case != "missing column":
        assert "judge=rater model=" in err and "profile=eval-" in err, "the row's transcript is named"


@pytest.mark.parametrize("content", [b"", b"judge,model,condition,seed,profile,item,score\n", b"\x00\x01garbage"])
@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_empty_or_unreadable_files_are_refused(tmp_path, capsys, content, suffix):
    path, out = tmp_path / f"scores.{suffix}", tmp_path / "stats.json"
    path.write_bytes(content)
    assert main(["stats", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and not out.exists()
    assert "cannot read" in err or "no rows" in err


def test_a_bad_parquet_table_is_refused_too(tmp_path, capsys):
    table, _ = _bad("item above the scale")
    path, out = tmp_path / "scores.parquet", tmp_path / "stats.json"
    table.write_parquet(path)
    assert main(["stats", str(path), "-o", str(out)]) == 2
    assert "an item score lies in 0-6" in capsys.readouterr().err and not out.exists()


def test_an_existing_output_is_not_touched_when_the_table_is_bad(tmp_path):
    table, _ = _bad("a total row twice")
    path, out = tmp_path / "scores.csv", tmp_path / "stats.json"
    table.write_csv(path)
    out.write_text('{"kept": true}')
    assert main(["stats", str(path), "-o", str(out)]) == 2
    assert out.read_text() == '{"kept": true}', "what was computed before is not overwritten"
