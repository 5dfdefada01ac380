"""The in-process backend: a local model (``local/<dir>``) run by transformers in the job's
own process, batched ``generate`` and token scores (the default therapist backend)."""

from __future__ import annotations

from cbtflow.llm.backends import Backend, batch_seed, register


@register
class Transformers(Backend):
    name = "transformers"
    order = 10
    therapist = True

    @classmethod
    def serves(cls, endpoint):
        return endpoint.in_process

    def __init__(self) -> None:
        from cbtflow.llm import local

        self.local = local

    def generate(self, endpoint, conversations, sampling, seeds, *, concurrency, on_reply, tolerate_failures):
        return self.local.generate_batch(endpoint, conversations, sampling, batch_seed(seeds))

    def score(self, endpoint, conversations, candidates, prefix):
        return self.local.score_distributions(endpoint, conversations, candidates, prefix)
