"""The rating kit: its assignment (calibration, overlap, balance), the sheets it refuses, and
a rater's page in headless Chromium, round-tripped through import-ratings into the report."""

import csv
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from workspace import ROOT

from cbtflow import stats
from cbtflow.instrument import item_ids, load_rubric
from cbtflow.judge.kinds import JudgeJob
from cbtflow.judge.kinds.lexicon import LexiconScorer, load_lexicon
from cbtflow.judge.rating_kit import assign, build_kit, load_kit
from cbtflow.judge.ratings import import_ratings
from cbtflow.judge.run import _score_document
from cbtflow.judge.scores import scores_table
from cbtflow.report.inputs import ReportInputs
from cbtflow.report.sections import human

RUBRIC = load_rubric(ROOT / "resources/ctrs/ctrs.yaml", "ctrs-modified")
PAIRS = json.loads((ROOT / "tests/data/lexicon_pairs.json").read_text())


def transcripts(n_profiles=4):
    return [
        {
            "kind": "transcript",
            "model": "secret-model",
            "condition": condition,
            "seed": 1,
            "profile_id": f"eval-{i:03d}",
            "risk_level": "none",
            "turns": PAIRS[i % len(PAIRS)]["good" if condition == "cbt" else "poor"],
        }
        for i in range(n_profiles)
        for condition in ("instruct", "cbt")
    ]


def test_assignment_has_a_shared_calibration_set_overlap_and_balance():
    conditions = ["instruct", "cbt", "prompted"] * 8
    chosen, orders = assign(conditions, raters=4, overlap=2, calibration=3, seed=5)
    assert len(chosen) == 3 and len({conditions[i] for i in chosen}) == 3, "calibration spans the conditions"
    for order in orders.values():
        assert sorted(order[:3]) == sorted(chosen), "every rater rates the calibration set first"
        assert len(order) == len(set(order))
    counts = Counter(i for order in orders.values() for i in order[3:])
    assert set(counts) == set(range(24)) - set(chosen) and set(counts.values()) == {2}, "each other one to k raters"
    loads = [len(order) - 3 for order in orders.values()]
    assert max(loads) - min(loads) <= 1
    for order in orders.values():
        per = Counter(conditions[i] for i in order[3:])
        assert max(per.values()) - min(per.values()) <= 1, f"conditions balanced per rater: {per}"
    assert (chosen, orders) == assign(conditions, raters=4, overlap=2, calibration=3, seed=5), "seeded"
    assert orders != assign(conditions, raters=4, overlap=2, calibration=3, seed=6)[1]
    assert [o[:3] for o in orders.values()] != [orders[1][:3]] * 4, "each rater has an order of its own"
    with pytest.raises(ValueError, match="--overlap"):
        assign(conditions, raters=2, overlap=3, calibration=1, seed=0)


def test_the_kit_is_blinded_and_records_its_assignment(tmp_path):
    kit = build_kit(transcripts(), tmp_path / "kit", RUBRIC, raters=3, overlap=2, calibration=2, seed=1)
    assert load_kit(tmp_path / "kit/kit.json") == kit and len(kit["kit_id"]) == 16
    page = (tmp_path / "kit/rater1.html").read_text()
    assert "secret-model" not in page and "instruct" not in page and '"cbt"' not in page, "nothing names the origin"
    assert "default-src 'none'" in page, "the viewer's no-network policy"
    assert RUBRIC["items"][0]["anchors"][6] in page, "anchors read from the rubric"
    key = json.loads((tmp_path / "kit/key.json").read_text())
    assert {v["model"] for v in key.values()} == {"secret-model"} and set(key) == set(kit["transcripts"])


def _sheet(path: Path, rows: list[dict], header=None) -> Path:
    header = header or ["rating_id", "rater", *item_ids(RUBRIC), "safety", "kit"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        ({"rating_id": ""}, "no rating_id"),
        ({"rating_id": "R9999"}, "unknown rating_id 'R9999'"),
        ({"agenda": "7"}, "column agenda: '7' is not an integer 0-6"),
        ({"kit": "0123456789abcdef"}, "is not this kit's"),
        ("twice", "rated R0001 twice"),
        ("twice across sheets", r"rated R0001 twice \(first at .*sheet.csv, line 2"),
        ("an unrated sheet beside", r"again.csv: no rated rows"),
    ],
)
def test_bad_sheets_are_refused_naming_the_problem(tmp_path, change, message):
    kit = build_kit(transcripts(), tmp_path / "kit", RUBRIC, raters=2, overlap=1, calibration=2, seed=0)
    good = {"rating_id": "R0001", "rater": "rater1", **dict.fromkeys(item_ids(RUBRIC), "3"), "safety": "n/a"}
    good["kit"] = kit["kit_id"]
    rows = [good, dict(good)] if change == "twice" else [good] if isinstance(change, str) else [{**good, **change}]
    sheets = [_sheet(tmp_path / "sheet.csv", rows)]
    if change == "twice across sheets":  # the same rater's row again in a second sheet
        sheets.append(_sheet(tmp_path / "again.csv", [good]))
    if change == "an unrated sheet beside":  # a second rater's sheet exported before any rating
        sheets.append(_sheet(tmp_path / "again.csv", [{**good, "rater": ""}]))
    with pytest.raises(ValueError, match=message):
        import_ratings(sheets, tmp_path / "kit/key.json", RUBRIC, kit)
    assert import_ratings(_sheet(tmp_path / "ok.csv", [good]), tmp_path / "kit/key.json", RUBRIC, kit).height


def _lexicon_scores(docs):
    job = JudgeJob(
        None,
        {"name": "lexicon", "kind": "lexicon", "repeats": 1},
        RUBRIC,
        {},
        {"lexicon": load_lexicon(ROOT / "resources/ctrs/lexicon.yaml")},
        None,
    )
    return scores_table([_score_document(LexiconScorer(job), d, "/tmp/x.json", seed=0) for d in docs])


def _rate_with_the_keyboard(browser, page, scores_by_transcript):
    """Open the page, rate the first transcripts with digits, moving on with the arrow key."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(page.as_uri())
    body = browser.find_element(By.TAG_NAME, "body")
    rated = []
    for scores in scores_by_transcript:
        rated.append(browser.find_element(By.ID, "transcript-id").get_attribute("data-id"))
        body.send_keys("".join(str(s) for s in scores))
        body.send_keys(Keys.ARROW_RIGHT)
    return rated


def test_a_rater_scores_with_the_keyboard_reloads_exports_and_the_report_shows_agreement(tmp_path):
    from browser import chrome
    from selenium.webdriver.common.by import By

    docs = transcripts()
    kit = build_kit(docs, tmp_path / "kit", RUBRIC, raters=2, overlap=1, calibration=3, seed=3)
    n = len(item_ids(RUBRIC))
    patterns = {  # the calibration set, rated in each rater's own order
        "rater1": [[(i % 5) + 1 for i in range(n)], [(i % 3) + 2 for i in range(n)], [5] * n],
        "rater2": [[(i % 5) + 1 for i in range(n)], [(i % 3) + 1 for i in range(n)], [1] * n],
    }
    sheets = {}
    with chrome(tmp_path / "chromium") as browser:
        for rater, scores in patterns.items():
            page = tmp_path / "kit" / f"{rater}.html"
            rated = _rate_with_the_keyboard(browser, page, scores)
            assert sorted(rated) == kit["calibration"], "both raters rate the calibration set first"
            progress = browser.find_element(By.ID, "progress-text").text
            assert "3 complete" in progress, progress
            browser.refresh()  # autosaved: the ratings come back
            assert "3 complete" in browser.find_element(By.ID, "progress-text").text
            browser.find_element(By.TAG_NAME, "body").send_keys("p")  # back to the last one rated
            shown = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#rubric .item .score")]
            assert shown == [str(s) for s in scores[2]], shown
            browser.find_element(By.ID, "export").click()
            text = browser.find_element(By.ID, "export-text").get_attribute("value")
            sheets[rater] = tmp_path / f"{rater}.csv"
            sheets[rater].write_text(text)
            errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
            assert not errors, errors
    rows = list(csv.DictReader(sheets["rater1"].open()))
    assert {r["kit"] for r in rows} == {kit["kit_id"]} and all(r["started"] for r in rows)
    assert sum(bool(r["rater"]) for r in rows) == 3 and all(float(r["seconds"]) >= 0 for r in rows)
    # Both raters' sheets in one import, as a user would (the kit's id is checked from kit.json beside the key).
    imported = subprocess.run(
        [sys.executable, "-m", "cbtflow.cli", "import-ratings", *map(str, sheets.values()), "--key",
         str(tmp_path / "kit/key.json"), "-o", str(tmp_path / "human.parquet")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert "(2 raters)" in imported.stdout, imported.stdout
    humans = pl.read_parquet(tmp_path / "human.parquet")
    assert humans.filter(pl.col("item") == "total").height == 6
    table = pl.concat([_lexicon_scores(docs), humans], how="diagonal_relaxed")
    agreement = stats.analyse(table)["human_agreement"]
    assert agreement["ceiling"]["n_pairs"] == 1 and agreement["between_raters"]["human:rater1 | human:rater2"]
    assert agreement["relative_to_ceiling"]["lexicon"]["ceiling_icc"] == agreement["ceiling"]["mean_icc"]
    inputs = ReportInputs(stats={"human_agreement": agreement}, primary_judge="lexicon", figures={}, usage={},
                          train_logs={}, config_summary="")  # fmt: skip
    report = "\n".join(human.section(inputs))
    assert "## Rater–rater agreement (the human ceiling)" in report
    assert "## Judge–human agreement (each judge apart)" in report and "of the human ceiling" in report
