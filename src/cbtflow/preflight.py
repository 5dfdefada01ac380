"""Before any job runs: does every API role have its key?

A long run that fails at its first paid call hours in wastes a queue slot and money;
this check names the role, the model and the environment variable instead. It reads only
whether the variable is set, never its value.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from typing import Any

from cbtflow.config import api_models, field_of
from cbtflow.llm.endpoint import Endpoint


def _failing(roles: dict[str, dict[str, Any]], probe: Callable[[Any, dict[str, Any]], Any]) -> list[tuple[str, dict]]:
    """The roles for which ``probe(litellm, role)`` raises or returns False. litellm takes
    seconds to import, so it is imported only when there is a role to probe."""
    if not roles:
        return []
    from cbtflow.llm.api import _litellm

    litellm, failing = _litellm(), []
    for where, role in roles.items():
        try:
            ok = probe(litellm, role) is not False
        except Exception:
            ok = False
        if not ok:
            failing.append((where, role))
    return failing


def called_models(config: dict[str, Any], roles: Collection[str] | None = None) -> dict[str, dict[str, Any]]:
    """The API models (fallbacks included) of the ``roles`` a run calls, by config field
    (``roles.patient``, ``judges.gemini``, ...); all of them when ``roles`` is None."""
    models = api_models(config)
    if roles is None:
        return models
    return {where: role for where, role in models.items() if where.split(".fallbacks[")[0] in roles}


def preflight(
    config: dict[str, Any], roles: Collection[str] | None = None, environ: dict[str, str] | None = None
) -> list[str]:
    """Every problem that would stop a paid run after it started, for the ``roles`` the jobs
    to run call (the workflow passes them: a run that calls no model checks nothing)."""
    return (
        unknown_providers(config, roles) + unpriced_under_budget(config, roles) + missing_keys(config, environ, roles)
    )


def unknown_providers(config: dict[str, Any], roles: Collection[str] | None = None) -> list[str]:
    """API roles whose model litellm cannot route; config validation has already checked the
    provider prefix without importing litellm."""
    failing = _failing(
        called_models(config, roles),
        lambda litellm, role: litellm.get_llm_provider(model=role["model"], api_base=role.get("api_base")),
    )
    return [
        f"{field_of(where)}: '{role['model']}' names no provider litellm knows; use provider/model, e.g. "
        "openrouter/..., gemini/..., deepseek/..., openai/... with api_base"
        for where, role in failing
    ]


def unpriced_under_budget(config: dict[str, Any], roles: Collection[str] | None = None) -> list[str]:
    """With ``max_cost_usd`` set, every paid model needs a price: litellm's cost map or the
    role's ``prices:``. Without one its calls would count as free and the budget would
    never stop the run, so the run stops here instead. A model behind ``api_base`` (a
    server you run) has no per-token price and is exempt."""
    if config.get("max_cost_usd") is None:
        return []
    unpriced = {
        where: role
        for where, role in called_models(config, roles).items()
        if not role.get("api_base") and not _parent(config, where).get("prices")
    }

    def priced(litellm, role):
        info = litellm.get_model_info(role["model"])
        return bool(info.get("input_cost_per_token") or info.get("output_cost_per_token"))

    problems = []
    for where, role in _failing(unpriced, priced):
        owner = where.split(".fallbacks[")[0]
        problems.append(
            f"config.{owner}: {role['model']} has no known price and max_cost_usd is set, so its calls "
            "could not count against the budget; add prices: {input_per_mtok: <USD>, output_per_mtok: "
            f"<USD>}} (USD per million tokens) to config.{owner}"
        )
    return problems


def _parent(config: dict[str, Any], where: str) -> dict[str, Any]:
    """The role a (fallback) field belongs to: its ``prices`` cover its fallbacks too."""
    section, name = where.split(".fallbacks[")[0].split(".", 1)
    return config[section][name]


def missing_keys(
    config: dict[str, Any], environ: dict[str, str] | None = None, roles: Collection[str] | None = None
) -> list[str]:
    environ = os.environ if environ is None else environ
    problems = []
    for where, role in called_models(config, roles).items():
        endpoint = Endpoint(model=role["model"], api_base=role.get("api_base"))
        variable = endpoint.key_env
        if variable and not environ.get(variable):
            problems.append(
                f"{where} uses {role['model']}, which needs the environment variable {variable}; "
                f"export {variable}=... before running"
            )
    return problems
