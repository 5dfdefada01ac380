"""The in-process backend: a local model (``local/<dir>``) run by transformers for the job,
in its own process or in its worker of the run's local model server (llm/local/forkserver.py),
batched ``generate`` and token scores (the default therapist backend)."""

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
        from cbtflow.llm.local import remote

        # A worker forked by the run's local model server where there is one (the job then
        # never imports torch itself), else this process; both run the same functions.
        self.local = remote.connect() or local

    def generate(self, endpoint, conversations, sampling, seeds, *, concurrency, on_reply, tolerate_failures):
        return self.local.generate_batch(endpoint, conversations, sampling, batch_seed(seeds))

    def score(self, endpoint, conversations, candidates, prefix):
        return self.local.score_distributions(endpoint, conversations, candidates, prefix)
