import json
from pathlib import Path

import pytest
from fakes import run_judge
from workspace import ROOT

from cbtflow.instrument import item_ids, load_rubric, summarise
from cbtflow.judge.kinds.lexicon import load_lexicon, score_transcript
from cbtflow.llm import Endpoint
from cbtflow.llm import items as llm_judge

RUBRIC = load_rubric(ROOT / "resources/ctrs/ctrs.yaml")
LEXICON = load_lexicon(ROOT / "resources/ctrs/lexicon.yaml")
TEMPLATES = {n: str(ROOT / f"resources/prompts/{n}.j2") for n in ("judge_item", "judge_all")}
PAIRS = json.loads((ROOT / "tests/data/lexicon_pairs.json").read_text())


def paired_transcripts(n_profiles: int) -> list[dict]:
    """Each profile under instruct (a poor session) and cbt (a good one), from the lexicon pairs."""
    return [
        {
            "profile_id": f"eval-{i:03d}",
            "model": "m",
            "condition": c,
            "seed": 1,
            "turns": PAIRS[i % len(PAIRS)]["good" if c == "cbt" else "poor"],
        }
        for i in range(n_profiles)
        for c in ("instruct", "cbt")
    ]


def test_rubric_has_the_eleven_ctrs_items_and_a_variant():
    assert item_ids(RUBRIC) == [
        "agenda",
        "feedback",
        "understanding",
        "interpersonal",
        "collaboration",
        "pacing",
        "guided_discovery",
        "focus",
        "strategy",
        "techniques",
        "homework",
    ]
    modified = load_rubric(ROOT / "resources/ctrs/ctrs.yaml", "ctrs-modified")
    assert modified["name"] == "ctrs-modified"
    assert modified["items"][-1]["question"] != RUBRIC["items"][-1]["question"]
    with pytest.raises(ValueError, match="rubric_variant"):
        load_rubric(ROOT / "resources/ctrs/ctrs.yaml", "nope")
    assert summarise(RUBRIC, dict.fromkeys(item_ids(RUBRIC), 6)) == {"total": 66, "max_total": 66, "percent": 100.0}


def test_lexicon_prefers_good_practice_on_total_and_targeted_items():
    assert len(PAIRS) >= 10
    wins_total, wins_items, n_items = 0, 0, 0
    for pair in PAIRS:
        good = score_transcript(LEXICON, pair["good"], RUBRIC)
        poor = score_transcript(LEXICON, pair["poor"], RUBRIC)
        wins_total += sum(v["score"] for v in good.values()) > sum(v["score"] for v in poor.values())
        for item in pair["targets"]:
            n_items += 1
            wins_items += good[item]["score"] > poor[item]["score"]
    assert wins_total / len(PAIRS) >= 0.9
    assert wins_items / n_items >= 0.9


def test_lexicon_is_deterministic_and_bounded():
    pair = PAIRS[0]
    a = score_transcript(LEXICON, pair["good"], RUBRIC)
    assert a == score_transcript(LEXICON, pair["good"], RUBRIC)
    assert all(0 <= v["score"] <= 6 for v in a.values())
    assert a["agenda"]["features"]["agenda_set_early"] == 1.0


def test_geval_expectation_by_hand():
    import math

    logits = [0.5, 1.0, -1.0, 2.0, 0.0, 3.0, 1.5]
    exp = [math.exp(x) for x in logits]
    probs = [e / sum(exp) for e in exp]
    expected = sum(i * p for i, p in enumerate(probs))
    assert llm_judge.geval_expectation(probs, list(range(7))) == pytest.approx(expected, abs=1e-12)
    # Unnormalised mass over the digits is renormalised, not treated as zero scores.
    assert llm_judge.geval_expectation([x * 0.3 for x in probs], list(range(7))) == pytest.approx(expected, abs=1e-12)


def _valid_json(score=4):
    return json.dumps(
        {"items": {i: {"score": score, "justification": "Therapist: 'Let's set an agenda.'"} for i in item_ids(RUBRIC)}}
    )


@pytest.mark.parametrize(
    "bad",
    [
        json.dumps({"items": {i: {"score": 3, "justification": "x"} for i in item_ids(RUBRIC)[:-1]}}),  # missing item
        _valid_json(score=7),  # out of range
        _valid_json().replace('"score": 4', '"score": 3.5', 1),  # not an integer
        "I would rate this session as fairly good overall.",  # prose
    ],
)
def test_invalid_judge_json_is_retried_then_fails_with_raw_output(scripted, tmp_path, bad):
    client = scripted(lambda m, s: bad)
    raw = tmp_path / "x.raw.txt"
    with pytest.raises(llm_judge.JudgeOutputError, match="raw output saved"):
        call = llm_judge.ApiCall(client, Endpoint("gemini/gemini-1.5-pro-002"), {"temperature": 0}, 1, 2, raw)
        llm_judge.score_api(call, RUBRIC, "Therapist: hi", TEMPLATES["judge_all"])
    assert len(client.calls) == 3
    assert "Your reply was invalid" in client.calls[1][-1]["content"]
    assert raw.read_text().count(bad) == 3


def test_retry_recovers_and_valid_json_roundtrips(scripted, tmp_path):
    replies = iter(["not json", "```json\n" + _valid_json(5) + "\n```"])
    client = scripted(lambda m, s: next(replies))
    call = llm_judge.ApiCall(
        client, Endpoint("gemini/x"), {"temperature": 0}, seed=1, retries=2, raw_path=tmp_path / "r.txt"
    )
    items = llm_judge.score_api(call, RUBRIC, "T: hi", TEMPLATES["judge_all"])
    assert {v["score"] for v in items.values()} == {5} and set(items) == set(item_ids(RUBRIC))
    assert not (tmp_path / "r.txt").exists()


def test_judge_prompt_is_blinded(scripted, tmp_path):
    transcript = {
        "kind": "transcript",
        "profile_id": "eval-000",
        "model": "secret-model-r8",
        "condition": "cbt",
        "seed": 1,
        "turns": PAIRS[0]["good"],
        "n_tokens": 50,
    }
    client = scripted(lambda m, s: _valid_json())
    judge = {"name": "api", "kind": "llm", "endpoint": {"model": "gemini/x"}}
    docs = run_judge(client, [transcript], [str(tmp_path / "o.json")], judge, RUBRIC, TEMPLATES, None, seed=1)
    prompt = json.dumps(client.calls)
    for leak in ("secret-model-r8", "cbt", "eval-000", "seed"):
        assert leak not in prompt
    assert docs[0]["model"] == "secret-model-r8" and docs[0]["total"] == 44


def test_local_judge_reads_real_token_probabilities(embedded_model):
    from cbtflow.llm import Client

    transcript = "\n".join(
        f"{'Therapist' if t['role'] == 'therapist' else 'Client'}: {t['text']}" for t in PAIRS[0]["good"]
    )
    client = Client()
    items = llm_judge.score_local(
        client, Endpoint(f"local/{embedded_model}"), RUBRIC, transcript, TEMPLATES["judge_item"]
    )
    assert set(items) == set(item_ids(RUBRIC))
    for value in items.values():
        assert 0 <= value["score"] <= 6
        assert sum(value["probs"]) == pytest.approx(1.0, abs=1e-4)
        assert value["score_token_mass"] > 0.3
    # The shared-prefix KV cache gives the same numbers as separate forward passes (at
    # float32; bfloat16 and int4 round a prompt encoded in two pieces differently).
    from cbtflow.llm import local

    fp32 = Endpoint(f"local/{embedded_model}", precision="float32")
    conv = [{"role": "user", "content": "Rate 0-6: agenda. Answer with one digit."}]
    alone = local.score_distributions(fp32, [conv], [str(i) for i in range(7)])
    batched = local.score_distributions(
        fp32,
        [conv, [{"role": "user", "content": "Rate 0-6: agenda. Answer with two digits."}]],
        [str(i) for i in range(7)],
    )
    assert batched[0]["probs"] == pytest.approx(alone[0]["probs"], abs=1e-4)


def test_per_item_mode_makes_one_call_per_item(scripted, tmp_path):
    client = scripted(lambda m, s: json.dumps({"score": 3, "justification": "Therapist: 'hello'"}))
    judge = {"name": "api", "kind": "llm", "mode": "per_item", "endpoint": {"model": "gemini/x"}}
    transcript = {"profile_id": "eval-000", "model": "m", "condition": "cbt", "seed": 1, "turns": PAIRS[0]["good"]}
    templates = {**TEMPLATES, "judge_item_json": str(ROOT / "resources/prompts/judge_item_json.j2")}
    docs = run_judge(client, [transcript], [str(tmp_path / "o.json")], judge, RUBRIC, templates, None, seed=1)
    assert len(client.calls) == 11
    for call, item in zip(client.calls, RUBRIC["items"]):
        assert item["question"] in call[0]["content"]
        assert sum(other["question"] in call[0]["content"] for other in RUBRIC["items"]) == 1
    assert docs[0]["total"] == 33 and docs[0]["mode"] == "per_item"


def _icc21(matrix):
    """ICC(2,1) from two-way ANOVA mean squares (Shrout & Fleiss), written out by hand."""
    import numpy as np

    x = np.asarray(matrix, float)
    n, k = x.shape
    grand = x.mean()
    msr = k * ((x.mean(axis=1) - grand) ** 2).sum() / (n - 1)
    msc = n * ((x.mean(axis=0) - grand) ** 2).sum() / (k - 1)
    sse = ((x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + grand) ** 2).sum()
    mse = sse / ((n - 1) * (k - 1))
    return (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)


def test_repeats_give_icc_per_item_and_total_in_the_report(scripted, tmp_path):
    import random
    import zlib

    from cbtflow import stats
    from cbtflow.judge.scores import scores_table
    from cbtflow.report import build as report

    def reply(messages, seed):
        rng = random.Random(zlib.crc32(messages[0]["content"].encode()) + seed)
        base = len(messages[0]["content"]) % 5
        return json.dumps(
            {
                "items": {
                    i: {"score": min(6, base + rng.randint(0, 1)), "justification": "quote"} for i in item_ids(RUBRIC)
                }
            }
        )

    client = scripted(reply)
    judge = {"name": "api", "kind": "llm", "repeats": 2, "endpoint": {"model": "gemini/x"}}
    transcripts = paired_transcripts(6)
    docs = run_judge(
        client, transcripts, [str(tmp_path / f"{i}.json") for i in range(12)], judge, RUBRIC, TEMPLATES, None, seed=1
    )
    assert all(len(v["repeat_scores"]) == 2 for d in docs for v in d["items"].values())
    table = scores_table(docs)
    result = stats.analyse(table)
    rel = result["judges"]["api"]["reliability_across_repeats"]
    assert set(rel) == set(item_ids(RUBRIC)) | {"total"}
    wide = (
        table.filter(table["repeat"].is_not_null() & (table["item"] == "total"))
        .to_pandas()
        .pivot_table(index=["condition", "profile"], columns="repeat", values="score")
    )
    assert rel["total"]["icc2_single"]["icc"] == pytest.approx(_icc21(wide.to_numpy()), abs=1e-9)
    report.write_report(
        tmp_path / "r.md", stats={**result}, primary_judge="api", figures={}, usage={}, train_logs={}, config_summary=""
    )
    text = (tmp_path / "r.md").read_text()
    assert "Across repeats of judge `api`" in text and "| total |" in text and "| homework |" in text


def test_structured_output_sends_the_rubric_schema():
    from cbtflow.llm.items import _item_model, response_format

    item = _item_model(0, 6)
    assert response_format(item, "json_object") == {"type": "json_object"}
    openai_form = response_format(item, "json_schema")
    schema = openai_form["json_schema"]["schema"]
    assert openai_form["type"] == "json_schema" and schema["required"] == ["score", "justification"]
    assert schema["properties"]["score"]["minimum"] == 0 and schema["properties"]["score"]["maximum"] == 6
    assert schema["properties"]["score"]["enum"] == [0, 1, 2, 3, 4, 5, 6], "grammar engines enforce enums"
    assert schema["properties"]["justification"]["maxLength"] == 600, "bounds a grammar-constrained reply"
    assert response_format(item, "json_object_schema") == {"type": "json_object", "schema": schema}


def test_a_fallback_that_answers_is_named_and_never_pooled_with_the_judge(tmp_path):
    """The configured judge fails on every call for half the transcripts and its fallback
    answers them (loopback servers, litellm's openai provider); the score documents name
    who answered and the analysis splits the judge into judge@model."""
    from fakes import serve

    from cbtflow import stats
    from cbtflow.judge.scores import scores_table
    from cbtflow.llm import Client

    reply = json.dumps({"items": {i: {"score": 4, "justification": "ok"} for i in item_ids(RUBRIC)}})
    primary_server, _ = serve([200] * 4 + [503] * 200, content=lambda request: reply)
    backup_server, _ = serve([200], content=lambda request: reply)
    try:
        judge = {
            "name": "api",
            "kind": "llm",
            "retries": 0,
            "sampling": {"temperature": 0, "num_retries": 0},
            "endpoint": {
                "model": "openai/judge-model",
                "api_base": f"http://127.0.0.1:{primary_server.server_port}/v1",
                "fallbacks": [
                    {"model": "openai/backup-judge", "api_base": f"http://127.0.0.1:{backup_server.server_port}/v1"}
                ],
            },
        }
        transcripts = paired_transcripts(4)
        docs = run_judge(
            Client(cache_dir=tmp_path),
            transcripts,
            [str(tmp_path / f"{i}.json") for i in range(8)],
            judge,
            RUBRIC,
            TEMPLATES,
            None,
            seed=1,
        )
    finally:
        primary_server.shutdown()
        backup_server.shutdown()
    answered = sorted({tuple(d["answered_by"]) for d in docs})
    assert answered == [("openai/backup-judge",), ("openai/judge-model",)]
    assert all(v["answered_by"] == d["answered_by"][0] for d in docs for v in d["items"].values())
    result = stats.analyse(scores_table(docs))
    assert result["judges_split_by_answering_model"] == {"api": ["api@openai/backup-judge", "api@openai/judge-model"]}
    assert "api" not in result["judges"] and set(result["judges"]) == {
        "api@openai/backup-judge",
        "api@openai/judge-model",
    }


def test_local_judge_low_digit_mass_is_flagged_or_fails(tmp_path):
    from cbtflow.llm import Client

    class LowMass(Client):
        def score(self, endpoint, conversations, candidates, assistant_prefix=""):
            return [{"probs": [0.01] * len(candidates), "mass": 0.07, "cached": False} for _ in conversations]

    transcript = {"profile_id": "eval-000", "model": "m", "condition": "cbt", "seed": 1, "turns": PAIRS[0]["good"]}
    judge = {"name": "tiny", "kind": "llm", "endpoint": {"model": "local/some-dir"}}
    [doc] = run_judge(LowMass(), [transcript], [str(tmp_path / "a.json")], judge, RUBRIC, TEMPLATES, None, seed=1)
    [flag] = [f for f in doc["flags"] if f["kind"] == "low_confidence"]
    assert sorted(flag["items"]) == sorted(item_ids(RUBRIC))
    assert doc["items"]["agenda"]["score_token_mass"] == 0.07 and doc["answered_by"] == ["local/some-dir"]
    from cbtflow import stats
    from cbtflow.judge.scores import scores_table

    table = scores_table([doc, {**doc, "condition": "instruct"}])
    mass = stats.analyse(table)["judges"]["tiny"]["digit_mass"]
    assert mass["mean_mass"] == pytest.approx(0.07) and mass["flagged_share"] == pytest.approx(1.0)
    with pytest.raises(llm_judge.LowMassError, match="less than 0.5 of its probability"):
        run_judge(
            LowMass(),
            [transcript],
            [str(tmp_path / "b.json")],
            {**judge, "on_low_mass": "fail"},
            RUBRIC,
            TEMPLATES,
            None,
            seed=1,
        )


def test_garbage_replies_become_failure_records_within_max_failures(tmp_path):
    """A loopback judge that answers garbage for two transcripts: with max_failures 2 they
    become failure records (reason, raw output), the analysis leaves them out and the run
    passes; with 1 the job fails; the run-wide check counts across jobs."""
    from fakes import serve

    from cbtflow.judge.run import TooManyFailures, check_failure_budgets
    from cbtflow.judge.scores import failures, scores_table
    from cbtflow.llm import Client

    good = json.dumps({"items": {i: {"score": 3, "justification": "ok"} for i in item_ids(RUBRIC)}})
    bad_profiles = {"eval-001", "eval-004"}

    def content(request):
        text = request["messages"][0]["content"]
        return "no idea, sorry" if any(f"[{p}]" in text for p in bad_profiles) else good

    transcripts = [
        {
            "profile_id": f"eval-{i:03d}",
            "model": "m",
            "condition": c,
            "seed": 1,
            "turns": [
                {"role": "therapist", "text": f"[eval-{i:03d}] Hello, how are you?"},
                {"role": "patient", "text": "Low."},
            ],
        }
        for i in range(6)
        for c in ("instruct",)
    ]
    server, _ = serve([200], content=content)
    judge = {
        "name": "api",
        "kind": "llm",
        "retries": 1,
        "max_failures": 2,
        "sampling": {"temperature": 0, "num_retries": 0},
        "endpoint": {"model": "openai/judge", "api_base": f"http://127.0.0.1:{server.server_port}/v1"},
    }
    paths = [str(tmp_path / f"{t['profile_id']}.json") for t in transcripts]
    try:
        docs = run_judge(
            Client(cache_dir=tmp_path / "cache"), transcripts, paths, judge, RUBRIC, TEMPLATES, None, seed=1
        )
        with pytest.raises(TooManyFailures, match="2 transcript\\(s\\) failed, max_failures allows 1"):
            run_judge(Client(), transcripts, paths, {**judge, "max_failures": 1}, RUBRIC, TEMPLATES, None, seed=1)
    finally:
        server.shutdown()
    failed = failures(docs)
    assert sorted(f["profile_id"] for f in failed) == sorted(bad_profiles)
    assert all(
        "invalid JSON" in f["reason"] and Path(f["raw_output"]).read_text().count("no idea") == 2 for f in failed
    )
    from cbtflow.validate import validate_path

    for doc, path in zip(docs, paths):
        Path(path).write_text(json.dumps(doc))
        assert validate_path(path) == [], path
    table = scores_table(docs)
    assert table.filter(table["item"] == "total").height == 4, "failure records are never analysed"
    check_failure_budgets(failed, docs, {"api": 2})
    with pytest.raises(TooManyFailures, match="judge api: 2 transcripts failed judging, max_failures = 0.2"):
        check_failure_budgets(failed, docs, {"api": 0.2})  # 20% of 6 transcripts allows 1


def test_a_session_lost_in_simulation_is_a_failure_record_under_the_patient_budget(tmp_path):
    from cbtflow.judge.run import TooManyFailures, check_failure_budgets, check_transcript
    from cbtflow.judge.scores import failures

    lexicon = load_lexicon(ROOT / "resources/ctrs/lexicon.yaml")
    lost = {
        "profile_id": "eval-001",
        "model": "m",
        "condition": "cbt",
        "seed": 1,
        "failure": "patient: 500",
        "turns": [{"role": "therapist", "text": "Hello."}],
    }
    kept = {"profile_id": "eval-000", "model": "m", "condition": "cbt", "seed": 1, "turns": PAIRS[0]["good"]}
    check_transcript(lost, "lost.json")  # no error: it is recorded, not scored
    docs = run_judge(
        None,
        [kept, lost],
        [str(tmp_path / "a.json"), str(tmp_path / "b.json")],
        {"name": "lexicon", "kind": "lexicon"},
        RUBRIC,
        {},
        lexicon,
        seed=1,
    )
    [failed] = failures(docs)
    assert failed["stage"] == "simulate" and "patient: 500" in failed["reason"]
    check_failure_budgets([failed], docs, {"lexicon": 0}, patient_max_failures=1)  # not the judge's failure
    with pytest.raises(TooManyFailures, match="roles.patient: 1 sessions lost their patient"):
        check_failure_budgets([failed], docs, {"lexicon": 0}, patient_max_failures=0)


def test_the_rubrics_shape_comes_from_the_rubric_file():
    """Scale, items and threshold are read from the rubric: a 1-5 rubric gives 1-5 scores and
    asks for a digit from 1 to 5; nothing assumes 0-6 or 0-66."""
    import copy

    from cbtflow import prompts
    from cbtflow.instrument import competence_threshold, max_total

    five = copy.deepcopy(RUBRIC)
    five["scale"] = {"min": 1, "max": 5}
    five["items"] = five["items"][:3]
    good, poor = score_transcript(LEXICON, PAIRS[0]["good"], five), score_transcript(LEXICON, PAIRS[0]["poor"], five)
    assert list(good) == item_ids(five) and max_total(five) == 15
    assert all(1.0 <= doc["score"] <= 5.0 for doc in [*good.values(), *poor.values()])
    assert sum(d["score"] for d in good.values()) > sum(d["score"] for d in poor.values())
    item, scale = five["items"][0], five["scale"]
    prompt = prompts.render(TEMPLATES["judge_item"], transcript="T: hi", item=item, scale=scale, rubric=five)
    assert prompt.endswith("Answer with one digit from 1 to 5.")
    assert competence_threshold(RUBRIC) == 40 and competence_threshold(RUBRIC, 30) == 30
    del five["competence_threshold"]
    with pytest.raises(ValueError, match="competence_threshold"):
        competence_threshold(five)
