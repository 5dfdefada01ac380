# Config validation, the names every stage is expanded over, and input functions.
# Params hold only a job's own slice of the config, so editing one model reruns that
# model's jobs and the report, nothing else.

import os
import re

from snakemake.exceptions import WorkflowError

from cbtflow import config as experiment
from cbtflow import layout
from cbtflow.conditions import TABLE as CONDITION_TABLE
from cbtflow.config import ConfigError, validate_config
from cbtflow.preflight import preflight
from cbtflow.data.profiles import profile_ids
from cbtflow.llm.local import forkserver
from cbtflow.session_key import session_dir
from cbtflow.simulate.course import MEMORY_PROMPTS

try:
    validate_config(config)
except ConfigError as err:
    raise WorkflowError(str(err))

CACHE = config["cache_dir"]


def roles_called(jobs):
    """The configured roles (config fields) that the jobs call: courses the generator,
    simulate the patient (the therapist is local), a judge's jobs that judge."""
    roles = set()
    for job in jobs:
        if job.rule.name == "courses":
            roles.add("roles.generator")
        elif job.rule.name in ("simulate", "simulate_course"):
            roles.add("roles.patient")
        elif "judge" in job.wildcards.keys():
            roles.add(f"judges.{job.wildcards.judge}")
    return roles


def runs_local_models(jobs):
    """Whether a job to run calls a local model: simulate's therapist always does (in its
    process or through a server backend), a generator, patient or judge when it is local."""
    if any(job.rule.name in ("simulate", "simulate_course") for job in jobs):
        return True
    roles = experiment.model_roles(config)
    return any(
        experiment.is_local_role(roles[field]) for field in roles_called(jobs) if field in roles
    )


LOCAL_SERVER = {}  # the run's local model server (llm/local/forkserver.py), while it runs


def stop_local_server():
    if LOCAL_SERVER:
        forkserver.stop(LOCAL_SERVER.pop("process"), LOCAL_SERVER.pop("address"))


onstart:
    # Runs before the first job of a real run (not for a dry run, which makes no call), and
    # checks only the roles the jobs to run call: a run that calls no model needs no key.
    jobs = list(workflow.dag.needrun_jobs())  # read twice below
    problems = preflight(config, roles_called(jobs))
    if problems:
        raise WorkflowError("preflight failed, no job was run:\n  " + "\n  ".join(problems))
    # Jobs run here share one import of torch and transformers: each forks its model worker
    # from the server started now (jobs on a cluster's nodes load their models themselves).
    if config["local_server"] and workflow.local_exec and runs_local_models(jobs):
        environment, process = forkserver.start("logs/local_server.log")
        os.environ.update(environment)
        LOCAL_SERVER.update(process=process, address=environment[forkserver.ENV_ADDRESS])


onsuccess:
    stop_local_server()


onerror:
    stop_local_server()


MODELS = sorted(config["models"])
CONDITIONS = list(config["conditions"])
SEEDS = [int(s) for s in config["seeds"]]
JUDGES = sorted(config["judges"])
GENERATOR = config["roles"]["generator"]["name"]
TRAIN_IDS = profile_ids("train", config["profiles"]["train"])
EVAL_IDS = profile_ids("eval", config["profiles"]["eval"])
SESSIONS = list(range(1, int(config["simulation"]["sessions"]) + 1))
EMBEDDED_BASES = sorted(b for b, spec in config["bases"].items() if spec["source"] == "embedded")
PROMPTS = "resources/prompts"
INSTRUMENT = experiment.instrument(config)[0]  # judging.instrument, as a file
DETECTORS = "resources/detectors.yaml"
PERTURBATIONS = "resources/perturbations.yaml"
AUTHORED_REFERENCE = "resources/reference/authored.yaml"


wildcard_constraints:
    model="|".join(map(re.escape, MODELS)),
    condition="|".join(CONDITIONS),
    seed=r"\d+",
    session=r"[2-9]|[1-9]\d+",  # a later session of a course; session 1 has no wildcard
    judge="|".join(map(re.escape, JUDGES)),
    generator=re.escape(GENERATOR),
    base="|".join(map(re.escape, EMBEDDED_BASES)) or "(?!)",


def base_location(base):
    return layout.base_location(config, base)


def base_inputs(base):
    """The prepare_base_model target when the base is embedded; nothing for HF ids and dirs."""
    return [f"resources/models/{base}"] if base in EMBEDDED_BASES else []


def chat_template_of(base):
    return layout.chat_template_of(config, base)


def endpoint_spec(role):
    return layout.endpoint_spec(config, role)


def role_inputs(role):
    """A local role needs its prepared base and, if named, its chat-template file."""
    base = experiment.local_base(role["model"])
    return (
        base_inputs(base) + ([chat_template_of(base)] if chat_template_of(base) else [])
        if base
        else []
    )


def therapist_base(wildcards):
    return config["models"][wildcards.model]["base"]


def adapter_for(wildcards):
    """A condition with an adapter (cbt) reads this model's adapter for this seed."""
    if CONDITION_TABLE[wildcards.condition].adapter:
        return f"results/adapters/{wildcards.model}/seed{wildcards.seed}"
    return []


def templates(*names):
    return {name: f"{PROMPTS}/{name}.j2" for name in names}


def job_usage(stage, model, condition, seed, session=1, judge=None):
    """A simulate or judge job's usage log: seed<seed>.json for session 1, as a one-session
    run writes it; seed<seed>/session<n>.json for a later session of a course."""
    name = (
        f"seed{seed}.json"
        if int(session) == 1
        else os.path.join(f"seed{seed}", f"session{session}.json")
    )
    return os.path.join(
        "results", "usage", stage, *([judge] if judge else []), model, condition, name
    )


def transcripts_of(wildcards, session=None):
    """One simulate job's transcripts (the wildcards' session, or ``session``)."""
    number = session or wildcards.get("session", 1)
    return expand(
        "results/transcripts/{model}/{condition}/seed{seed}/{course}{profile}.json",
        model=wildcards.model,
        condition=wildcards.condition,
        seed=wildcards.seed,
        course=session_dir(number),
        profile=EVAL_IDS,
    )


def earlier_sessions(wildcards):
    """Session n of a course reads sessions 1..n-1 of the same model × condition × seed."""
    number = int(wildcards.get("session", 1))
    return [p for k in range(1, number) for p in transcripts_of(wildcards, k)]


def memory_prompt(wildcards):
    """The prompt that writes the therapist's memory of the last session (simulation.memory)."""
    if int(wildcards.get("session", 1)) == 1:
        return []
    prompt = MEMORY_PROMPTS.get(config["simulation"]["memory"])
    return [f"{PROMPTS}/{prompt}.j2"] if prompt else []


def simulation_params(wildcards):
    """A simulate job's slice of simulation: never the course length (raising K reruns only
    the new sessions), and the memory mode only where a session reads one."""
    later = int(wildcards.get("session", 1)) > 1
    return {
        k: v
        for k, v in config["simulation"].items()
        if k != "sessions" and (later or k != "memory")
    }


def measure_files():
    """The questionnaires the patient answers in character (simulation.measures)."""
    return [f"resources/measures/{m}.yaml" for m in config["simulation"]["measures"]]


def measure_templates():
    """Only the prompt the patient's kind reads: digits (local, scripted) or JSON (API)."""
    if not config["simulation"]["measures"]:
        return []
    name = (
        "measure_item_json"
        if experiment.is_api_role(config["roles"]["patient"])
        else "measure_item"
    )
    return [f"{PROMPTS}/{name}.j2"]


def judge_inputs(wildcards):
    """The prepared base and chat template of a judge whose kind calls a local model."""
    judge = config["judges"][wildcards.judge]
    return role_inputs(judge) if experiment.calls_model(judge) else []


def judge_files(wildcards):
    """Only the rubric, templates and data files this judge's kind reads (named inputs)."""
    return layout.judge_files(config, wildcards.judge)


def judge_settings(wildcards):
    return layout.judge_settings(config, wildcards.judge)


def same_base_predecessor(wildcards, stage):
    """Order identical work so the call cache answers it.

    The instruct and prompted conditions of two models on the same base make exactly the
    same calls (same base, prompts, sampling and seeds). Making the later model's job wait
    for the earlier one's usage log means the later job is answered from the cache for
    free instead of both computing in parallel. "Earlier" is the config's own order, not
    the names': a model added at the end then waits for the others and reruns nothing of
    theirs, whatever its name.
    """
    if not CONDITION_TABLE[wildcards.condition].same_for_every_model_of_a_base:
        return []
    base = therapist_base(wildcards)
    in_config_order = list(config["models"])
    earlier = [
        m
        for m in in_config_order[: in_config_order.index(wildcards.model)]
        if config["models"][m]["base"] == base
    ]
    if not earlier:
        return []
    judge = wildcards.judge if stage == "judge" else None
    return [
        job_usage(
            stage,
            earlier[-1],
            wildcards.condition,
            wildcards.seed,
            wildcards.get("session", 1),
            judge,
        )
    ]


def therapist_template(wildcards):
    """The condition's system prompt: the detailed CBT prompt for `prompted`, the study's
    short neutral prompt otherwise (cbtflow.conditions.TABLE)."""
    return f"{PROMPTS}/{CONDITION_TABLE[wildcards.condition].prompt}.j2"


def therapist_model(wildcards):
    return layout.therapist_weights(config, wildcards.model, wildcards.condition)


def therapist_chat_template(wildcards):
    return chat_template_of(config["models"][wildcards.model]["base"])


def gpu_job(*roles):
    """The `gpu` resource: the slurm plugin turns it into `--gpus`; torch then sees only the
    GPU the scheduler gave (CUDA_VISIBLE_DEVICES)."""
    return layout.gpus_for(config, *roles)


def software_env(rule, *roles):
    """The conda environment file of a rule (paths relative to the rule files)."""
    return f"../../envs/{layout.rule_environment(config, rule, *roles)}.yaml"


def api_job(role):
    """1 when a role calls an API: jobs take an `api` token, so `--resources api=N` (or the
    slurm profile) caps how many API-bound jobs run at once; 0 for local models."""
    return int(experiment.is_api_role(role))


# Every transcript and score document of the run, every session of each course (the
# report, the viewer, the run's perturbations).
SCORE_DOCS = expand(
    "results/ctrs/{judge}/{model}/{condition}/seed{seed}/{course}{profile}.json",
    judge=JUDGES,
    model=MODELS,
    condition=CONDITIONS,
    seed=SEEDS,
    course=[session_dir(n) for n in SESSIONS],
    profile=EVAL_IDS,
)
TRANSCRIPTS = expand(
    "results/transcripts/{model}/{condition}/seed{seed}/{course}{profile}.json",
    model=MODELS,
    condition=CONDITIONS,
    seed=SEEDS,
    course=[session_dir(n) for n in SESSIONS],
    profile=EVAL_IDS,
)
