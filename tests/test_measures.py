"""Simulated self-reports: questionnaires as data, answered in character through the call
cache, and their change scores by model × condition with the profile as the unit."""

import copy

import numpy as np
import pytest
import yaml
from workspace import ROOT

from cbtflow.llm import Client, Endpoint
from cbtflow.simulate.measures import load_measure, self_reports
from cbtflow.stats.outcomes import outcome_table, outcomes

MEASURES = {m: load_measure(ROOT / f"resources/measures/{m}.yaml") for m in ("mood", "affect", "alliance")}
TEMPLATES = {"measure_item": str(ROOT / "resources/prompts/measure_item.j2")}
TURNS = [{"role": "therapist", "text": "What brings you here?"}, {"role": "patient", "text": "I feel low."}]


def test_each_questionnaire_is_rubric_shaped_and_a_bad_one_is_named(tmp_path):
    assert [len(m["items"]) for m in MEASURES.values()] == [9, 10, 6]
    assert MEASURES["alliance"]["when"] == ["post"] and MEASURES["affect"]["better"]["negative"] == "lower"
    for m in MEASURES.values():
        lo, hi = m["scale"]["min"], m["scale"]["max"]
        assert all(sorted(i["anchors"]) == list(range(lo, hi + 1)) for i in m["items"])
    broken = copy.deepcopy(MEASURES["mood"])
    broken["subscales"]["total"].append("appetit")
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(broken))
    with pytest.raises(ValueError, match="unknown items \\['appetit'\\]"):
        load_measure(tmp_path / "m.yaml")


def test_self_reports_come_at_their_time_points_and_the_pre_answers_are_shared(tmp_path):
    client = Client(cache_dir=tmp_path / "cache")
    endpoint = Endpoint("scripted/patient")
    first = self_reports(client, endpoint, MEASURES, "You are Ana.", TURNS, TEMPLATES, 1, tmp_path / "a")
    assert set(first["pre"]) == {"mood", "affect"} and set(first["post"]) == {"mood", "affect", "alliance"}
    mood = first["post"]["mood"]
    assert mood["subscales"]["total"] == pytest.approx(sum(mood["items"].values()), abs=1e-3)
    assert all(0 <= v <= 3 for v in mood["items"].values())
    other_session = [*TURNS, {"role": "therapist", "text": "Tell me more."}]
    hits_before = client.usage.totals()["cache_hits"]
    second = self_reports(client, endpoint, MEASURES, "You are Ana.", other_session, TEMPLATES, 2, tmp_path / "b")
    assert second["pre"] == first["pre"], "before the session the answers depend on the persona only"
    assert client.usage.totals()["cache_hits"] - hits_before == 19, "mood and affect pre answers from the cache"


def test_an_api_patient_answers_in_validated_json_with_re_asks(tmp_path):
    from fakes import serve

    replies = iter(["not json", '{"score": 2, "justification": "Some days were hard."}'] * 100)
    server, seen = serve([200], content=lambda request: next(replies))
    try:
        endpoint = Endpoint("openai/patient", api_base=f"http://127.0.0.1:{server.server_port}/v1")
        client = Client(cache_dir=tmp_path / "cache")
        templates = {"measure_item_json": str(ROOT / "resources/prompts/measure_item_json.j2")}
        alliance = {"alliance": MEASURES["alliance"]}
        reports = self_reports(client, endpoint, alliance, "You are Ana.", TURNS, templates, 1, tmp_path / "t")
    finally:
        server.shutdown()
    assert reports["post"]["alliance"]["items"] == dict.fromkeys(reports["post"]["alliance"]["items"], 2)
    assert reports["post"]["alliance"]["subscales"]["total"] == 12
    assert len(seen) == 12, "each of the 6 items: one invalid reply, one re-ask"
    assert (
        "You are Ana." in seen[0]["messages"][0]["content"]
        and "therapy session you just had" in (seen[0]["messages"][0]["content"])
    )


def transcripts(rng, change_by_condition, n_profiles=10, seeds=(1, 2)):
    docs = []
    for p in range(n_profiles):
        pre = rng.uniform(10, 20)
        for seed in seeds:
            for condition, change in change_by_condition.items():
                post = pre + change + rng.normal(0, 1)
                docs.append(
                    {
                        "model": "m",
                        "condition": condition,
                        "seed": seed,
                        "profile_id": f"eval-{p:03d}",
                        "turns": [{"role": "patient", "text": f"{condition}{seed}{p}"}],
                        "measures": {
                            "pre": {"mood": {"items": {}, "subscales": {"total": pre}}},
                            "post": {
                                "mood": {"items": {}, "subscales": {"total": post}},
                                "alliance": {"items": {}, "subscales": {"total": 20 + (condition == "cbt")}},
                            },
                        },
                    }
                )
    return docs


def test_change_scores_and_the_tuned_contrast_use_the_profile_as_unit():
    rng = np.random.default_rng(0)
    docs = transcripts(rng, {"instruct": -1.0, "cbt": -4.0})
    table = outcome_table(docs, {m: MEASURES[m] for m in ("mood", "alliance")})
    result = outcomes(table)["measures"]
    mood = result["mood.total"]
    assert mood["kind"] == "change (post − pre)" and mood["better"] == "lower"
    assert mood["by_model"]["m"]["cbt"]["n_units"] == 10
    assert mood["by_model"]["m"]["cbt"]["mean"] == pytest.approx(-4.0, abs=0.8)
    contrast = mood["contrasts"]["cbt_vs_instruct"]["m"]
    assert contrast["n_units"] == 10 and contrast["estimate"] == pytest.approx(-3.0, abs=0.8) and contrast["p"] < 0.001
    alliance = result["alliance.total"]
    assert alliance["kind"] == "after the session" and alliance["by_model"]["m"]["cbt"]["mean"] == 21.0


def test_a_missing_answer_is_an_error_naming_the_transcript_and_a_lost_session_is_left_out():
    rng = np.random.default_rng(1)
    docs = transcripts(rng, {"instruct": 0.0, "cbt": -1.0}, n_profiles=2, seeds=(1,))
    lost = {**docs[0], "failure": "patient: timeout", "measures": None}
    assert len(outcome_table([lost, *docs[1:]], {"mood": MEASURES["mood"]})) == len(docs) - 1
    del docs[1]["measures"]["pre"]
    with pytest.raises(ValueError, match="m/cbt/seed1/eval-000: no pre answer for mood.total"):
        outcome_table(docs, {"mood": MEASURES["mood"]})


def test_no_self_reports_is_a_stated_reason():
    assert outcomes(outcome_table([], MEASURES)) == {
        "ran": False,
        "reason": "no simulated self-reports (simulation.measures is empty)",
    }


def test_the_estimate_counts_the_self_report_calls():
    from cbtflow.config import validate_config
    from cbtflow.estimate import plan

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["simulation"]["measures"] = ["mood", "alliance"]
    validate_config(config)
    rows = {r["role"]: r for r in plan(config) if r["role"].startswith("patient ")}
    transcripts_planned = len(config["models"]) * len(config["conditions"]) * len(config["seeds"]) * 3
    assert set(rows) == {"patient mood pre", "patient mood post", "patient alliance post"}
    assert rows["patient mood pre"]["calls"] == transcripts_planned * 9
    assert rows["patient alliance post"]["calls"] == transcripts_planned * 6
    assert rows["patient mood post"]["prompt_tokens"] > rows["patient mood pre"]["prompt_tokens"]
