"""``Client``: the call cache, usage log and budget in front of every backend.

``chat(endpoint, messages, sampling, seed)`` answers from the cache when it can and from the
endpoint's backend (``llm/backends/``) when it cannot, so a rerun with the cache kept
costs no calls whichever the backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cbtflow.llm import backends
from cbtflow.llm.cache import CallCache, call_key
from cbtflow.llm.endpoint import Endpoint
from cbtflow.llm.usage import UsageLog, token_cost

Messages = Sequence[dict[str, str]]


class BudgetExceeded(RuntimeError):
    """The run has spent its ``max_cost_usd``; nothing already paid for is lost."""


class Client:
    """Cache + usage accounting + budget in front of the local and API backends."""

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        usage: UsageLog | None = None,
        concurrency: int = 8,
        budget_usd: float | None = None,
        concurrency_by_model: dict[str, int] | None = None,
        prices_by_model: dict[str, dict[str, float]] | None = None,
    ):
        self.cache = CallCache(cache_dir) if cache_dir else None
        self.usage = usage or UsageLog()
        self.concurrency = concurrency  # API calls in flight at once, unless a role sets its own
        self.concurrency_by_model = dict(concurrency_by_model or {})
        self.budget_usd = budget_usd
        self.prices_by_model = dict(prices_by_model or {})  # config `prices:` (USD per million tokens)

    def check_budget(self) -> None:
        """Stop before a paid call once the shared cache records ``budget_usd`` spent.

        Every job writes each reply's cost to the same cache as it returns, so the sum is
        the whole run's spend, across jobs and reruns.
        """
        if self.budget_usd is None:
            return
        spent = self.cache.total_cost() if self.cache else self.usage.totals()["cost_usd"]
        if spent >= self.budget_usd:
            raise BudgetExceeded(
                f"spent {spent:.4f} USD of max_cost_usd = {self.budget_usd}; raise max_cost_usd "
                "in config to continue (every completed call is cached and will not be paid again)"
            )

    def chat(self, endpoint: Endpoint, messages: Messages, sampling: dict[str, Any], seed: int) -> dict[str, Any]:
        return self.chat_batch(endpoint, [messages], sampling, [seed])[0]

    def chat_batch(
        self,
        endpoint: Endpoint,
        conversations: Sequence[Messages],
        sampling: dict[str, Any],
        seeds: Sequence[int],
        tolerate_failures: bool = False,
    ) -> list[dict[str, Any]]:
        """Answer every conversation; cache hits are free, misses run as one batch. With
        ``tolerate_failures`` an API call that still fails gives ``{"error": ...}`` (never
        cached) instead of failing the batch."""
        if len(conversations) != len(seeds):
            raise ValueError("chat_batch needs one seed per conversation")
        identity = endpoint.identity()
        keys = [
            call_key(identity, {"kind": "chat", "messages": list(conv), "sampling": sampling, "seed": int(seed)})
            for conv, seed in zip(conversations, seeds)
        ]
        replies: list[dict[str, Any] | None] = [self._lookup(endpoint, key) for key in keys]
        missing = [i for i, reply in enumerate(replies) if reply is None]
        if missing:
            # A local batch is stored together, in one transaction; each paid API reply the moment it returns.
            on_reply = (
                None if endpoint.in_process else (lambda j, reply: self._store(endpoint, [keys[missing[j]]], [reply]))
            )
            fresh = self.generate(
                [conversations[i] for i in missing],
                endpoint,
                sampling,
                [int(seeds[i]) for i in missing],
                on_reply=on_reply,
                **({"tolerate_failures": True} if tolerate_failures else {}),
            )
            if endpoint.in_process:
                self._store(endpoint, [keys[i] for i in missing], fresh)
            for i, reply in zip(missing, fresh):
                replies[i] = {**reply, "cached": False}
        return replies  # type: ignore[return-value]

    def generate(
        self,
        conversations: Sequence[Messages],
        endpoint: Endpoint,
        sampling: dict[str, Any],
        seeds: Sequence[int],
        on_reply=None,
        tolerate_failures: bool = False,
    ) -> list[dict[str, Any]]:
        """Uncached call to the endpoint's backend (``llm/backends/``): one local batch,
        or concurrent API calls, each paid one checked against the budget first."""
        backend = backends.for_endpoint(endpoint)
        if backend.paid:
            self.check_budget()
        return backend.generate(
            endpoint,
            conversations,
            sampling,
            seeds,
            concurrency=self.concurrency_by_model.get(endpoint.model, self.concurrency),
            on_reply=on_reply,
            tolerate_failures=tolerate_failures,
        )

    def score(
        self,
        endpoint: Endpoint,
        conversations: Sequence[Messages],
        candidates: Sequence[str],
        assistant_prefix: str = "",
    ) -> list[dict[str, Any]]:
        """Probability over ``candidates`` as the next token (local models only; G-Eval)."""
        backend = backends.for_endpoint(endpoint)
        identity = endpoint.identity()
        keys = [
            call_key(
                identity,
                {"kind": "score", "messages": list(conv), "candidates": list(candidates), "prefix": assistant_prefix},
            )
            for conv in conversations
        ]
        results = [self._lookup(endpoint, key) for key in keys]
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            fresh = backend.score(endpoint, [conversations[i] for i in missing], candidates, assistant_prefix)
            self._store(endpoint, [keys[i] for i in missing], fresh)
            for i, reply in zip(missing, fresh):
                results[i] = {**reply, "cached": False}
        return results  # type: ignore[return-value]

    def _lookup(self, endpoint: Endpoint, key: str) -> dict[str, Any] | None:
        hit = self.cache.get(key) if self.cache else None
        if hit is not None:
            self.usage.record(hit.get("model", endpoint.model), cached=True, runs_as=hit.get("runs_as"))
            return {**hit, "cached": True}
        return None

    def _price(self, model: str, reply: dict[str, Any]) -> None:
        """A paid reply's cost: the role's configured ``prices`` when it has them (an
        estimate from the token counts), else what litellm computed from its price map."""
        prices = self.prices_by_model.get(model)
        if prices:
            reply["cost_usd"] = token_cost(
                prices,
                reply.get("prompt_tokens", 0),
                reply.get("completion_tokens", 0),
                reply.get("cached_prompt_tokens", 0),
            )
            reply["cost_source"] = "config prices"
        elif reply.get("cost_usd"):
            reply["cost_source"] = "litellm price map"

    def _store(self, endpoint: Endpoint, keys: Sequence[str], replies: Sequence[dict[str, Any]]) -> None:
        """Price, cache a batch the moment it returns (all or nothing), then count it."""
        answered_by = [reply.get("model", endpoint.model) for reply in replies]  # a fallback, or the endpoint
        for model, reply in zip(answered_by, replies):
            self._price(model, reply)
        if self.cache:
            self.cache.put_many(list(zip(keys, answered_by, replies)))
        for model, reply in zip(answered_by, replies):
            self.usage.record(
                model,
                cached=False,
                prompt_tokens=reply.get("prompt_tokens", 0),
                cached_prompt_tokens=reply.get("cached_prompt_tokens", 0),
                completion_tokens=reply.get("completion_tokens", 0),
                seconds=reply.get("seconds", 0.0),
                cost_usd=reply.get("cost_usd", 0.0),
                estimated=reply.get("cost_source") == "config prices",
                runs_as=reply.get("runs_as"),
            )
