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


def test_validation_fills_the_schemas_defaults_and_keeps_what_is_set():
    config = copy.deepcopy(DEFAULT)
    del config["courses"]["max_attempts"]
    config["judges"]["api"] = {"kind": "llm", "model": "gemini/x", "mode": "per_item"}
    validate_config(config)
    assert config["courses"]["max_attempts"] == 3 and config["courses"]["on_exhausted"] == "drop"
    assert config["judges"]["api"]["mode"] == "per_item" and config["judges"]["api"]["retries"] == 2
    assert "retries" not in config["judges"]["lexicon"], "LLM-only defaults stay off a lexicon judge"
    assert config["therapist"]["vllm"]["startup_timeout"] == 900
    # One longest reply for local and API models alike (it was 128 and 512).
    assert config["roles"]["patient"]["sampling"]["max_tokens"] == 40
    from cbtflow.llm.sampling import with_defaults

    assert with_defaults({})["max_tokens"] == 512 and with_defaults({"max_tokens": 9})["max_tokens"] == 9


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda c: c.update(unknwon_key=1), "unknwon_key"),
        (lambda c: c["models"]["smol-r8"]["lora"].update(r="eight"), "config.models.smol-r8.lora.r"),
        (lambda c: c["models"]["smol-r8"].pop("base"), "config.models.smol-r8"),
        (lambda c: c["models"]["smol-r8"].update(base="llama-9b"), "config.models.smol-r8.base"),
        (lambda c: c.update(seeds=[1, "two"]), "config.seeds[1]"),
        (lambda c: c["simulation"].update(max_turns=-3), "config.simulation.max_turns"),
        (lambda c: c["roles"]["patient"].update(model="local/not-a-base"), "config.roles.patient.model"),
        (lambda c: c["report"].update(primary_judge="gpt"), "config.report.primary_judge"),
        (lambda c: c["courses"].update(mode="chapters"), "config.courses.mode"),
    ],
)
def test_bad_config_names_the_field(mutate, field):
    with pytest.raises(ConfigError) as err:
        validate_config(broken(mutate))
    assert field in str(err.value)


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda c: c["models"]["smol-r16"].pop("base"), "config.models.smol-r16"),
        (lambda c: c.update(seeds=[1, 2.5]), "config.seeds[1]"),
    ],
)
def test_snakemake_stops_before_any_job(tmp_path, mutate, field):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(broken(mutate)))
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert field in done.stdout + done.stderr
    assert "Job stats" not in done.stdout


def test_preflight_names_role_model_and_variable():
    from cbtflow.preflight import missing_keys

    config = broken(lambda c: c["roles"]["patient"].update(model="deepseek/deepseek-chat"))
    problems = missing_keys(config, environ={})
    assert problems == [
        "roles.patient uses deepseek/deepseek-chat, which needs the environment variable "
        "DEEPSEEK_API_KEY; export DEEPSEEK_API_KEY=... before running"
    ]
    assert missing_keys(config, environ={"DEEPSEEK_API_KEY": "x"}) == []
    assert missing_keys(copy.deepcopy(DEFAULT), environ={}) == [], "local models need no key"


def test_preflight_checks_the_keys_of_fallbacks():
    from cbtflow.preflight import missing_keys

    config = broken(
        lambda c: c["roles"]["patient"].update(
            model="deepseek/deepseek-chat",
            fallbacks=[
                "openrouter/deepseek/deepseek-chat",
                {"model": "openai/local", "api_base": "http://127.0.0.1:1/v1"},
            ],
        )
    )
    validate_config(copy.deepcopy(config))
    problems = missing_keys(config, environ={"DEEPSEEK_API_KEY": "x"})
    assert problems == [
        "roles.patient.fallbacks[0] uses openrouter/deepseek/deepseek-chat, which needs the "
        "environment variable OPENROUTER_API_KEY; export OPENROUTER_API_KEY=... before running"
    ]


def test_missing_key_stops_the_run_before_any_job(tmp_path):
    config = broken(lambda c: c["judges"].update(gemini={"kind": "llm", "model": "gemini/gemini-1.5-pro-002"}))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "resources").symlink_to(ROOT / "resources")
    env = {k: v for k, v in __import__("os").environ.items() if k != "GEMINI_API_KEY"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--cores",
            "1",
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(tmp_path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    out = done.stdout + done.stderr
    assert done.returncode != 0  # the whole run, the gemini judge's jobs included
    assert "judges.gemini" in out and "GEMINI_API_KEY" in out
    assert not (tmp_path / "results").exists(), "no job ran"


def test_vllm_refuses_bitsandbytes_bases_and_ranks_above_512_at_config_time():
    from cbtflow.layout import therapist_weights

    paper = yaml.safe_load((ROOT / "experiments/paper.yaml").read_text())
    paper["therapist"] = {**paper["therapist"], "backend": "vllm"}
    validate_config(paper)  # the experiment names a 16-bit serve_source for each 4-bit base
    for base in paper["bases"].values():
        base.pop("serve_source")
    with pytest.raises(ConfigError) as err:
        validate_config(paper)
    message = str(err.value)
    for base in paper["bases"]:
        assert f"config.bases.{base}.serve_source: vLLM 0.33 cannot serve the bitsandbytes checkpoint" in message
    for base, full in (
        ("llama31-8b", "meta-llama/Llama-3.1-8B-Instruct"),
        ("qwen25-7b", "Qwen/Qwen2.5-7B-Instruct"),
        ("mistral-7b-v03", "mistralai/Mistral-7B-Instruct-v0.3"),
    ):
        paper["bases"][base]["serve_source"] = full
    validate_config(paper)
    model = next(iter(paper["models"]))
    assert (
        therapist_weights(paper, model, "cbt")
        == f"local/{paper['bases'][paper['models'][model]['base']]['serve_source']}"
    )
    paper["models"][model]["lora"]["r"] = 1024
    with pytest.raises(
        ConfigError,
        match=rf"config.models.{model}.lora.r: 1024 is above the largest LoRA rank vLLM "
        r"serves \(512; allowed --max-lora-rank values \[8, 16",
    ):
        validate_config(paper)
    paper["therapist"].pop("backend")
    validate_config(paper)  # transformers serves any rank and the bnb checkpoints


def test_the_provider_list_matches_the_installed_litellm():
    import os

    from cbtflow.llm.backends.litellm_api import known_providers

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    assert known_providers() == {getattr(p, "value", p) for p in litellm.provider_list}


def _run_in(tmp_path, config, *args, env=None):
    """snakemake on the repository's workflow with ``config``, in a scratch directory."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "resources").symlink_to(ROOT / "resources")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            *args,
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(tmp_path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, **(env or {})},
    )


def test_an_unknown_provider_fails_a_dry_run_naming_the_field(tmp_path):
    config = broken(lambda c: c["roles"]["patient"].update(model="madeup/some-model"))
    config["judges"]["api"] = {"kind": "llm", "model": "gemini/x", "fallbacks": ["nosuch/model"]}
    done = _run_in(tmp_path, config, "-n")
    assert done.returncode != 0
    out = done.stdout + done.stderr
    assert "config.roles.patient.model: 'madeup/some-model' names no provider litellm knows" in out
    assert "config.judges.api.fallbacks[0]: 'nosuch/model' names no provider" in out
    assert "Job stats" not in done.stdout


def test_budget_fails_closed_on_an_unpriced_paid_model_before_any_job(tmp_path):
    from cbtflow.preflight import unpriced_under_budget

    config = broken(lambda c: c["roles"]["generator"].update(model="openrouter/nousresearch/hermes-3-llama-3.1-405b"))
    config["max_cost_usd"] = 5.0
    [problem] = unpriced_under_budget(config)
    assert (
        problem.startswith(
            "config.roles.generator: openrouter/nousresearch/hermes-3-llama-3.1-405b has no known "
            "price and max_cost_usd is set"
        )
        and "prices: {input_per_mtok" in problem
    )
    done = _run_in(tmp_path, config, "--cores", "1", env={"OPENROUTER_API_KEY": "x"})
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "preflight failed, no job was run" in out
    assert "config.roles.generator: openrouter/nousresearch/hermes-3-llama-3.1-405b has no known price" in out
    assert not (tmp_path / "results").exists(), "no job ran"
    config["roles"]["generator"]["prices"] = {"input_per_mtok": 1.0, "output_per_mtok": 1.0}
    assert unpriced_under_budget(config) == []
    config["roles"]["patient"] = {**config["roles"]["patient"], "model": "deepseek/deepseek-chat"}
    assert unpriced_under_budget(config) == [], "litellm's map prices DeepSeek"
    config["roles"]["generator"].pop("prices")
    config.pop("max_cost_usd")
    assert unpriced_under_budget(config) == [], "no budget, nothing to fail closed"


def test_config_prices_cost_every_call_and_stop_the_budget(tmp_path):
    from conftest import paid_provider

    from cbtflow.llm import BudgetExceeded, Endpoint
    from cbtflow.runtime import client

    config = broken(
        lambda c: c["roles"]["generator"].update(
            model="openrouter/x/y", prices={"input_per_mtok": 1_000_000.0, "output_per_mtok": 0.0}
        )
    )
    config["max_cost_usd"] = 2.5
    llm = client(str(tmp_path), config)
    assert llm.prices_by_model == {"openrouter/x/y": {"input_per_mtok": 1_000_000.0, "output_per_mtok": 0.0}}

    llm.generate = paid_provider(llm, cost_usd=0.0)  # a provider litellm has no price for
    endpoint = Endpoint("openrouter/x/y")
    for i in range(3):
        reply = llm.chat(endpoint, [{"role": "user", "content": str(i)}], {}, 1)
        assert reply["cost_usd"] == pytest.approx(1.0) and reply["cost_source"] == "config prices"
    assert llm.usage.totals()["cost_usd_estimated"] == pytest.approx(3.0)
    with pytest.raises(BudgetExceeded):
        llm.chat(endpoint, [{"role": "user", "content": "one more"}], {}, 1)


def test_each_judge_kind_depends_only_on_what_it_reads():
    from cbtflow.layout import judge_files

    config = broken(
        lambda c: c["judges"].update(
            api={"kind": "llm", "model": "gemini/x"}, per_item={"kind": "llm", "model": "gemini/x", "mode": "per_item"}
        )
    )
    validate_config(config)  # judge_files reads a validated config: defaults filled in
    shared = {"rubric": "resources/ctrs/ctrs.yaml", "detectors": "resources/detectors.yaml"}

    def prompts(*names):
        return {**shared, **{n: f"resources/prompts/{n}.j2" for n in names}}

    lexicon = {**shared, "lexicon": "resources/ctrs/lexicon.yaml"}
    assert judge_files(config, "lexicon") == lexicon
    assert judge_files(config, "smollm2") == prompts("judge_item")
    assert judge_files(config, "api") == prompts("judge_all")
    assert judge_files(config, "per_item") == prompts("judge_item_json")
    config["profiles"]["eval_risk"] = True  # the safety item is asked per item
    assert judge_files(config, "api") == prompts("judge_all", "judge_item_json")
    config["profiles"]["eval_risk"] = False
    config["profiles"]["crisis"]["share"] = 0.5  # crisis moments: the rubric, and the heuristic for the lexicon
    rubric, heuristic = "resources/crisis/safety_rubric.yaml", "resources/crisis/heuristic.yaml"
    assert judge_files(config, "lexicon") == {**lexicon, "crisis_rubric": rubric, "crisis_heuristic": heuristic}
    assert judge_files(config, "smollm2") == {**prompts("judge_item"), "crisis_rubric": rubric}
    assert judge_files(config, "api") == {**prompts("judge_all", "judge_item_json"), "crisis_rubric": rubric}


def test_the_conditions_table_matches_the_schemas_and_says_what_each_condition_runs():
    from cbtflow.conditions import ORDER, TABLE
    from cbtflow.config import load_schema

    assert load_schema("config")["properties"]["conditions"]["items"]["enum"] == ORDER
    assert load_schema("transcript")["properties"]["condition"]["enum"] == ORDER
    assert [c for c in ORDER if TABLE[c].adapter] == ["cbt"]
    assert [c for c in ORDER if TABLE[c].same_for_every_model_of_a_base] == ["instruct", "prompted"]
    assert {TABLE[c].prompt for c in ORDER} <= {p.stem for p in (ROOT / "resources/prompts").glob("*.j2")}


def test_multiplicity_families_name_exactly_the_contrasts_the_analysis_runs():
    from cbtflow.conditions import CONTRASTS, contrast_name
    from cbtflow.config import load_schema

    families = load_schema("config")["properties"]["report"]["properties"]["multiplicity_families"]
    assert families["additionalProperties"]["items"]["enum"] == [contrast_name(a, b) for a, b in CONTRASTS]


def test_preflight_checks_only_the_roles_the_requested_targets_call(tmp_path):
    """The study's config without any API key: the profiles call no model and are built; the
    courses call the generator, and only the generator's key is asked for."""
    from cbtflow.preflight import preflight

    paper = yaml.safe_load((ROOT / "experiments" / "paper.yaml").read_text())
    validate_config(paper)
    no_keys = {}
    assert preflight(paper, set(), environ=no_keys) == []
    [generator] = preflight(paper, {"roles.generator"}, environ=no_keys)
    assert generator.startswith("roles.generator uses openrouter/") and "OPENROUTER_API_KEY" in generator
    assert len(preflight(paper, None, environ=no_keys)) >= 3, "unfiltered: every paid role"

    keys = ("OPENROUTER_API_KEY", "DEEPSEEK_API_KEY", "GEMINI_API_KEY", "OPENAI_API_KEY")
    clean = {k: "" for k in keys}
    done = _run_in(tmp_path, paper, "--cores", "1", "results/profiles/train.jsonl", env=clean)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (tmp_path / "results" / "profiles" / "train.jsonl").exists()
    again = tmp_path / "courses"
    again.mkdir()
    courses = _run_in(again, paper, "--cores", "1", "results/courses/hermes3-405b/train-000.json", env=clean)
    out = courses.stdout + courses.stderr
    assert courses.returncode != 0 and "preflight failed, no job was run" in out
    assert "roles.generator" in out and "roles.patient" not in out and "judges." not in out


def test_an_llm_judges_default_sampling_is_set_whole_so_its_params_and_cache_keys_stay():
    """The kind's whole_defaults: unset, an LLM judge samples {temperature 0, max_tokens 2048},
    nothing more (the retries and timeout apply at the call); a judge that writes its own
    sampling gets the sampling fields' defaults, as every role does."""
    from cbtflow.layout import judge_settings

    config = copy.deepcopy(DEFAULT)
    config["judges"]["own"] = {"kind": "llm", "model": "local/smollm2-135m", "sampling": {"max_tokens": 64}}
    validate_config(config)
    assert judge_settings(config, "smollm2")["sampling"] == {"temperature": 0.0, "max_tokens": 2048}
    assert judge_settings(config, "own")["sampling"] == {
        "temperature": 0.0,
        "max_tokens": 64,
        "num_retries": 4,
        "retry_backoff": 2.0,
        "timeout": 120,
    }
