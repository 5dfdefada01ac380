"""The judge card: its statistics against scipy, every perturbation by content, a scripted
judge whose card shows exactly what it reads, bad reference sets named, and the report's
first line when the primary judge's card fails."""

import json

import numpy as np
import pytest
from scipy import stats as sps

from cbtflow.config import validate_config, with_schema_defaults
from cbtflow.instrument import item_ids, load_rubric
from cbtflow.packaged import DEFAULT_RUBRIC
from cbtflow.report import build as report
from cbtflow.validation.card import auc, build_card, known_groups, residualise, spearman
from cbtflow.validation.perturb import load_perturbations, perturb
from cbtflow.validation.reference_sets import authored_sessions, load_reference_set, therapist_words

ITEMS = item_ids(load_rubric(DEFAULT_RUBRIC, "ctrs-modified"))
THRESHOLDS = with_schema_defaults({}, "validation", "thresholds")  # the documented defaults


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_is_the_mann_whitney_u_and_spearman_is_scipys(seed):
    rng = np.random.default_rng(seed)
    labels = np.array([0] * 9 + [1] * 11)
    scores = np.round(rng.normal(labels, 1.0), 0)  # rounded: ties on purpose
    u = sps.mannwhitneyu(scores[labels == 1], scores[labels == 0]).statistic
    assert auc(scores, labels) == pytest.approx(u / (11 * 9), abs=1e-12)
    ordinal = rng.integers(0, 4, size=20)
    assert spearman(scores, ordinal) == pytest.approx(sps.spearmanr(scores, ordinal).statistic, abs=1e-12)


def test_length_control_removes_what_length_explains():
    rng = np.random.default_rng(4)
    lengths = rng.uniform(50, 300, size=40)
    labels = (lengths > 175).astype(float)  # longer sessions are the better ones here
    scores = 0.1 * lengths + rng.normal(0, 0.5, size=40)  # a judge that only counts words
    slope, intercept = np.polyfit(lengths, scores, 1)
    assert residualise(scores, lengths) == pytest.approx(scores - (slope * lengths + intercept), abs=1e-9)
    result = known_groups(scores, labels, lengths, "binary", seed=0)
    assert result["judge"]["estimate"] > 0.9 and result["length_alone"]["estimate"] == 1.0
    assert abs(result["length_controlled"]["estimate"] - 0.5) < 0.25, "nothing left once length is removed"
    low, high = result["judge"]["ci95"]
    assert low <= result["judge"]["estimate"] <= high
    assert "residualised on therapist words" in result["length_controlled"]["how"]


SESSION = [
    {"role": "therapist", "text": "Welcome back. Let's set an agenda for today. How are you?"},
    {"role": "patient", "text": "Tired. I keep thinking I'm a failure."},
    {"role": "therapist", "text": "It sounds like that thought weighs on you. What evidence supports it?"},
    {"role": "patient", "text": "I missed a deadline."},
    {"role": "therapist", "text": "How is this session going for you? Is this helpful for the client you are?"},
    {"role": "patient", "text": "Yes, it is."},
    {"role": "therapist", "text": "For homework, fill in a thought record before next session. See you then."},
    {"role": "patient", "text": "Okay, I will."},
    {"role": "therapist", "text": "Good. Take care."},
    {"role": "patient", "text": "Bye."},
]


def _therapist(turns):
    return [t["text"] for t in turns if t["role"] == "therapist"]


def test_every_perturbation_by_content_on_a_fixed_transcript():
    entries = {e["name"]: e for e in load_perturbations(items=ITEMS)}
    out = {name: perturb({"turns": SESSION}, e)["turns"] for name, e in entries.items()}
    for name, turns in out.items():
        assert [t["role"] for t in turns] == [t["role"] for t in SESSION][: len(turns)], f"{name}: valid order"
        assert [t["text"] for t in turns if t["role"] == "patient"] == [
            t["text"] for t in SESSION if t["role"] == "patient"
        ][: len([t for t in turns if t["role"] == "patient"])], f"{name}: patient turns never change"
    assert _therapist(out["drop_agenda"])[0] == "Welcome back. How are you?"
    assert "How is this session going" not in " ".join(_therapist(out["drop_feedback"]))
    assert _therapist(out["generic_acknowledgements"])[1] == "Okay. Noted."
    advice = _therapist(out["advice_instead_of_questions"])
    assert not any(s.endswith("?") for s in " ".join(advice).split(". ")) and "You should stop thinking" in advice[1]
    homework = _therapist(out["drop_homework"])[3]
    assert "homework" not in homework.lower() and homework == "See you then."
    assert len(out["cut_short"]) == 4
    filler = entries["filler_padding"]["filler"]
    assert all(t.endswith(filler) for t in _therapist(out["filler_padding"]))
    assert "for the person you are" in _therapist(out["speaker_labels"])[2]
    assert [" ".join(t.split()) for t in _therapist(out["whitespace"])] == _therapist(SESSION)
    again = {name: perturb({"turns": SESSION}, e)["turns"] for name, e in entries.items()}
    assert again == out, "deterministic"


def agenda_reader(transcripts):
    """A scripted judge that reads only agenda lines: agenda 6 when a therapist turn names
    an agenda, else 0; every other item a constant 3."""
    docs = []
    for t in transcripts:
        said = " ".join(x["text"] for x in t["turns"] if x["role"] == "therapist").lower()
        items = {i: 3.0 for i in ITEMS}
        items["agenda"] = 6.0 if "agenda" in said else 0.0
        docs.append({"items": items, "total": sum(items.values())})
    return docs


def test_a_judge_that_reads_only_agenda_lines_is_sensitive_on_agenda_alone():
    perturbations = [e for e in load_perturbations(items=ITEMS) if e["name"] != "advice_instead_of_questions"]
    sets = {"authored": (authored_sessions(), "binary")}
    card = build_card("agenda-only", False, sets, perturbations, ITEMS, agenda_reader, THRESHOLDS)
    agenda = card["perturbations"]["drop_agenda"]
    assert agenda["n_sessions"] == 4 and agenda["items"]["agenda"]["mean"] == -6.0
    assert agenda["off_target_mean_abs_change"] == 0.0
    for name, effect in card["perturbations"].items():
        for item in ITEMS:
            if item != "agenda":
                assert effect["items"][item]["mean"] in (0.0, None), f"{name} moved {item}"
    assert card["verdicts"]["items_respond"]["responding"] == ["drop_agenda"]
    assert card["verdicts"]["discrimination"]["passed"], "the deficient sessions set no agenda"
    scored = [r for r in card["scores"] if r["perturbation"] is None]
    assert len(scored) == 8 and all(r["therapist_words"] > 100 for r in scored)
    labels = np.array([r["label"] for r in scored])
    assert card["reference_sets"]["authored"]["judge"]["estimate"] == auc([r["total"] for r in scored], labels)


def _write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


GOOD = {"id": "a", "label": 1, "turns": SESSION[:2]}


@pytest.mark.parametrize(
    "rows, label, message",
    [
        ([GOOD, "{not json"], "binary", ":2: not valid JSON"),
        ([GOOD, {"id": "b", "label": 0}], "binary", ':2: each line needs "id", "label" and "turns"'),
        ([GOOD, {"id": "b", "label": 3, "turns": SESSION[:2]}], "binary", ":2: a binary label is 0, 1"),
        ([GOOD, {"id": "a", "label": 0, "turns": SESSION[:2]}], "binary", ":2: id 'a' repeats line 1"),
        ([GOOD, {"id": "b", "label": 0, "turns": SESSION[:1]}], "binary", ":2: a session needs turns from both"),
        ([GOOD, {"id": "b", "label": "x", "turns": SESSION[:2]}], "ordinal", ":2: an ordinal label is a finite"),
        ([GOOD, {"id": "b", "label": 1, "turns": SESSION[:2]}], "binary", "needs sessions of both labels"),
        ([{"id": "b", "label": 0, "turns": [{"role": "x", "text": "hi"}]}], "binary", ":1: turns[0] needs"),
    ],
)
def test_a_malformed_reference_set_names_the_file_and_line(tmp_path, rows, label, message):
    path = _write(tmp_path / "set.jsonl", rows)
    with pytest.raises(ValueError, match=r".*") as err:
        load_reference_set(path, label)
    assert str(path) in str(err.value) and message in str(err.value)


def _report(path, result, cards):
    report.write_report(
        path, stats=result, primary_judge="j", figures={}, usage={}, train_logs={}, config_summary="", cards=cards
    )
    return path.read_text()


def test_a_failing_primary_card_is_the_reports_first_line(tmp_path):
    from fakes import make_scores

    from cbtflow import stats

    result = stats.analyse(make_scores(np.random.default_rng(3), models=("a",)))
    sets = {"authored": (authored_sessions(), "binary")}
    constant = lambda ts: [{"items": {i: 3.0 for i in ITEMS}, "total": 33.0} for _ in ts]  # noqa: E731
    card = build_card("j", False, sets, load_perturbations(items=ITEMS), ITEMS, constant, THRESHOLDS)
    assert not card["passed"] and not card["verdicts"]["discrimination"]["passed"]
    text = _report(tmp_path / "r.md", result, {"j": card})
    assert text.splitlines()[0].startswith("**The primary judge `j` failed its judge card (discrimination")
    assert text.index("### Judge card: what `j` measures (**FAILED**") < text.index("### Primary result")
    good = build_card("j", False, sets, load_perturbations(items=ITEMS), ITEMS, agenda_reader, THRESHOLDS)
    assert _report(tmp_path / "r2.md", result, {"j": {**good, "passed": True}}).startswith("# cbtflow report")


def test_the_authored_set_is_length_matched_pairs():
    sessions = authored_sessions()
    assert [s["label"] for s in sessions] == [1.0, 0.0] * 4
    for good, poor in zip(sessions[::2], sessions[1::2]):
        assert good["pair"] == poor["pair"] and poor["differs_in"]
        assert [t["text"] for t in good["turns"] if t["role"] == "patient"] == [
            t["text"] for t in poor["turns"] if t["role"] == "patient"
        ], "one patient per pair"
        ratio = therapist_words(poor["turns"]) / therapist_words(good["turns"])
        assert 0.8 < ratio < 1.25, "length alone cannot tell them apart"


def test_cli_judge_card_scores_a_users_ordinal_set_through_the_lexicon(tmp_path, capsys):
    import yaml
    from workspace import ROOT

    from cbtflow.cli import main

    rows = [
        {"id": f"s{i}", "label": label, "turns": s["turns"], "extra": "ignored"}
        for i, (label, s) in enumerate(zip([3, 0, 2, 1, 3, 0, 2, 1], authored_sessions()))
    ]
    path = _write(tmp_path / "mine.jsonl", rows)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["cache_dir"] = str(tmp_path / "cache")
    config["validation"] = {"reference_sets": [{"name": "mine", "path": str(path), "label": "ordinal"}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "card.json"
    assert main(["judge-card", "--judge", "lexicon", "--configfile", str(tmp_path / "c.yaml"), "-o", str(out)]) == 0
    card = json.loads(out.read_text())
    mine = card["reference_sets"]["mine"]
    assert mine["statistic"] == "Spearman" and mine["n"] == 8
    scored = [r for r in card["scores"] if r["set"] == "mine" and r["perturbation"] is None]
    assert mine["judge"]["estimate"] == pytest.approx(
        sps.spearmanr([r["total"] for r in scored], [r["label"] for r in scored]).statistic
    )
    assert "lexicon on mine (n = 8): Spearman" in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\n')
    config["validation"] = {"reference_sets": [{"name": "bad", "path": str(bad), "label": "binary"}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["judge-card", "--judge", "lexicon", "--configfile", str(tmp_path / "c.yaml"), "-o", str(out)]) == 2
    assert f"{bad}:1" in capsys.readouterr().err


def test_the_runs_own_transcripts_are_sampled_evenly_and_perturbed_through_the_judge(tmp_path):
    import yaml
    from workspace import ROOT

    from cbtflow.validate import validate_path
    from cbtflow.validation.card import run_perturbations_for, sample_transcripts

    transcripts = [
        {"model": m, "condition": c, "seed": 1, "profile_id": f"eval-{p}", "turns": SESSION}
        for m in ("a", "b")
        for c in ("cbt", "instruct")
        for p in range(3)
    ]
    picked = sample_transcripts(transcripts + [{**transcripts[0], "profile_id": "lost", "failure": "x"}], 4)
    assert [(t["model"], t["condition"]) for t in picked] == [
        ("a", "cbt"),
        ("a", "instruct"),
        ("b", "cbt"),
        ("b", "instruct"),
    ]
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["cache_dir"] = str(tmp_path / "cache")
    config["validation"] = {"run_transcripts": 2, "perturbations": ["drop_agenda", "whitespace"]}
    validate_config(config)
    result = run_perturbations_for(config, "lexicon", transcripts, str(ROOT / "resources/perturbations.yaml"), "raw")
    assert result["kind"] == "judge_run_perturbations" and len(result["transcripts"]) == 2
    assert set(result["perturbations"]) == {"drop_agenda", "whitespace"}
    assert result["perturbations"]["drop_agenda"]["n_sessions"] == 2
    assert result["perturbations"]["whitespace"]["total"]["mean"] == 0.0, "the lexicon folds whitespace"
    out = tmp_path / "lexicon.run.json"
    out.write_text(json.dumps(result))
    assert validate_path(out) == []
