"""A bad config stops before any job runs, with a message naming the field."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cbtflow.config import ConfigError, validate_config

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "config.yaml").read_text())


def broken(mutate):
    config = copy.deepcopy(DEFAULT)
    mutate(config)
    return config


def test_default_config_is_valid():
    validate_config(copy.deepcopy(DEFAULT))


@pytest.mark.parametrize("mutate, field", [
    (lambda c: c.update(unknwon_key=1), "unknwon_key"),
    (lambda c: c["models"]["smol-r8"]["lora"].update(r="eight"), "config.models.smol-r8.lora.r"),
    (lambda c: c["models"]["smol-r8"].pop("base"), "config.models.smol-r8"),
    (lambda c: c["models"]["smol-r8"].update(base="llama-9b"), "config.models.smol-r8.base"),
    (lambda c: c.update(seeds=[1, "two"]), "config.seeds[1]"),
    (lambda c: c["simulation"].update(max_turns=-3), "config.simulation.max_turns"),
    (lambda c: c["roles"]["patient"].update(model="local/not-a-base"), "config.roles.patient.model"),
    (lambda c: c["report"].update(primary_judge="gpt"), "config.report.primary_judge"),
    (lambda c: c["courses"].update(mode="chapters"), "config.courses.mode"),
])
def test_bad_config_names_the_field(mutate, field):
    with pytest.raises(ConfigError) as err:
        validate_config(broken(mutate))
    assert field in str(err.value)


@pytest.mark.parametrize("mutate, field", [
    (lambda c: c["models"]["smol-r16"].pop("base"), "config.models.smol-r16"),
    (lambda c: c.update(seeds=[1, 2.5]), "config.seeds[1]"),
])
def test_snakemake_stops_before_any_job(tmp_path, mutate, field):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(broken(mutate)))
    done = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(ROOT / "Snakefile"),
                           "--directory", str(tmp_path)], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode != 0
    assert field in done.stdout + done.stderr
    assert "Job stats" not in done.stdout


def test_preflight_names_role_model_and_variable():
    from cbtflow.preflight import missing_keys

    config = broken(lambda c: c["roles"]["patient"].update(model="deepseek/deepseek-chat"))
    problems = missing_keys(config, environ={})
    assert problems == ["roles.patient uses deepseek/deepseek-chat, which needs the environment variable "
                        "DEEPSEEK_API_KEY; export DEEPSEEK_API_KEY=... before running"]
    assert missing_keys(config, environ={"DEEPSEEK_API_KEY": "x"}) == []
    assert missing_keys(copy.deepcopy(DEFAULT), environ={}) == [], "local models need no key"


def test_preflight_checks_the_keys_of_fallbacks():
    from cbtflow.preflight import missing_keys

    config = broken(lambda c: c["roles"]["patient"].update(
        model="deepseek/deepseek-chat", fallbacks=["openrouter/deepseek/deepseek-chat",
                                                   {"model": "openai/local", "api_base": "http://127.0.0.1:1/v1"}]))
    validate_config(copy.deepcopy(config))
    problems = missing_keys(config, environ={"DEEPSEEK_API_KEY": "x"})
    assert problems == ["roles.patient.fallbacks[0] uses openrouter/deepseek/deepseek-chat, which needs the "
                        "environment variable OPENROUTER_API_KEY; export OPENROUTER_API_KEY=... before running"]


def test_missing_key_stops_the_run_before_any_job(tmp_path):
    config = broken(lambda c: c["judges"].update(gemini={"kind": "llm", "model": "gemini/gemini-1.5-pro-002"}))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "resources").symlink_to(ROOT / "resources")
    env = {k: v for k, v in __import__("os").environ.items() if k != "GEMINI_API_KEY"}
    done = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--snakefile", str(ROOT / "Snakefile"),
                           "--directory", str(tmp_path), "results/profiles/train.jsonl"],
                          cwd=tmp_path, capture_output=True, text=True, env=env)
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "judges.gemini" in out and "GEMINI_API_KEY" in out
    assert not (tmp_path / "results").exists(), "no job ran"


def test_vllm_refuses_bitsandbytes_bases_and_ranks_above_512_at_config_time():
    from cbtflow.config import therapist_weights

    paper = yaml.safe_load((ROOT / "experiments/paper.yaml").read_text())
    paper["therapist"] = {**paper["therapist"], "backend": "vllm"}
    with pytest.raises(ConfigError) as err:
        validate_config(paper)
    message = str(err.value)
    for base in paper["bases"]:
        assert f"config.bases.{base}.serve_source: vLLM 0.33 cannot serve the bitsandbytes checkpoint" in message
    for base, full in (("llama31-8b", "meta-llama/Llama-3.1-8B-Instruct"), ("qwen25-7b", "Qwen/Qwen2.5-7B-Instruct"),
                       ("mistral-7b-v03", "mistralai/Mistral-7B-Instruct-v0.3")):
        paper["bases"][base]["serve_source"] = full
    validate_config(paper)
    model = next(iter(paper["models"]))
    assert therapist_weights(paper, model, "cbt") == f"local/{paper['bases'][paper['models'][model]['base']]['serve_source']}"
    paper["models"][model]["lora"]["r"] = 1024
    with pytest.raises(ConfigError, match=rf"config.models.{model}.lora.r: 1024 is above the largest LoRA rank vLLM "
                                          r"serves \(512; allowed --max-lora-rank values \[8, 16"):
        validate_config(paper)
    paper["therapist"].pop("backend")
    validate_config(paper)  # transformers serves any rank and the bnb checkpoints
