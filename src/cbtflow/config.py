"""Validate an experiment config before any job runs, with messages that name the field.

The JSON Schema (``workflow/schemas/config.schema.yaml``) checks shape and types; the
cross-references a schema cannot express (a model's base must be declared, a local role
must name a declared base) are checked here.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import jsonschema
import yaml

from cbtflow.conditions import BASELINE, CONTRASTS, TUNED, contrasts_among
from cbtflow.conditions import TABLE as CONDITION_TABLE
from cbtflow.instrument import instrument_file, lexicon_file, load_rubric
from cbtflow.judge import run as judging
from cbtflow.judge.kinds import RunFacts, judge_schema, kind_of
from cbtflow.llm.backends import Backend, backend_class, backend_name, therapist_backends
from cbtflow.llm.endpoint import LOCAL_PREFIX, SCRIPTED_PREFIX, Endpoint
from cbtflow.packaged import schema_path


class ConfigError(ValueError):
    pass


@cache
def load_schema(name: str) -> dict[str, Any]:
    """A schema from workflow/schemas. The config schema's ``$defs.judge`` is built from the
    registered judge kinds (cbtflow.judge.kinds): each kind declares its own fields."""
    path = schema_path(name)
    if not path.exists():
        raise FileNotFoundError(f"no schema {path}")
    schema = yaml.safe_load(path.read_text(encoding="utf-8"))
    if name == "config":
        schema["$defs"]["judge"] = judge_schema()
        schema["properties"]["therapist"]["properties"]["backend"]["enum"] = sorted(therapist_backends())
    return schema


def _properties_with_defaults(validator, properties, instance, schema):
    """JSON Schema's ``properties``, also filling in each absent property's ``default``."""
    if isinstance(instance, dict):
        for name, subschema in properties.items():
            if isinstance(subschema, dict) and "default" in subschema and name not in instance:
                instance[name] = copy.deepcopy(subschema["default"])
    yield from jsonschema.Draft202012Validator.VALIDATORS["properties"](validator, properties, instance, schema)


# Validates and fills defaults in one pass (defaults inside if/then apply only where `if` holds).
DefaultingValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"properties": _properties_with_defaults}
)


def schema_errors(
    instance: Any, schema: dict[str, Any], root: str = "config", fill_defaults: bool = False
) -> list[str]:
    """Every schema violation, each prefixed with its field path. With ``fill_defaults``,
    absent properties get the schema's ``default`` values written into ``instance``."""
    validator = (DefaultingValidator if fill_defaults else jsonschema.Draft202012Validator)(schema)
    messages = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        where = root + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        if error.validator == "additionalProperties":
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            messages.append(f"{where}: unknown key(s) {extra}; allowed: {sorted(error.schema.get('properties', {}))}")
        else:
            messages.append(f"{where}: {error.message}")
    return messages


def local_base(model: str) -> str | None:
    """The base name of a ``local/<base>`` model string; None for an API model."""
    return model[len(LOCAL_PREFIX) :] if model.startswith(LOCAL_PREFIX) else None


def model_roles(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every configured role that calls a model, by its config field: the generator, the
    patient and each LLM judge (the lexicon judge calls none; the therapist is per model)."""
    roles = {f"roles.{name}": role for name, role in config["roles"].items()}
    roles.update({f"judges.{name}": judge for name, judge in config["judges"].items() if calls_model(judge)})
    return roles


def api_models(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every model a run may call, by the field it is configured in (fallbacks included)."""
    out = model_roles(config)
    for where, role in list(out.items()):
        for i, fallback in enumerate(role.get("fallbacks") or []):
            out[f"{where}.fallbacks[{i}]"] = fallback if isinstance(fallback, dict) else {"model": fallback}
    return {where: role for where, role in out.items() if is_api_role(role)}


def field_of(where: str) -> str:
    return f"config.{where}" if where.endswith("]") else f"config.{where}.model"  # a fallback, or a role


def _model_problems(config: dict[str, Any]) -> list[str]:
    """What the backend that would answer each configured API model says about it."""
    problems = []
    for where, role in api_models(config).items():
        endpoint = Endpoint(model=role["model"], api_base=role.get("api_base"))
        problems += [f"{field_of(where)}: {p}" for p in backend_class(backend_name(endpoint)).model_problems(role)]
    return problems


def therapist_backend(config: dict[str, Any]) -> type[Backend]:
    """The backend that runs the local therapist (``therapist.backend``)."""
    return backend_class(config["therapist"]["backend"])


def with_schema_defaults(settings: dict[str, Any], *path: str) -> dict[str, Any]:
    """A copy of ``settings`` (the config object at ``path``: ``"courses"``; ``"validation",
    "thresholds"``; ``"judges", "*"`` for any judge) with the schema's defaults filled in, for
    library entry points called outside a validated config (a notebook, a test): the
    defaults stay written once, in the schema."""
    schema = load_schema("config")
    sub = schema
    for key in path:
        sub = sub["additionalProperties"] if key == "*" else sub["properties"][key]
    filled = copy.deepcopy(settings)
    for _ in DefaultingValidator({**sub, "$defs": schema["$defs"]}).iter_errors(filled):
        pass  # only the filling matters here: the whole config is validated elsewhere
    return filled


def validate_config(config: dict[str, Any]) -> None:
    """Fill in the schema's defaults, in place, then raise ConfigError listing every
    problem, each prefixed with its field path. Every reader of the config (rules, scripts,
    preflight, estimate) sees the defaults, so none restates them."""
    problems = schema_errors(config, load_schema("config"), fill_defaults=True)
    if not problems:
        bases = config["bases"]
        for name, model in config["models"].items():
            if model["base"] not in bases:
                problems.append(
                    f"config.models.{name}.base: '{model['base']}' is not declared under bases "
                    f"(declared: {sorted(bases)})"
                )
        for where, role in model_roles(config).items():
            if "model" not in role:
                problems.append(f"config.{where}: needs a 'model'")
                continue
            base = local_base(role["model"])
            if base is not None and base not in bases:
                problems.append(f"config.{where}.model: local model '{base}' is not declared under bases")
        if any(CONDITION_TABLE[c].weights == "external" for c in config["conditions"]):
            for name, model in config["models"].items():
                if not model.get("external"):
                    problems.append(f"config.models.{name}.external: the 'external' condition needs a checkpoint here")
        primary = config["report"]["primary_judge"]
        if primary not in config["judges"]:
            problems.append(
                f"config.report.primary_judge: '{primary}' is not one of the judges {sorted(config['judges'])}"
            )
        problems += therapist_backend(config).config_problems(config) + _model_problems(config)
        problems += _instrument_problems(config)
        if TUNED in config["conditions"] and BASELINE not in config["conditions"]:
            problems.append(f"config.conditions: the paired analysis needs '{BASELINE}' beside '{TUNED}'")
        elif not contrasts_among(config["conditions"]):
            problems.append(
                f"config.conditions: {config['conditions']} contains no pair the analysis compares "
                f"(pairs: {[f'{a} vs {b}' for a, b in CONTRASTS]})"
            )
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def calls_model(role: dict[str, Any]) -> bool:
    """A role calls a model; a judge only when its kind does (cbtflow.judge.kinds)."""
    return "kind" not in role or kind_of(role).calls_model


def is_api_role(role: dict[str, Any]) -> bool:
    """A role (or judge, or fallback) answered by an API model: neither local nor scripted."""
    model = str(role.get("model", ""))
    return calls_model(role) and bool(model) and local_base(model) is None and not model.startswith(SCRIPTED_PREFIX)


def is_local_role(role: dict[str, Any]) -> bool:
    """A role (or judge) that runs a local model in the job's own process or server."""
    return calls_model(role) and local_base(str(role.get("model", ""))) is not None


def instrument(config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The instrument the judges score (``judging.instrument``): its file, as the workflow
    sees it, and its content in the configured variant."""
    path = instrument_file(config["judging"]["instrument"])
    return path, load_rubric(judging.packaged(path), config["judging"]["rubric_variant"])


def run_facts(config: dict[str, Any]) -> RunFacts:
    """What judges' inputs depend on beyond their own settings."""
    path, rubric = instrument(config)
    lexicon = lexicon_file(path, rubric)
    return RunFacts(
        crises=config["profiles"]["crisis"]["share"] > 0,
        safety=bool(config["profiles"]["eval_risk"]),
        instrument=path,
        lexicon=lexicon,
    )


def _instrument_problems(config: dict[str, Any]) -> list[str]:
    """An instrument that exists and loads, its default variant filled in (in place), and
    the judges and risk profiles it can serve."""
    where = "config.judging.instrument"
    path = instrument_file(config["judging"]["instrument"])
    try:
        raw = load_rubric(judging.packaged(path))
    except ValueError as err:
        return [f"{where}: {err} (a packaged name, e.g. ctrs, or a rubric file's path)"]
    config["judging"].setdefault("rubric_variant", raw.get("default_variant") or raw["name"])
    try:
        _, rubric = instrument(config)
    except ValueError as err:
        return [f"config.{err}"]
    problems = []
    if config["profiles"]["eval_risk"] and not rubric.get("safety"):
        problems.append(
            f"config.profiles.eval_risk: the instrument {path} has no safety item to score risk profiles on"
        )
    facts = run_facts(config)
    for name, judge in config["judges"].items():
        try:
            kind_of(judge).reads(judge, facts)
        except ValueError as err:
            problems.append(f"config.judges.{name}: {err}")
    return problems
