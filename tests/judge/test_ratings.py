import csv
import json
from pathlib import Path

import polars as pl
import pytest
from workspace import ROOT

from cbtflow import stats
from cbtflow.instrument import item_ids, load_rubric
from cbtflow.judge.kinds.lexicon import load_lexicon, score_safety
from cbtflow.judge.ratings import export_ratings, import_ratings
from cbtflow.judge.scores import scores_table

RUBRIC = load_rubric(ROOT / "resources/ctrs/ctrs.yaml", "ctrs-modified")
PAIRS = json.loads((ROOT / "tests/data/lexicon_pairs.json").read_text())


def transcripts(tmp_path):
    paths = []
    for i in range(4):
        for condition in ("instruct", "cbt"):
            doc = {
                "kind": "transcript",
                "model": "secret-model",
                "condition": condition,
                "seed": 1,
                "profile_id": f"eval-{i:03d}",
                "risk_level": "passive ideation" if i == 0 else "none",
                "turns": PAIRS[i]["good" if condition == "cbt" else "poor"],
            }
            path = tmp_path / "t" / condition / f"eval-{i:03d}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(doc))
            paths.append(path)
    return paths


def fill(sheet: Path, rater: str, key: dict, score_of) -> None:
    rows = list(csv.DictReader(sheet.open()))
    for row in rows:
        row["rater"] = rater
        for item in item_ids(RUBRIC):
            row[item] = str(score_of(key[row["rating_id"]], item))
    with sheet.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_export_is_blinded_and_import_gives_a_scores_table(tmp_path):
    n = export_ratings(transcripts(tmp_path), tmp_path / "ratings", RUBRIC, seed=3)
    assert n == 8
    texts = " ".join(p.read_text() for p in (tmp_path / "ratings/transcripts").glob("*.txt"))
    assert "secret-model" not in texts and "cbt" not in texts and "instruct" not in texts
    sheet, key_path = tmp_path / "ratings/sheet.csv", tmp_path / "ratings/key.json"
    key = json.loads(key_path.read_text())
    fill(sheet, "anna", key, lambda origin, item: 4 if origin["condition"] == "cbt" else 1)
    table = import_ratings(sheet, key_path, RUBRIC)
    totals = table.filter(table["item"] == "total")
    assert set(totals["judge"]) == {"human:anna"} and totals.height == 8
    assert sorted(set(totals["score"])) == [11.0, 44.0]
    result = stats.analyse(table)["judges"]["human:anna"]["primary"]["cbt_vs_instruct"]["secret-model"]
    assert result["estimate"] == pytest.approx(33.0)


def test_import_names_bad_cells(tmp_path):
    export_ratings(transcripts(tmp_path), tmp_path / "r", RUBRIC)
    sheet, key_path = tmp_path / "r/sheet.csv", tmp_path / "r/key.json"
    fill(sheet, "ben", json.loads(key_path.read_text()), lambda origin, item: 9 if item == "pacing" else 3)
    with pytest.raises(ValueError, match=r"line 2, column pacing: '9' is not an integer 0-6"):
        import_ratings(sheet, key_path, RUBRIC)


def test_judge_human_agreement_reaches_the_report_analysis(tmp_path):
    export_ratings(transcripts(tmp_path), tmp_path / "r", RUBRIC)
    sheet, key_path = tmp_path / "r/sheet.csv", tmp_path / "r/key.json"
    fill(
        sheet,
        "anna",
        json.loads(key_path.read_text()),
        lambda o, item: (5 if o["condition"] == "cbt" else 1) + int(o["profile_id"][-1]) % 2,
    )
    human = import_ratings(sheet, key_path, RUBRIC)
    judge_docs = [
        {
            "judge": "api",
            "model": "secret-model",
            "condition": c,
            "seed": 1,
            "profile_id": f"eval-{i:03d}",
            "items": {it: {"score": (4 if c == "cbt" else 2) + i % 2} for it in item_ids(RUBRIC)},
            "total": 11 * ((4 if c == "cbt" else 2) + i % 2),
            "percent": 0.0,
        }
        for i in range(4)
        for c in ("instruct", "cbt")
    ]
    both = pl.concat([scores_table(judge_docs), human.select(scores_table(judge_docs).columns)])
    # A judge without transcript hashes still meets the human ratings on model, condition, seed and profile.
    total = stats.analyse(both)["human_agreement"]["by_judge"]["api"]["human:anna"]["total"]
    assert total["ran"] and total["raters"] == 2 and total["icc2_single"]["icc"] > 0.5


def test_safety_item_is_scored_apart_for_risk_profiles_only(scripted, tmp_path):
    from fakes import run_judge

    lexicon = load_lexicon(ROOT / "resources/ctrs/lexicon.yaml")
    asks = [
        {"role": "therapist", "text": "Have you had any thoughts of hurting yourself? Let's make a safety plan."},
        {"role": "patient", "text": "Sometimes I wish I wouldn't wake up."},
    ]
    ignores = [{"role": "therapist", "text": "Let's talk about your week."}, {"role": "patient", "text": "Okay."}]
    scale = {"min": 0, "max": 6}
    assert score_safety(lexicon, asks, scale)["score"] == 6.0 and score_safety(lexicon, ignores, scale)["score"] == 0.0
    docs = run_judge(
        scripted(lambda m, s: ""),
        [
            {
                "profile_id": "eval-000",
                "model": "m",
                "condition": "cbt",
                "seed": 1,
                "risk_level": "passive ideation",
                "turns": asks,
            },
            {
                "profile_id": "eval-001",
                "model": "m",
                "condition": "cbt",
                "seed": 1,
                "risk_level": "none",
                "turns": asks,
            },
        ],
        [str(tmp_path / "a.json"), str(tmp_path / "b.json")],
        {"name": "lexicon", "kind": "lexicon"},
        RUBRIC,
        {},
        lexicon,
        seed=1,
    )
    assert docs[0]["safety"]["score"] == 6.0 and docs[1]["safety"] is None
    assert docs[0]["total"] == docs[1]["total"], "safety never enters the CTRS total"
    table = scores_table(docs)
    assert table.filter(table["item"] == "safety").height == 1


def test_each_judge_is_compared_with_each_human_apart(tmp_path):
    """Weighted κ per item and ICC on the total for judge vs human, against sklearn and
    pingouin called directly; the across-judges ICC never pools a human in."""
    import numpy as np
    import pingouin as pg
    from sklearn.metrics import cohen_kappa_score

    export_ratings(transcripts(tmp_path), tmp_path / "r", RUBRIC)
    sheet, key_path = tmp_path / "r/sheet.csv", tmp_path / "r/key.json"
    key = json.loads(key_path.read_text())
    assert all(origin["transcript_sha256"] for origin in key.values()), "the key ties ratings to transcripts"
    rng = np.random.default_rng(5)
    human_scores = {rid: {i: int(rng.integers(0, 7)) for i in item_ids(RUBRIC)} for rid in key}
    fill(sheet, "anna", key, lambda origin, item: next(human_scores[r][item] for r, o in key.items() if o == origin))
    human = import_ratings(sheet, key_path, RUBRIC)
    judge_docs = []
    for rid, origin in key.items():
        scores = {i: min(6, max(0, human_scores[rid][i] + int(rng.integers(-1, 2)))) + 0.2 for i in item_ids(RUBRIC)}
        judge_docs.append(
            {
                "judge": "api",
                "model": origin["model"],
                "condition": origin["condition"],
                "seed": origin["seed"],
                "profile_id": origin["profile_id"],
                "transcript_sha256": origin["transcript_sha256"],
                "items": {i: {"score": s} for i, s in scores.items()},
                "total": sum(scores.values()),
                "percent": 0.0,
            }
        )
    both = pl.concat([scores_table(judge_docs), human.select(scores_table(judge_docs).columns)])
    result = stats.analyse(both)
    assert result["reliability_across_judges"]["ran"] is False, "one machine judge: nothing pooled with a human"
    entry = result["human_agreement"]["by_judge"]["api"]["human:anna"]
    table = both.to_pandas()
    for item in ("agenda", "homework"):
        rows = table[table["item"] == item].pivot_table(index="transcript", columns="judge", values="score")
        expected = cohen_kappa_score(
            rows["api"].round().astype(int), rows["human:anna"].astype(int), weights="quadratic"
        )
        assert entry["kappa_quadratic"][item]["kappa"] == pytest.approx(expected, abs=1e-12)
    totals = table[table["item"] == "total"]
    ref = pg.intraclass_corr(data=totals, targets="transcript", raters="judge", ratings="score").set_index("Type")
    assert entry["total"]["icc2_single"]["icc"] == pytest.approx(ref.loc["ICC(A,1)", "ICC"], abs=1e-12)
    assert entry["total"]["n_transcripts"] == len(key)
