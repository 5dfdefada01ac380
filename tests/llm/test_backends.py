"""The backend registry: names, lazy imports, and the scripted backend a config can select."""

import copy
import subprocess
import sys

import pytest
import yaml
from workspace import ROOT

from cbtflow.config import validate_config
from cbtflow.llm import Client, Endpoint, backends


def test_each_endpoint_maps_to_its_backend_and_unknown_names_are_errors():
    assert backends.backend_name(Endpoint("local/models/x")) == "transformers"
    assert backends.backend_name(Endpoint("local/models/x", serve_url="http://h/v1")) == "vllm"
    assert backends.backend_name(Endpoint("gemini/gemini-2.5-flash")) == "litellm"
    assert backends.backend_name(Endpoint("scripted/patient")) == "scripted"
    with pytest.raises(ValueError, match="registered: .*litellm.*scripted.*transformers"):
        backends.get("ollama-direct")


def test_backends_are_imported_only_when_first_used():
    probe = (
        "import sys; from cbtflow.llm import Client, Endpoint; "
        "c = Client(); c.chat(Endpoint('scripted/x'), [{'role': 'user', 'content': 'hi'}], {}, 1); "
        "print(sorted(m for m in ('torch', 'litellm', 'transformers') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", "a scripted call imported a model library"


def test_scripted_replies_are_deterministic_vary_by_turn_and_go_through_cache_and_usage(tmp_path):
    client = Client(cache_dir=tmp_path / "cache")
    endpoint = Endpoint("scripted/patient")
    talk = [{"role": "user", "content": "How was your week?"}]
    first = client.chat(endpoint, talk, {"max_tokens": 40}, 3)
    again = Client(cache_dir=tmp_path / "cache").chat(endpoint, talk, {"max_tokens": 40}, 3)
    assert first["text"] == again["text"] and again["cached"] and not first["cached"]
    later = client.chat(endpoint, [*talk, {"role": "assistant", "content": first["text"]}, *talk], {}, 3)
    assert later["text"] != first["text"]
    assert client.usage.totals()["calls"] >= 2
    scores = client.score(endpoint, [talk], [str(d) for d in range(7)])
    assert abs(sum(scores[0]["probs"]) - 1.0) < 1e-9 and len(scores[0]["probs"]) == 7


def test_a_config_can_select_scripted_roles_without_keys_or_providers():
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["roles"]["generator"]["model"] = "scripted/generator"
    config["roles"]["patient"]["model"] = "scripted/patient"
    validate_config(config)  # no provider error: scripted is not an API model
    from cbtflow.config import api_models
    from cbtflow.layout import gpus_for
    from cbtflow.preflight import missing_keys

    assert "roles.patient" not in api_models(config) and "roles.generator" not in api_models(config)
    assert missing_keys(config) == [] and gpus_for(config, config["roles"]["patient"]) == 0
    paid = copy.deepcopy(config)
    paid["roles"]["patient"]["model"] = "gemini/gemini-2.5-flash"
    assert "roles.patient" in api_models(paid) and missing_keys(paid, environ={})


def test_a_scripted_judge_scores_by_digits_like_a_local_one(tmp_path):
    from cbtflow.config import run_facts
    from cbtflow.judge.kinds import JudgeJob, kind_of
    from cbtflow.judge.kinds.lexicon import LexiconScorer
    from cbtflow.judge.kinds.llm import DigitScorer, JsonScorer
    from cbtflow.judge.run import judge_transcripts, load_job, packaged_files
    from cbtflow.layout import judge_files, judge_settings

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["judges"]["fast"] = {"kind": "llm", "model": "scripted/judge"}
    validate_config(config)
    assert judge_files(config, "fast") == {
        "rubric": "resources/ctrs/ctrs.yaml",
        "detectors": "resources/detectors.yaml",
        "judge_item": "resources/prompts/judge_item.j2",
    }
    judge = judge_settings(config, "fast")
    job = load_job(Client(), judge, packaged_files(judge, run_facts(config)), "ctrs-modified")
    rubric = job.rubric
    scorers = {
        "lexicon": kind_of({"kind": "lexicon"}).scorer(JudgeJob(None, {"kind": "lexicon"}, rubric, {}, {}, None)),
        "scripted": kind_of(judge).scorer(job),
        "api": kind_of(judge).scorer(JudgeJob(None, judge, rubric, {}, {}, Endpoint("gemini/x"))),
    }
    assert [type(k) for k in scorers.values()] == [LexiconScorer, DigitScorer, JsonScorer]
    transcript = {
        "profile_id": "eval-000",
        "model": "m",
        "condition": "cbt",
        "seed": 1,
        "turns": [
            {"role": "therapist", "text": "What would you like to work on?"},
            {"role": "patient", "text": "Sleep."},
        ],
    }
    (doc,) = judge_transcripts(job, [transcript], [str(tmp_path / "s.json")], 1)
    assert doc["status"] == "scored" and set(doc["items"]) == {i["id"] for i in rubric["items"]}
