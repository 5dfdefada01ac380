"""Courses at evaluation: memory between sessions, the patient's state, course items that
apply only later, and the course analysis checked against statsmodels and scipy."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats as sps

from cbtflow.dialogue import THERAPIST, Party, view
from cbtflow.instrument import course_items_at, load_rubric
from cbtflow.judge.kinds import JudgeJob
from cbtflow.judge.kinds.lexicon import LexiconScorer, load_lexicon
from cbtflow.judge.run import _score_document
from cbtflow.judge.scores import scores_table
from cbtflow.llm import Endpoint
from cbtflow.simulate import course
from cbtflow.stats import analyse
from cbtflow.stats.course import course_means, trajectory_fit

ROOT = Path(__file__).resolve().parents[1]
PROFILE = {"id": "eval-000", "hash": "ab12cd34ef", "triggers": ["weekends alone", "job rejection emails"]}
PATIENT_TEMPLATE = ROOT / "resources/prompts/patient_system.j2"
EP = Endpoint("local/fake")


def _profile(**extra):
    base = {
        "name": "Maria", "age_band": "25-34", "culture": "Polish", "gender": "woman", "occupation": "nurse",
        "living_situation": "lives alone", "phq9_band": "moderate", "presenting_problem": "a recent breakup",
        "attitude": "hopeful", "risk_level": "none",
        "conceptualisation": {"automatic_thoughts": ["I will always be alone"], "core_belief": "I am unlovable",
                              "emotions": ["sad"], "safety_behaviours": ["staying in bed"]},
    }  # fmt: skip
    return {**base, **PROFILE, **extra}


SESSION_ONE = {
    "profile_id": "eval-000",
    "turns": [
        {"role": "therapist", "text": "Welcome. What would you like to focus on today?"},
        {"role": "patient", "text": "My weekends are empty."},
        {"role": "therapist", "text": "Before we meet again, could you try keeping an activity diary each evening?"},
    ],
}


def test_the_adherence_trait_and_the_week_are_seeded_and_reproducible():
    trait = course.adherence_trait(PROFILE)
    assert 0.2 <= trait <= 0.9 and trait == course.adherence_trait(dict(PROFILE))
    assert course.adherence_trait({**PROFILE, "hash": "99999999"}) != trait, "the trait belongs to the profile"
    first = course.next_state(PROFILE, SESSION_ONE, 2, seed=1)
    assert first == course.next_state(PROFILE, SESSION_ONE, 2, seed=1), "same seed, same week"
    assert first.agreed.startswith("Before we meet again") and first.adherence == trait
    # Across many seeds the homework is done at the trait's rate (a Bernoulli draw from it).
    done = [course.next_state(PROFILE, SESSION_ONE, 2, seed=s).homework_done for s in range(600)]
    assert abs(np.mean(done) - trait) < 0.07
    events = {course.next_state(PROFILE, SESSION_ONE, 2, seed=s).life_event for s in range(60)}
    assert events == {None, *PROFILE["triggers"]}, "life events come from the profile's own triggers"
    nothing_agreed = course.next_state(PROFILE, {"turns": [{"role": "therapist", "text": "Hello."}]}, 2, seed=1)
    assert nothing_agreed.agreed is None and nothing_agreed.homework_done is None


def test_the_memory_and_the_patient_state_reach_the_next_sessions_prompts(scripted):
    calls = []

    def reply(messages, seed):
        calls.append(messages)
        return "Worked on empty weekends; she agreed to keep an activity diary; follow up the diary."

    client = scripted(reply)
    therapist = Party(EP, {"temperature": 0.0, "max_tokens": 40})
    notes = course.write_memory(
        client, therapist, "notes", [SESSION_ONE], "sys", str(ROOT / "resources/prompts/therapist_notes.j2"), [7]
    )
    asked = calls[0]
    assert asked[0] == {"role": "system", "content": "sys"} and asked[-2]["content"].startswith("Before we meet")
    assert "session notes" in asked[-1]["content"], "the therapist writes its notes from its own seat"
    sessions, states = course.course_sessions(
        [_profile()], [[SESSION_ONE]], "sys", str(PATIENT_TEMPLATE), "notes", notes, 2, seed=1
    )
    therapist_view = view(sessions[0], THERAPIST)
    assert "activity diary; follow up the diary" in therapist_view[0]["content"]
    assert "session 1" in therapist_view[0]["content"]
    assert "This is session 2 of your therapy" in sessions[0].patient_system
    assert states[0].agreed in sessions[0].patient_system
    # transcript memory: the earlier turns come back as messages, within the context budget.
    sessions, _ = course.course_sessions(
        [_profile()], [[SESSION_ONE]], "sys", str(PATIENT_TEMPLATE), "transcript", [None], 2, seed=1
    )
    full = view(sessions[0], THERAPIST)
    assert [m["content"] for m in full][2] == SESSION_ONE["turns"][0]["text"]
    assert full[-1]["content"].endswith("arrived for the session.]"), "then today's session opens"
    assert len(view(sessions[0], THERAPIST, max_context_tokens=40)) < len(full), "oldest dropped first"
    # none: the therapist starts cold; the patient still knows its week.
    cold, _ = course.course_sessions(
        [_profile()], [[SESSION_ONE]], "sys", str(PATIENT_TEMPLATE), "none", [None], 2, seed=1
    )
    assert cold[0].therapist_system == "sys" and "session 2" in cold[0].patient_system


def _lexicon_job():
    rubric = load_rubric(ROOT / "resources/ctrs/ctrs.yaml", "ctrs-modified")
    lexicon = load_lexicon(ROOT / "resources/ctrs/lexicon.yaml")
    judge = {"name": "lexicon", "kind": "lexicon", "repeats": 1}
    return JudgeJob(None, judge, rubric, {}, {"lexicon": lexicon}, None)


def _transcript(session, opening):
    doc = {
        "kind": "transcript", "model": "m", "condition": "cbt", "seed": 1, "profile_id": "eval-000",
        "risk_level": "none", "n_tokens": 30,
        "turns": [{"role": "therapist", "text": opening}, {"role": "patient", "text": "Okay."}],
    }  # fmt: skip
    return {**doc, "session": session} if session > 1 else doc


def test_course_items_are_not_applicable_at_first_stay_out_of_totals_and_are_counted():
    job = _lexicon_job()
    rubric = job.rubric
    assert [i["id"] for i in rubric["course_items"]] == ["homework_review", "bridging"]
    assert len(rubric["items"]) == 11 and course_items_at(rubric, 1) == ([], ["homework_review", "bridging"])
    opening = "Last time we talked about your weekends. How did the activity diary go? Did you manage to keep it?"
    scorer = LexiconScorer(job)
    first = _score_document(scorer, _transcript(1, opening), "/tmp/x.json", seed=1)
    later = _score_document(scorer, _transcript(2, opening), "/tmp/y.json", seed=1)
    assert first["not_applicable"] == ["homework_review", "bridging"] and first["course_items"] == {}
    assert later["not_applicable"] == [] and set(later["course_items"]) == {"homework_review", "bridging"}
    assert later["course_items"]["homework_review"]["score"] > 0 and later["course_items"]["bridging"]["score"] > 0
    core = sum(v["score"] for v in later["items"].values())
    assert later["total"] == pytest.approx(core) == pytest.approx(first["total"]), "course items never in the total"
    assert later["max_total"] == 66
    table = scores_table([first, later]).to_pandas()
    assert set(table.loc[table["session"] == 1, "item"]) == {*rubric_ids(rubric), "total", "percent"}
    assert table.groupby("session")["not_applicable"].first().to_dict() == {1: 2, 2: 0}
    assert not ((table["session"] == 1) & table["item"].isin(["homework_review", "bridging"])).any(), "never 0"


def rubric_ids(rubric):
    return [i["id"] for i in rubric["items"]]


def _course_docs(rng, n_profiles=6, seeds=(1, 2), sessions=(1, 2, 3), effect=(1.0, 2.0, 3.0)):
    """Score documents of courses: a patient level, a per-run shift, a session trend and noise."""
    docs = []
    patient = {p: rng.normal(30, 4) for p in range(n_profiles)}
    run = {s: rng.normal(0, 1) for s in seeds}
    for p in range(n_profiles):
        for s in seeds:
            for k, n in enumerate(sessions):
                for condition in ("instruct", "cbt"):
                    tuned = condition == "cbt"
                    total = patient[p] + n + (effect[k] + run[s] if tuned else 0) + rng.normal(0, 1.5)
                    doc = {
                        "status": "scored", "judge": "j", "heuristic": False, "model": "m", "condition": condition,
                        "seed": s, "profile_id": f"p{p}", "items": {"agenda": {"score": 3.0}},
                        "total": float(total), "percent": float(total) / 0.66,
                        "transcript_sha256": f"{condition}{p}{s}{n}",
                        "not_applicable": [] if n > 1 else ["homework_review"],
                    }  # fmt: skip
                    if n > 1:
                        doc["session"] = n
                        doc["course_items"] = {"homework_review": {"score": float(rng.integers(0, 7))}}
                    docs.append(doc)
    return docs


def test_the_course_analysis_agrees_with_statsmodels_and_scipy_on_a_hand_built_table():
    rng = np.random.default_rng(5)
    docs = _course_docs(rng)
    table = scores_table(docs)
    frame = table.to_pandas()
    result = analyse(table)["judges"]["j"]
    section = result["course"]
    totals = frame[frame["item"] == "total"]
    # Score by session: the mean over profiles of profile means (seeds averaged), directly.
    for n in (1, 2, 3):
        cell = totals[(totals["session"] == n) & (totals["condition"] == "cbt")].groupby("profile")["score"].mean()
        assert section["by_session"]["m"]["cbt"][str(n)]["mean"] == pytest.approx(cell.mean())
    # The course primary is the headline on course means (the mean over each course's sessions).
    means = course_means(totals)
    wide = means.pivot_table(index=["profile", "seed"], columns="condition", values="score")
    assert result["primary"]["cbt_vs_instruct"]["m"]["estimate"] == pytest.approx(
        (wide["cbt"] - wide["instruct"]).mean()
    )
    assert set(means["n_sessions"]) == {3}
    # The trajectory model's session effects equal statsmodels' REML fixed effects on the same differences.
    d = totals.pivot_table(index=["profile", "seed", "session"], columns="condition", values="score")
    d = (d["cbt"] - d["instruct"]).rename("d").reset_index()
    data = d.assign(one=1, course=d["profile"] + "|" + d["seed"].astype(str), seed=d["seed"].astype(str))
    direct = smf.mixedlm(
        "d ~ 0 + C(session)", data, groups="one", re_formula="0",
        vc_formula={"profile": "0 + C(profile)", "adapter_run": "0 + C(seed)", "course": "0 + C(course)"},
    ).fit(reml=True)  # fmt: skip
    fit = section["trajectory"]["m"]
    assert fit["ran"]
    for n in (1, 2, 3):
        assert fit["effect_by_session"][str(n)]["estimate"] == pytest.approx(
            direct.fe_params[f"C(session)[{n}]"], abs=1e-4
        )
    assert fit["mean_over_sessions"]["estimate"] == pytest.approx(direct.fe_params.mean(), abs=1e-4)
    slope = sps.linregress([1, 2, 3], direct.fe_params.to_numpy()).slope
    assert fit["trend_per_session"]["estimate"] == pytest.approx(slope, abs=1e-4)
    assert 0 < fit["mean_over_sessions"]["df"] < 20, "small-sample df, never z"
    # One seed: each session's effect is the paired t on profile means, as scipy computes it.
    one = analyse(scores_table(_course_docs(np.random.default_rng(2), seeds=(1,))))["judges"]["j"]["course"]
    rows = scores_table(_course_docs(np.random.default_rng(2), seeds=(1,))).to_pandas()
    rows = rows[(rows["item"] == "total") & (rows["session"] == 2)].pivot_table(
        index="profile", columns="condition", values="score"
    )
    expected = sps.ttest_rel(rows["cbt"], rows["instruct"])
    assert one["effect_by_session"]["2"]["m"]["p"] == pytest.approx(expected.pvalue)
    # Course items: scored only where they apply, counted where they do not.
    items = section["course_items"]
    assert items["not_applicable_by_session"] == {"1": 24, "2": 0, "3": 0}
    assert items["scored_by_session"] == {"2": 24, "3": 24} and "homework_review" in items["by_item"]


def test_trajectory_fit_refuses_a_table_it_cannot_fit():
    frame = pd.DataFrame({"profile": ["a", "b"], "seed": [1, 1], "session": [1, 2], "d": [1.0, 2.0]})
    assert trajectory_fit(frame)["ran"] is False


def test_one_session_tables_have_no_course_section_and_the_same_headline():
    rng = np.random.default_rng(3)
    docs = [d for d in _course_docs(rng) if "session" not in d]
    result = analyse(scores_table(docs))["judges"]["j"]
    assert result["course"]["ran"] is False
    frame = scores_table(docs).to_pandas()
    assert set(frame["session"]) == {1}


def test_continuity_detector_reads_back_references_and_homework_words():
    agreed = "Before we meet again, could you try keeping an activity diary each evening?"
    hit = course.continuity(
        agreed, [{"role": "therapist", "text": "Last time you planned a diary. How did the activity diary go?"}]
    )
    miss = course.continuity(agreed, [{"role": "therapist", "text": "Hello, what brings you here?"}])
    assert hit["refers_back"] and hit["refers_to_homework"] and "diary" in hit["homework_words_reused"]
    assert not miss["refers_back"] and not miss["refers_to_homework"]
    assert "heuristic" in hit["detector"]


def test_an_llm_judge_scores_the_course_items_only_where_they_apply(scripted, tmp_path):
    import json

    from fakes import run_judge

    client = scripted(lambda m, s: json.dumps({"score": 3, "justification": "Therapist: 'Last time'"}))
    judge = {"name": "api", "kind": "llm", "mode": "per_item", "endpoint": {"model": "gemini/x"}}
    rubric = load_rubric(ROOT / "resources/ctrs/ctrs.yaml", "ctrs-modified")
    templates = {n: str(ROOT / f"resources/prompts/{n}.j2") for n in ("judge_item", "judge_all", "judge_item_json")}
    first, later = _transcript(1, "Hello."), _transcript(2, "Last time we spoke about your diary.")
    docs = run_judge(client, [first, later], [str(tmp_path / "a.json"), str(tmp_path / "b.json")], judge, rubric,
                     templates, None, seed=1)  # fmt: skip
    assert len(client.calls) == 11 + 13, "the course items are asked only at session 2"
    asked = [c[0]["content"] for c in client.calls]
    assert sum(rubric["course_items"][0]["question"] in a for a in asked) == 1
    by_session = {d.get("session", 1): d for d in docs}
    assert by_session[1]["not_applicable"] == ["homework_review", "bridging"] and by_session[1]["course_items"] == {}
    assert {k: v["score"] for k, v in by_session[2]["course_items"].items()} == {"homework_review": 3, "bridging": 3}
    assert by_session[2]["total"] == by_session[1]["total"] == 33
