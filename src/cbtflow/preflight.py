"""Before any job runs: does every API role have its key?

A long run that fails at its first paid call hours in wastes a queue slot and money;
this check names the role, the model and the environment variable instead. It reads only
whether the variable is set, never its value.
"""

from __future__ import annotations

import os
from typing import Any

from cbtflow.llm.endpoint import Endpoint


def roles(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every model a run may call, by where it is configured (fallbacks included)."""
    out = {"roles.generator": config["roles"]["generator"], "roles.patient": config["roles"]["patient"]}
    out.update({f"judges.{name}": judge for name, judge in config["judges"].items() if judge["kind"] == "llm"})
    for where, role in list(out.items()):
        for i, fallback in enumerate(role.get("fallbacks") or []):
            out[f"{where}.fallbacks[{i}]"] = fallback if isinstance(fallback, dict) else {"model": fallback}
    return out


def unknown_providers(config: dict[str, Any]) -> list[str]:
    """API roles whose provider litellm does not know (imports litellm only if there are any)."""
    api_roles = {where: role for where, role in roles(config).items() if not role["model"].startswith("local/")}
    if not api_roles:
        return []
    from cbtflow.llm.api import _litellm

    litellm = _litellm()
    problems = []
    for where, role in api_roles.items():
        try:
            litellm.get_llm_provider(model=role["model"], api_base=role.get("api_base"))
        except Exception:
            field = f"config.{where}" if where.endswith("]") else f"config.{where}.model"  # a fallback, or a role
            problems.append(f"{field}: '{role['model']}' names no provider litellm knows; use "
                            "provider/model, e.g. openrouter/..., gemini/..., deepseek/..., openai/... with api_base")
    return problems


def missing_keys(config: dict[str, Any], environ: dict[str, str] | None = None) -> list[str]:
    environ = os.environ if environ is None else environ
    problems = []
    for where, role in roles(config).items():
        endpoint = Endpoint(model=role["model"], api_base=role.get("api_base"))
        variable = endpoint.key_env
        if variable and not environ.get(variable):
            problems.append(f"{where} uses {role['model']}, which needs the environment variable {variable}; "
                            f"export {variable}=... before running")
    return problems
