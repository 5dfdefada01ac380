"""Model backends by name, each imported only when a call first needs it (as inspect_ai's
providers are): a run that uses only API models never imports torch, one that uses only
local models never imports litellm.

- ``transformers``: a local model (``local/<dir>``) in this process: batched ``generate``
  and token scores.
- ``vllm``: a local model behind an OpenAI-compatible server, started per job or shared
  per base (``therapist.backend: vllm``).
- ``litellm``: an API model by provider string (``openrouter/...``, ``gemini/...``), with
  retries and fallbacks.
- ``scripted``: replies computed from the conversation and seed, no model
  (``scripted/<name>``): fast workflow tests.

``Client`` (cache, usage, budget) sits in front of all of them; a backend only answers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from cbtflow.llm.endpoint import Endpoint
from cbtflow.llm.sampling import with_defaults

Messages = Sequence[dict[str, str]]
OnReply = Callable[[int, dict[str, Any]], None] | None


class Backend(Protocol):
    def generate(
        self,
        endpoint: Endpoint,
        conversations: Sequence[Messages],
        sampling: dict[str, Any],
        seeds: Sequence[int],
        *,
        concurrency: int,
        on_reply: OnReply,
        tolerate_failures: bool,
    ) -> list[dict[str, Any]]: ...

    def score(
        self, endpoint: Endpoint, conversations: Sequence[Messages], candidates: Sequence[str], prefix: str
    ) -> list[dict[str, Any]]: ...


_FACTORIES: dict[str, Callable[[], Backend]] = {}
_LOADED: dict[str, Backend] = {}


def register(name: str) -> Callable[[Callable[[], Backend]], Callable[[], Backend]]:
    """Register a backend factory under ``name``; the factory runs (and imports) on first use."""

    def decorate(factory: Callable[[], Backend]) -> Callable[[], Backend]:
        _FACTORIES[name] = factory
        return factory

    return decorate


def backend_name(endpoint: Endpoint) -> str:
    if endpoint.is_scripted:
        return "scripted"
    if endpoint.is_local:
        return "transformers" if endpoint.in_process else "vllm"
    return "litellm"


def get(name: str) -> Backend:
    if name not in _LOADED:
        if name not in _FACTORIES:
            raise ValueError(f"no backend {name!r} (registered: {', '.join(sorted(_FACTORIES))})")
        _LOADED[name] = _FACTORIES[name]()
    return _LOADED[name]


def for_endpoint(endpoint: Endpoint) -> Backend:
    return get(backend_name(endpoint))


def _batch_seed(seeds: Sequence[int]) -> int:
    """One torch seed for a local batch, derived from the calls' own seeds.

    Per-row seeds cannot be honoured inside one batched ``generate``; the call cache makes
    the first answer to each key the answer, so reruns stay identical.
    """
    return int(hashlib.sha256(",".join(map(str, seeds)).encode()).hexdigest()[:8], 16)


class _NoScores:
    def score(self, endpoint, conversations, candidates, prefix):
        raise ValueError(f"{endpoint.model}: token probabilities are only read from in-process local models")


class _Transformers:
    def __init__(self) -> None:
        from cbtflow.llm import local

        self.local = local

    def generate(self, endpoint, conversations, sampling, seeds, *, concurrency, on_reply, tolerate_failures):
        return self.local.generate_batch(endpoint, conversations, sampling, _batch_seed(seeds))

    def score(self, endpoint, conversations, candidates, prefix):
        return self.local.score_distributions(endpoint, conversations, candidates, prefix)


class _Litellm(_NoScores):
    def __init__(self) -> None:
        from cbtflow.llm import api

        self.api = api

    def generate(self, endpoint, conversations, sampling, seeds, *, concurrency, on_reply, tolerate_failures):
        return self.api.complete_many(
            endpoint, conversations, sampling, seeds, concurrency, on_reply, tolerate_failures
        )


class _Served(_Litellm):
    """A local model behind a job-scoped or shared server: every session of the batch at
    once, each reply recorded under the local model's name (its identity in transcripts)."""

    def generate(self, endpoint, conversations, sampling, seeds, *, concurrency, on_reply, tolerate_failures):
        def as_local(j: int, reply: dict[str, Any]) -> None:
            reply["model"] = endpoint.model
            if on_reply:
                on_reply(j, reply)

        served = endpoint.served(sampling)
        return self.api.complete_many(served, conversations, sampling, seeds, len(conversations), as_local)


class Scripted:
    """Deterministic stand-in replies, a pure function of the conversation and the seed:
    the workflow's wiring (cache, usage, gates, judging, statistics) runs in seconds, with
    no model. Replies vary with the turn so that the near-duplicate gate passes; scores
    favour the middle of the candidates. Never use it to answer the research question."""

    OPENINGS = (
        "I hear that",
        "It sounds like",
        "Let us look at how",
        "Thank you for telling me that",
        "I wonder whether",
        "Can we write down that",
        "What goes through your mind when",
        "Last week you noticed that",
    )
    SUBJECTS = (
        "the thought about work keeps coming back",
        "your mood drops in the evenings",
        "the belief that you are failing feels true",
        "you avoid calling your friends",
        "sleep has been hard this week",
        "the worry grows when you are alone",
        "you criticise yourself after meetings",
        "small tasks feel heavy right now",
    )

    def _text(self, conversation: Messages, seed: int, max_tokens: int) -> str:
        digest = hashlib.sha256(f"{seed}|{len(conversation)}|{conversation[-1]['content']}".encode()).digest()
        words = f"{self.OPENINGS[digest[0] % 8]} {self.SUBJECTS[digest[1] % 8]} (turn {len(conversation)}).".split()
        return " ".join(words[: max(1, int(max_tokens))])

    def generate(self, endpoint, conversations, sampling, seeds, *, concurrency, on_reply, tolerate_failures):
        replies = []
        for j, (conversation, seed) in enumerate(zip(conversations, seeds)):
            text = self._text(conversation, seed, with_defaults(sampling)["max_tokens"])
            reply = {
                "text": text,
                "prompt_tokens": sum(len(m["content"].split()) for m in conversation),
                "completion_tokens": len(text.split()),
                "seconds": 0.0,
                "cost_usd": 0.0,
                "model": endpoint.model,
            }
            replies.append(reply)
            if on_reply:
                on_reply(j, reply)
        return replies

    def score(self, endpoint, conversations, candidates, prefix):
        out = []
        for conversation in conversations:
            digest = hashlib.sha256(conversation[-1]["content"].encode()).digest()
            centre = (len(candidates) - 1) / 2 + (digest[0] % 3 - 1)
            weights = [1.0 / (1.0 + abs(i - centre)) for i in range(len(candidates))]
            probs = [w / sum(weights) for w in weights]
            out.append({"probs": probs, "mass": 1.0, "prompt_tokens": len(conversation[-1]["content"].split())})
        return out


register("transformers")(_Transformers)
register("litellm")(_Litellm)
register("vllm")(_Served)
register("scripted")(Scripted)
