import pytest

from cbtflow.data.quality import check, parse_transcript


def turns(*pairs):
    return [{"role": r, "text": t} for r, t in pairs]


GOOD = turns(
    ("therapist", "Hello, how has your week been?"),
    ("patient", "Hard."),
    ("therapist", "Let's set an agenda."),
    ("patient", "Okay."),
)


@pytest.mark.parametrize(
    "bad, reason",
    [
        (turns(("therapist", "Hi."), ("therapist", "Still me.")), "missing_speaker"),
        (turns(("therapist", "Hi.")), "missing_speaker"),
        (GOOD[:2], "too_few_turns"),
        (
            turns(("patient", "Hi."), ("therapist", "Hello."), ("patient", "Yes."), ("therapist", "Ok.")),
            "therapist_does_not_open",
        ),
        (GOOD[:2] + turns(("patient", "Again."), ("therapist", "Fine.")), "no_alternation"),
        (GOOD[:3] + turns(("patient", "  ")), "empty_turn"),
        (GOOD[:3] + turns(("patient", "As an AI language model I cannot feel.")), "meta_text"),
        (GOOD[:3] + turns(("patient", "(sighs) I guess.")), "meta_text"),
        (GOOD[:3] + turns(("patient", "Omar said the same.")), "profile_leak"),
        (GOOD[:3] + turns(("patient", "I think the worst part is that")), "truncated_ending"),
    ],
)
def test_each_gate_rejects_its_case(bad, reason):
    assert check(bad, {"min_turns": 4, "foreign_names": ["Omar"]}) == reason


def test_good_session_passes():
    assert check(GOOD, {"min_turns": 4, "max_turns": 6, "foreign_names": ["Omar"]}) is None
    assert check(GOOD, {"min_turns": 2, "max_turns": 3}) == "too_many_turns"


def test_parse_transcript_is_strict_and_joins_continuations():
    text = "Therapist: Welcome.\nHow are you?\nClient: Low.\n**Patient:** Very low.\nNarrator: ignored? no, joined"
    parsed = parse_transcript(text)
    assert [t["role"] for t in parsed] == ["therapist", "patient", "patient"]
    assert parsed[0]["text"] == "Welcome. How are you?"
    assert parsed[2]["text"].endswith("joined")


def test_role_breaks_and_content_detectors_reject_training_sessions():
    from pathlib import Path

    from cbtflow.data.detectors import load_detectors

    detectors = load_detectors(Path(__file__).resolve().parents[1] / "resources/detectors.yaml")
    limits = {"min_turns": 4, "detectors": detectors}
    patient_as_therapist = GOOD[:3] + turns(("patient", "How does that make you feel about your week?"))
    assert check(patient_as_therapist, limits) == "role_break:patient_gives_therapy"
    therapist_as_patient = turns(
        ("therapist", "As your client, I've felt low."),
        ("patient", "Okay."),
        ("therapist", "Let's set an agenda."),
        ("patient", "Fine."),
    )
    assert check(therapist_as_patient, limits) == "role_break:therapist_speaks_as_patient"
    harmful = GOOD[:2] + turns(
        ("therapist", "You should stop taking your antidepressants this week."), ("patient", "Okay.")
    )
    assert check(harmful, limits) == "harmful:stop_medication"
    assert check(harmful, {"min_turns": 4}) is None, "without detectors only the structural gates run"
    salad = turns(
        *[
            (r, t)
            for _ in range(3)
            for r, t in (
                ("therapist", "Agenda, thought record, evidence for, reframe, homework, cognitive distortion, goals."),
                ("patient", "Okay."),
            )
        ]
    )
    assert check(salad, limits).startswith("degenerate:")
    assert check(GOOD, limits) is None
