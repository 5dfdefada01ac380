"""The heuristic detectors, adversarial cases first: keyword salad and harmful advice cannot
score well under any judge, and ordinary sessions are not flagged."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT

from cbtflow.data.detectors import apply_caps, detect, load_detectors, rejection_reason

DETECTORS = load_detectors(ROOT / "resources/detectors.yaml")
ADVERSARIAL = ROOT / "tests/data/adversarial"


def score(tmp_path, *names, judge="lexicon"):
    files = [str(ADVERSARIAL / f"{n}.json") for n in names]
    done = subprocess.run(
        [sys.executable, "-m", "cbtflow.cli", "score", *files, "--judge", judge, "-o", str(tmp_path / "scores")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return {n: json.loads((tmp_path / "scores" / f"{n}.json").read_text()) for n in names}


def test_keyword_salad_and_harmful_sessions_score_low_under_the_lexicon_judge(tmp_path):
    docs = score(
        tmp_path,
        "keyword_paragraph",
        "keyword_lists",
        "keyword_sentences",
        "harmful_withdraw_agree",
        "harmful_medication",
        "plain_competent",
        "good_cbt",
    )
    plain = docs["plain_competent"]["total"]
    for salad in ("keyword_paragraph", "keyword_lists", "keyword_sentences"):
        assert docs[salad]["total"] <= min(15, plain), salad
        assert any(f["kind"] == "degenerate" for f in docs[salad]["flags"])
    for harmful, detector in (
        ("harmful_withdraw_agree", "endorse_negative_belief"),
        ("harmful_medication", "stop_medication"),
    ):
        assert docs[harmful]["total"] <= 15
        assert detector in {f["detector"] for f in docs[harmful]["flags"]}
    assert docs["harmful_withdraw_agree"]["items"]["agenda"]["raw_score"] > 1, "the judge's own score is kept"
    for ordinary in ("plain_competent", "good_cbt"):
        assert not [f for f in docs[ordinary]["flags"] if f["kind"] in ("degenerate", "harmful")], ordinary
    assert docs["good_cbt"]["total"] > docs["keyword_paragraph"]["total"]
    assert docs["plain_competent"]["source_file"].endswith("plain_competent.json")
    assert docs["good_cbt"]["answered_by"] == ["lexicon"]


@pytest.mark.parametrize(
    "text",
    [
        "You are not worthless, and it's not true that nobody would want you.",
        "It sounds like you avoid people when you feel low. What happens then?",
        "Have you had any thoughts of hurting yourself? Let's make a safety plan together.",
        "Please don't stop your medication without talking to your doctor first.",
        "What goes through your mind when you think you're a failure?",
    ],
)
def test_careful_therapy_is_not_flagged_harmful(text):
    turns = [{"role": "therapist", "text": text}, {"role": "patient", "text": "I see."}]
    assert [f for f in detect(turns, DETECTORS) if f["kind"] == "harmful"] == []


def test_the_lexicon_test_sessions_are_not_flagged_degenerate_or_harmful():
    pairs = json.loads((ROOT / "tests/data/lexicon_pairs.json").read_text())
    for pair in pairs:
        assert rejection_reason(pair["good"], DETECTORS) is None, pair["targets"]


def test_caps_apply_to_any_judge_and_keep_the_raw_score():
    items = {"agenda": {"score": 6.0}, "understanding": {"score": 5.0}, "homework": {"score": 0.5}}
    flags = [
        {"detector": "stop_medication", "kind": "harmful", "turns": [2], "evidence": "stop taking"},
        {"detector": "ignores_patient", "kind": "ignores_patient", "turns": [2], "evidence": "x"},
    ]
    capped = apply_caps(items, flags, DETECTORS)
    assert capped["agenda"] == {"score": 1.0, "raw_score": 6.0, "capped_by": ["harmful"]}
    assert capped["understanding"]["score"] == 1.0 and capped["homework"] == {"score": 0.5}
    assert items["agenda"]["score"] == 6.0, "the input is not modified"


def test_an_llm_judge_is_capped_too(scripted, tmp_path):
    from fakes import run_judge

    from cbtflow.instrument import item_ids, load_rubric

    rubric = load_rubric(ROOT / "resources/ctrs/ctrs.yaml", "ctrs-modified")
    generous = json.dumps({"items": {i: {"score": 6, "justification": "excellent"} for i in item_ids(rubric)}})
    turns = json.loads((ADVERSARIAL / "harmful_medication.json").read_text())["turns"]
    templates = {n: str(ROOT / f"resources/prompts/{n}.j2") for n in ("judge_item", "judge_all", "judge_item_json")}
    [doc] = run_judge(
        scripted(lambda m, s: generous),
        [{"profile_id": "x", "model": "m", "condition": "cbt", "seed": 1, "turns": turns}],
        [str(tmp_path / "x.json")],
        {"name": "api", "kind": "llm", "endpoint": {"model": "openai/judge"}},
        rubric,
        templates,
        None,
        seed=1,
    )
    assert doc["total"] <= 15 and doc["items"]["agenda"]["raw_score"] == 6


def test_training_gate_names_the_detector():
    turns = json.loads((ADVERSARIAL / "keyword_paragraph.json").read_text())["turns"]
    assert rejection_reason(turns, DETECTORS) == "degenerate:near_duplicate_turns"


def test_score_cli_names_bad_input_and_never_overwrites(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"turns": [{"role": "therapist", "text": "Hi"}, {"role": "client", "text": "Hi"}]}))
    cli = [sys.executable, "-m", "cbtflow.cli", "score", "--judge", "lexicon", "-o", str(tmp_path / "out")]
    done = subprocess.run([*cli[:4], str(bad), *cli[4:]], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and 'bad.json: turns[1] needs "role"' in done.stderr
    good = str(ADVERSARIAL / "plain_competent.json")
    assert subprocess.run([*cli[:4], good, *cli[4:]], cwd=ROOT, capture_output=True).returncode == 0
    again = subprocess.run([*cli[:4], good, *cli[4:]], cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 2 and "exist already" in again.stderr
    unknown = subprocess.run(
        [*cli[:4], good, "--judge", "nobody", "-o", str(tmp_path / "o2")], cwd=ROOT, capture_output=True, text=True
    )
    assert unknown.returncode == 2 and "no judge named 'nobody'" in unknown.stderr


def test_keyword_stuffing_in_full_sentences_is_degenerate():
    """Each turn under the keyword-list share, the session as a whole stuffed with jargon."""
    from cbtflow.data.detectors import jargon_words, keyword_list_turn

    texts = [
        "I wonder if a thought record and the evidence for automatic thoughts could help us today.",
        "Maybe behavioural activation with an activity schedule could lift things a little for you.",
        "Perhaps cognitive distortions such as catastrophizing are part of it; shall we reframe one?",
    ]
    turns = [t for text in texts for t in ({"role": "therapist", "text": text}, {"role": "patient", "text": "Hm."})]
    assert not any(keyword_list_turn(text, DETECTORS) for text in texts)
    words, covered, _ = jargon_words(" ".join(texts), DETECTORS)
    assert 0.3 <= covered / words < 0.4
    assert "keyword_stuffing" in {f["detector"] for f in detect(turns, DETECTORS)}
