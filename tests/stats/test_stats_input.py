"""``cbtflow stats`` reads what people have: full tables, item-only rater sheets (CSV or
parquet), and fails naming what is missing instead of writing an empty analysis."""

import json

import polars as pl
import pytest
from fakes import rater_table

from cbtflow.cli import main


def run_stats(tmp_path, table: pl.DataFrame, name: str, capsys=None):
    path = tmp_path / name
    table.write_parquet(path) if name.endswith(".parquet") else table.write_csv(path)
    out = tmp_path / (name + ".json")
    code = main(["stats", str(path), "-o", str(out)])
    return code, (json.loads(out.read_text()) if out.exists() else None)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_item_only_table_gives_the_same_analysis_as_with_totals(tmp_path, suffix):
    full = rater_table().select(["judge", "model", "condition", "seed", "profile", "item", "score"])
    items_only = full.filter(~pl.col("item").is_in(["total", "percent"]))
    code_a, with_totals = run_stats(tmp_path, full, f"full.{suffix}")
    code_b, from_items = run_stats(tmp_path, items_only, f"items.{suffix}")
    assert code_a == code_b == 0
    for result in (with_totals, from_items):
        result.pop("source")
    assert from_items["judges"]["rater"]["n_transcripts"] == 48
    assert from_items == with_totals
    primary = from_items["judges"]["rater"]["primary"]["cbt_vs_instruct"]
    assert set(primary["m1"]) >= {"estimate", "ci95", "p", "p_holm", "n_units", "unit", "method"}


def test_a_missing_item_names_the_transcript_and_the_item(tmp_path, capsys):
    items_only = rater_table().filter(~pl.col("item").is_in(["total", "percent"]))
    gap = items_only.filter(
        ~(
            (pl.col("model") == "m2")
            & (pl.col("profile") == "eval-003")
            & (pl.col("seed") == 2)
            & (pl.col("condition") == "cbt")
            & (pl.col("item") == "homework")
        )
    )
    code, written = run_stats(tmp_path, gap, "gap.csv")
    err = capsys.readouterr().err
    assert code == 2 and written is None
    assert "model=m2 condition=cbt seed=2 profile=eval-003" in err and "['homework']" in err


def test_neither_items_nor_totals_and_unknown_items_fail_naming_them(tmp_path, capsys):
    percent_only = rater_table().filter(pl.col("item") == "percent")
    code, written = run_stats(tmp_path, percent_only, "percent.csv")
    assert code == 2 and written is None
    assert "no 'total' rows and no item rows" in capsys.readouterr().err
    renamed = rater_table().filter(pl.col("item") == "agenda").with_columns(pl.lit("warmth").alias("item"))
    code, _ = run_stats(tmp_path, renamed, "renamed.csv")
    assert code == 2 and "item 'warmth' is not in rubric 'ctrs-modified'" in capsys.readouterr().err


def test_missing_columns_and_one_condition_fail(tmp_path, capsys):
    code, _ = run_stats(tmp_path, pl.DataFrame({"model": ["x"]}), "bad.csv")
    assert code == 2 and "lacks columns" in capsys.readouterr().err
    code, written = run_stats(tmp_path, rater_table().filter(pl.col("condition") == "cbt"), "one.csv")
    assert code == 2 and written is None and "contain no pair" in capsys.readouterr().err


def test_a_bad_rubric_file_is_named(tmp_path, capsys):
    rater_table().write_csv(tmp_path / "t.csv")
    (tmp_path / "empty.yaml").write_text("")
    assert (
        main(
            ["stats", str(tmp_path / "t.csv"), "-o", str(tmp_path / "o.json"), "--rubric", str(tmp_path / "empty.yaml")]
        )
        == 2
    )
    assert "empty.yaml: not a rubric" in capsys.readouterr().err and not (tmp_path / "o.json").exists()


def test_too_few_profiles_for_any_test_is_an_error(tmp_path, capsys):
    one_profile = rater_table(profiles=1)
    code, written = run_stats(tmp_path, one_profile, "one.csv")
    assert code == 2 and written is None
    err = capsys.readouterr().err
    assert "no contrast could be tested" in err and "needs at least 2 profiles, has 1" in err
