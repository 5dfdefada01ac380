"""The workflow's layout: where a run's files are and what its jobs ask for.

Where a base loads from (the prepared directory of an embedded base), its chat template, a
role's endpoint, a judge's settings and the files its jobs read (the rule inputs), the
software environment of each rule and the GPUs a job takes. ``workflow/rules/common.smk``
reads these; ``cbtflow score`` and ``cbtflow judge-card`` resolve a judge through the same
functions, so outside the workflow it is called exactly as the rules call it. Validation and
typed access to the config stay in ``cbtflow.config``.
"""

from __future__ import annotations

from typing import Any

from cbtflow.conditions import TABLE as CONDITION_TABLE
from cbtflow.config import calls_model, is_local_role, local_base, run_facts, therapist_backend
from cbtflow.judge import run as judging
from cbtflow.llm.backends import therapist_backends
from cbtflow.llm.endpoint import LOCAL_PREFIX, Endpoint


def base_location(config: dict[str, Any], base: str) -> str:
    """Where a base loads from: the prepared directory of an embedded base, else its source."""
    source = config["bases"][base]["source"]
    return f"resources/models/{base}" if source == "embedded" else source


def chat_template_of(config: dict[str, Any], base: str) -> str | None:
    """The named chat-template file for a base, or None to use the base's own."""
    name = config["bases"][base].get("chat_template")
    return f"resources/chat_templates/{name}.jinja" if name else None


def precision_of(config: dict[str, Any], base: str) -> str:
    """The precision a base generates and judges in (llm/local/precision.py); an endpoint's
    default where the config names none."""
    return config["bases"][base].get("precision", Endpoint.precision)


def endpoint_spec(config: dict[str, Any], role: dict[str, Any]) -> dict[str, Any]:
    """A role's endpoint with ``local/<base>`` resolved to the directory it loads from
    (paths relative to the project root, where Snakemake and ``cbtflow`` run)."""
    base = local_base(role["model"])
    spec: dict[str, Any] = {"model": f"local/{base_location(config, base)}" if base else role["model"]}
    if base and chat_template_of(config, base):
        spec["chat_template"] = chat_template_of(config, base)
    if base:
        spec["precision"] = precision_of(config, base)
    if role.get("api_base"):
        spec["api_base"] = role["api_base"]
    if role.get("fallbacks"):
        spec["fallbacks"] = list(role["fallbacks"])
    return spec


def judge_settings(config: dict[str, Any], name: str) -> dict[str, Any]:
    """One judge's settings as its jobs read them; ``concurrency`` only paces calls (read
    at run time), so it stays out, and changing it reruns nothing."""
    if name not in config["judges"]:
        raise ValueError(f"judges: no judge named {name!r} (configured: {sorted(config['judges'])})")
    judge = {k: v for k, v in config["judges"][name].items() if k != "concurrency"}
    if calls_model(judge):
        judge["endpoint"] = endpoint_spec(config, judge)
    return {"name": name, **judge}


def gpus_for(config: dict[str, Any], *roles: dict[str, Any]) -> int:
    """GPUs a job asks for: ``gpus_per_job`` when it runs a local model (no roles given: it
    always does, as finetune and simulate's therapist), else 0."""
    local = not roles or any(is_local_role(r) for r in roles)
    return int(config["gpus_per_job"]) if local else 0


# envs/<name>.yaml: the CPU default, CUDA training, statistics, and each therapist backend's own.
ENVIRONMENTS = tuple(
    dict.fromkeys(("cpu", "cuda-train", "stats", *(b.environment for b in therapist_backends().values())))
)


def rule_environment(config: dict[str, Any], rule: str, *roles: dict[str, Any]) -> str:
    """The conda environment (``envs/<name>.yaml``) a rule runs in under ``--sdm conda``.

    A server backend's own environment for the therapist it serves (Backend.environment);
    the CUDA training environment for a job that runs a local model on a GPU; the
    statistics environment (no torch) for the report; the CPU environment otherwise."""
    if rule == "simulate" and therapist_backend(config).server:
        return therapist_backend(config).environment
    if rule == "report":
        return "stats"
    if rule in ("finetune", "simulate", "courses", "judge") and gpus_for(config, *roles):
        return "cuda-train"
    return "cpu"


def therapist_weights(config: dict[str, Any], model: str, condition: str) -> str:
    """The therapist's weights as a local endpoint: the model's external checkpoint, the
    weights its backend loads for the base (vLLM's ``serve_source``), or the base."""
    entry = config["models"][model]
    if CONDITION_TABLE[condition].weights == "external":
        return f"{LOCAL_PREFIX}{entry['external']}"
    source = therapist_backend(config).weights(config, entry["base"])
    if source:
        return f"{LOCAL_PREFIX}{source}"
    return f"{LOCAL_PREFIX}{base_location(config, entry['base'])}"


def judge_files(config: dict[str, Any], name: str) -> dict[str, str]:
    """The files a judge's jobs read, by input name, as the workflow sees them
    (cbtflow.judge.run.judge_files): editing one template reruns only the judges that read it."""
    return judging.judge_files(judge_settings(config, name), run_facts(config))
