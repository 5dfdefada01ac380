"""The API backend: a model by litellm provider string (``openrouter/...``, ``gemini/...``),
with retries and fallbacks; every call is paid, so the client checks the budget first."""

from __future__ import annotations

from functools import cache

from cbtflow.llm.backends import Backend, register
from cbtflow.packaged import RESOURCES

PROVIDERS_FILE = RESOURCES / "litellm_providers.txt"


@cache
def known_providers() -> frozenset[str]:
    """litellm's provider prefixes, read from a file: importing litellm takes seconds, and
    config validation runs on every ``snakemake`` start, dry runs included."""
    return frozenset(
        line.strip()
        for line in PROVIDERS_FILE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    )


@register
class Litellm(Backend):
    name = "litellm"
    order = 90  # whatever no other backend serves
    paid = True

    @classmethod
    def serves(cls, endpoint):
        return not endpoint.is_local and not endpoint.is_scripted

    @classmethod
    def model_problems(cls, role):
        provider = role["model"].split("/", 1)[0] if "/" in role["model"] else None
        if provider in known_providers():
            return []
        return [
            f"'{role['model']}' names no provider litellm knows; write provider/model, e.g. openrouter/..., "
            f"gemini/..., deepseek/..., openai/... with api_base (known providers: {PROVIDERS_FILE.name})"
        ]

    def __init__(self) -> None:
        from cbtflow.llm import api

        self.api = api

    def generate(self, endpoint, conversations, sampling, seeds, *, concurrency, on_reply, tolerate_failures):
        return self.api.complete_many(
            endpoint, conversations, sampling, seeds, concurrency, on_reply, tolerate_failures
        )
