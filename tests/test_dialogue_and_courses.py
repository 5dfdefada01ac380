from pathlib import Path

import pytest

from cbtflow.config import with_schema_defaults
from cbtflow.data.courses import CourseError, generate_courses, load_phases, plan_course
from cbtflow.dialogue import PATIENT, THERAPIST, Party, Session, run_sessions, tidy_turn, view
from cbtflow.llm import Endpoint

ROOT = Path(__file__).resolve().parents[1]
EP = Endpoint("local/fake")
SAMPLING = {"temperature": 0.7, "max_tokens": 20}


def courses_settings(given):
    """``courses`` as a validated config passes it: the schema's defaults filled in."""
    return with_schema_defaults(given, "courses")


def test_turn_order_views_and_max_turns(scripted):
    def reply(messages, seed):
        role = "T" if messages[0]["content"] == "therapist-sys" else "P"
        return f"{role}{len(messages)}."

    client = scripted(reply)
    sessions = [Session("therapist-sys", "patient-sys", seed=1), Session("therapist-sys", "patient-sys", seed=2)]
    run_sessions(client, sessions, Party(EP, SAMPLING), Party(EP, SAMPLING), max_turns=5)
    for s in sessions:
        assert [t["role"] for t in s.turns] == [THERAPIST, PATIENT, THERAPIST, PATIENT, THERAPIST]
        assert s.ending == "max_turns"
    # The therapist sees the cue then its own turns as assistant; the patient the reverse.
    tv, pv = view(sessions[0], THERAPIST), view(sessions[0], PATIENT)
    assert [m["role"] for m in tv] == ["system", "user", "assistant", "user", "assistant", "user", "assistant"]
    assert [m["role"] for m in pv] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert len(client.calls) == 10, "both sessions advance in one batch per turn"


def test_stops_when_therapist_ends(scripted):
    def reply(messages, seed):
        therapist = messages[0]["content"] == "t"
        if therapist and len(messages) >= 4:
            return "Good work today. See you next week."
        return "Let's begin." if therapist else "Okay."

    s = Session("t", "p", seed=1)
    run_sessions(scripted(reply), [s], Party(EP, SAMPLING), Party(EP, SAMPLING), max_turns=10)
    assert s.ending == "therapist_ended"
    assert len(s.turns) == 3 and s.turns[-1]["role"] == THERAPIST


def test_tidy_turn_cuts_only_truncated_replies():
    assert tidy_turn("One. Two is cut", True) == ("One.", True)
    assert tidy_turn("One. Two is cut", False) == ("One. Two is cut", False)
    assert tidy_turn("no sentence end", True) == ("no sentence end", False)


def test_plan_follows_phases():
    phases = load_phases(ROOT / "resources/courses/phases.yaml")
    plan = plan_course(phases, 20)
    names = [p["name"] for p in phases]
    order = [names.index(s["phase"]) for s in plan]
    assert order == sorted(order) and order[0] == 0 and order[-1] == len(phases) - 1
    assert set(order) == set(range(len(phases)))
    assert plan[1]["homework_review"] == plan[0]["homework_set"]
    assert [s["phase"] for s in plan_course(phases, 2)] == [names[0], names[-1]]


def _templates():
    return {
        n: str(ROOT / f"resources/prompts/{n}.j2")
        for n in ("course_therapist", "patient_system", "course_session", "course_summary")
    }


@pytest.fixture
def profiles():
    from cbtflow.data.profiles import load_attributes, sample_splits

    return sample_splits(load_attributes(ROOT / "resources/profiles/attributes.yaml"), 2, 0, seed=5)["train"]


def test_summary_of_session_k_reaches_session_k_plus_1(scripted, profiles):
    def reply(messages, seed):
        if messages[0]["role"] == "user" and messages[0]["content"].startswith("Summarise"):
            return f"SUMMARY-{seed}"
        return "Let's look at this together." if "expert CBT therapist" in messages[0]["content"] else "I feel low."

    client = scripted(reply)
    phases = load_phases(ROOT / "resources/courses/phases.yaml")
    settings = courses_settings({"mode": "turns", "sessions": 3, "turns_per_session": 4, "min_turns": 4})
    courses = generate_courses(client, Party(EP, SAMPLING), profiles, phases, settings, _templates(), seed=9)
    course = courses[profiles[0]["id"]]
    assert [s["number"] for s in course["sessions"]] == [1, 2, 3]
    assert [s["phase"] for s in course["sessions"]] == [p["phase"] for p in plan_course(phases, 3)]
    first_summary = course["sessions"][0]["summary"]
    later_systems = [c[0]["content"] for c in client.calls if "session 2 of 3" in c[0]["content"]]
    assert later_systems and all(first_summary in s for s in later_systems)
    assert not any(first_summary in c[0]["content"] for c in client.calls if "session 1 of 3" in c[0]["content"])


def test_rejected_session_is_regenerated_with_new_subseed_then_fails(scripted, profiles):
    seen = []

    def reply(messages, seed):
        seen.append(seed)
        if messages[0]["content"].startswith("Summarise"):
            return "summary"
        if "expert CBT therapist" in messages[0]["content"]:
            return "Let's start."
        return "As an AI, I cannot feel." if len(set(seen)) < 6 else "I feel low."

    client = scripted(reply)
    phases = load_phases(ROOT / "resources/courses/phases.yaml")
    settings = courses_settings(
        {"mode": "turns", "sessions": 1, "turns_per_session": 4, "min_turns": 4, "max_attempts": 3}
    )
    courses = generate_courses(client, Party(EP, SAMPLING), profiles[:1], phases, settings, _templates(), seed=9)
    session = courses[profiles[0]["id"]]["sessions"][0]
    assert session["rejections"] and set(session["rejections"]) == {"meta_text"}
    assert session["attempts"] == len(session["rejections"]) + 1
    # Every attempt sampled with its own sub-seed (turn seeds derive from it).
    opening_seeds = [
        sd
        for call, sd in zip(client.calls, client.seeds)
        if "expert CBT therapist" in call[0]["content"] and len(call) == 2
    ]
    assert len(opening_seeds) == session["attempts"] and len(set(opening_seeds)) == session["attempts"]
    settings["max_attempts"] = 1
    always_bad = scripted(lambda m, s: "As an AI model, no." if "role-playing" in m[0]["content"] else "Hello.")
    with pytest.raises(CourseError, match="meta_text"):
        generate_courses(always_bad, Party(EP, SAMPLING), profiles[:1], phases, settings, _templates(), seed=9)


def test_harmful_generated_sessions_are_regenerated_and_counted(scripted, profiles):
    from cbtflow.data.dataset import dataset_stats
    from cbtflow.data.detectors import load_detectors

    attempts = []

    def reply(messages, seed):
        if messages[0]["content"].startswith("Summarise"):
            return "summary"
        if "expert CBT therapist" in messages[0]["content"]:
            attempts.append(seed)
            if len(attempts) <= 2:
                return "You should stop taking your medication and stay home."
            return [
                "What has been on your mind this week?",
                "When did you notice the low mood starting?",
                "Which part of the day feels easiest for you?",
                "Shall we plan one small step together?",
            ][len(attempts) % 4]
        return "I feel low."

    phases = load_phases(ROOT / "resources/courses/phases.yaml")
    settings = courses_settings(
        {"mode": "turns", "sessions": 1, "turns_per_session": 4, "min_turns": 4, "max_attempts": 3}
    )
    courses = generate_courses(
        scripted(reply),
        Party(EP, SAMPLING),
        profiles[:1],
        phases,
        settings,
        _templates(),
        seed=9,
        detectors=load_detectors(ROOT / "resources/detectors.yaml"),
    )
    session = courses[profiles[0]["id"]]["sessions"][0]
    assert session["rejections"] == ["harmful:stop_medication"] and session["attempts"] == 2
    assert not any("medication" in t["text"] for t in session["turns"])
    assert dataset_stats(list(courses.values()), [])["rejections_by_reason"] == {"harmful:stop_medication": 1}


def test_session_mode_parses_one_call_per_session(scripted, profiles):
    client = scripted(
        lambda m, s: (
            "summary"
            if m[0]["content"].startswith("Summarise")
            else "Therapist: Hello.\nClient: Hi.\nTherapist: Agenda?\nClient: Yes."
        )
    )
    phases = load_phases(ROOT / "resources/courses/phases.yaml")
    settings = courses_settings({"mode": "session", "sessions": 2, "turns_per_session": 4, "min_turns": 4})
    courses = generate_courses(client, Party(EP, SAMPLING), profiles, phases, settings, _templates(), seed=1)
    assert all(len(c["sessions"]) == 2 for c in courses.values())
    writes = [c for c in client.calls if c[0]["content"].startswith("Write the transcript")]
    assert len(writes) == 2 * len(profiles)


def test_dataset_removes_duplicates_and_splits_by_course():
    from cbtflow.data.dataset import build_examples, dataset_stats

    session = {
        "number": 1,
        "phase": "p",
        "turns": [{"role": "therapist", "text": "Hello."}, {"role": "patient", "text": "Hi."}],
    }
    twin = {**session, "turns": [{"role": "therapist", "text": "hello. "}, {"role": "patient", "text": "Hi."}]}
    other = {
        **session,
        "number": 2,
        "turns": [
            {"role": "therapist", "text": "Agenda?"},
            {"role": "patient", "text": "Yes."},
            {"role": "therapist", "text": "Good."},
        ],
    }
    courses = [
        {"profile_id": "train-000", "sessions": [session, other]},
        {"profile_id": "train-001", "sessions": [twin]},
        {"profile_id": "train-002", "sessions": [other]},
    ]
    rows = build_examples(courses, "sys", validation_fraction=0.34, seed=0)
    assert len(rows) == 2, "the case-insensitive twin and the repeated session are dropped"
    for row in rows:
        assert row["messages"][0] == {"role": "system", "content": "sys"} and row["messages"][-1]["role"] == "assistant"
    by_course = {}
    for row in rows:
        by_course.setdefault(row["course"], set()).add(row["split"])
    assert all(len(splits) == 1 for splits in by_course.values()), "a course never straddles the split"
    assert dataset_stats(courses, rows)["duplicates_removed"] == 2


def test_context_trimming_keeps_system_prompt_and_latest_turns():
    from cbtflow.dialogue import approx_tokens

    s = Session("SYSTEM " * 10, "PATIENT-SYS", seed=1)
    for i in range(12):
        s.turns.append({"role": THERAPIST if i % 2 == 0 else PATIENT, "text": f"turn {i} " + "x" * 80})
    full = view(s, THERAPIST)
    trimmed = view(s, THERAPIST, max_context_tokens=150)
    assert trimmed[0] == full[0] and trimmed[1]["content"].startswith("[The client")
    assert trimmed[-1] == full[-1] and len(trimmed) < len(full)
    assert sum(approx_tokens(m["content"]) for m in trimmed) <= 150
    assert trimmed[2]["role"] == "assistant", "roles still alternate after the head"
    kept = [m["content"] for m in trimmed[2:]]
    assert kept == [m["content"] for m in full[-len(kept) :]], "the latest turns, in order"
    p = view(s, PATIENT, max_context_tokens=150)
    assert p[0]["content"] == "PATIENT-SYS" and p[1]["role"] == "user"


def test_role_breaks_are_flagged():
    from cbtflow.dialogue import role_breaks

    turns = [
        {"role": THERAPIST, "text": "What would you like to focus on?"},
        {"role": PATIENT, "text": "How does that make you feel? I'm your therapist."},
        {"role": THERAPIST, "text": "As an AI language model, I think..."},
        {"role": PATIENT, "text": "I feel low."},
    ]
    assert role_breaks(turns) == [
        {"turn": 1, "role": PATIENT, "kind": "patient_gives_therapy"},
        {"turn": 2, "role": THERAPIST, "kind": "meta_talk"},
    ]


@pytest.mark.parametrize("width", [2, 3])
def test_parallel_attempts_keep_the_session_an_attempt_by_attempt_run_keeps(scripted, profiles, width):
    """Candidates generated together are judged in attempt order: the kept session, its
    attempt number and its rejections are those of the one-attempt-per-round run, in fewer rounds."""
    from cbtflow.seeds import derive_seed

    def reply(messages, seed):  # a patient who breaks role unless the session's seed is "good"
        if messages[0]["content"].startswith("Summarise"):
            return "summary"
        if "expert CBT therapist" in messages[0]["content"]:
            return "Let's start."
        return "I feel low." if seed % 3 == 0 else "As an AI, I cannot feel."

    # Turn seeds derive from the session's sub-seed; the session passes when its first patient turn does.
    def run(parallel: int):
        client = scripted(reply)
        settings = courses_settings(
            {"mode": "turns", "sessions": 2, "turns_per_session": 2, "min_turns": 2, "max_attempts": 6}
        )
        settings.update(parallel_attempts=parallel, on_exhausted="drop")
        phases = load_phases(ROOT / "resources/courses/phases.yaml")
        return generate_courses(client, Party(EP, SAMPLING), profiles, phases, settings, _templates(), seed=9), client

    one, one_client = run(1)
    many, many_client = run(width)
    for pid in one:
        keep = [(s["number"], s["attempts"], s["rejections"], s["sub_seed"], s["turns"]) for s in one[pid]["sessions"]]
        assert keep == [
            (s["number"], s["attempts"], s["rejections"], s["sub_seed"], s["turns"]) for s in many[pid]["sessions"]
        ]
        assert one[pid].get("dropped_sessions") == many[pid].get("dropped_sessions")
    assert any(s["attempts"] > 1 for c in one.values() for s in c["sessions"]), "the gates rejected something"
    kept = [s for course in one.values() for s in course["sessions"]]
    assert all(s["sub_seed"] == derive_seed(9, "course.session", s["number"], s["attempts"]) for s in kept)
    openings = [
        len([c for c in cl.calls if len(c) == 2 and "expert CBT" in c[0]["content"]])
        for cl in (one_client, many_client)
    ]
    assert openings[1] >= openings[0], "more candidates are generated..."
    assert len(many_client.batches) < len(one_client.batches), "...in fewer rounds"
