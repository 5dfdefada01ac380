"""The API backend: a model by litellm provider string (``openrouter/...``, ``gemini/...``),
with retries and fallbacks; every call is paid, so the client checks the budget first."""

from __future__ import annotations

from cbtflow.llm.backends import Backend, register


@register
class Litellm(Backend):
    name = "litellm"
    order = 90  # whatever no other backend serves
    paid = True

    @classmethod
    def serves(cls, endpoint):
        return not endpoint.is_local and not endpoint.is_scripted

    def __init__(self) -> None:
        from cbtflow.llm import api

        self.api = api

    def generate(self, endpoint, conversations, sampling, seeds, *, concurrency, on_reply, tolerate_failures):
        return self.api.complete_many(
            endpoint, conversations, sampling, seeds, concurrency, on_reply, tolerate_failures
        )
