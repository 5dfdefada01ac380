import pytest

from cbtflow.quality import check, parse_transcript


def turns(*pairs):
    return [{"role": r, "text": t} for r, t in pairs]


GOOD = turns(("therapist", "Hello, how has your week been?"), ("patient", "Hard."),
             ("therapist", "Let's set an agenda."), ("patient", "Okay."))


@pytest.mark.parametrize("bad, reason", [
    (turns(("therapist", "Hi."), ("therapist", "Still me.")), "missing_speaker"),
    (turns(("therapist", "Hi.")), "missing_speaker"),
    (GOOD[:2], "too_few_turns"),
    (turns(("patient", "Hi."), ("therapist", "Hello."), ("patient", "Yes."), ("therapist", "Ok.")), "therapist_does_not_open"),
    (GOOD[:2] + turns(("patient", "Again."), ("therapist", "Fine.")), "no_alternation"),
    (GOOD[:3] + turns(("patient", "  ")), "empty_turn"),
    (GOOD[:3] + turns(("patient", "As an AI language model I cannot feel.")), "meta_text"),
    (GOOD[:3] + turns(("patient", "(sighs) I guess.")), "meta_text"),
    (GOOD[:3] + turns(("patient", "Omar said the same.")), "profile_leak"),
    (GOOD[:3] + turns(("patient", "I think the worst part is that")), "truncated_ending"),
])
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
