"""Per-job usage accounting: calls, cache hits, tokens, seconds and cost per model.

Each calling rule writes its log as a declared output so the report can sum the cost of
every stage; nothing here knows about secrets or prompts.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cbtflow.io import write_json

# cached_prompt_tokens: the part of prompt_tokens not encoded again (the local backend's KV
# reuse across turns, a provider's prompt cache, vLLM's prefix cache), billed at the cached
# price where a provider has one. cost_usd_estimated: the part of cost_usd computed from the
# config's `prices:` rather than litellm's price map.
FIELDS = (
    "calls",
    "cache_hits",
    "prompt_tokens",
    "cached_prompt_tokens",
    "completion_tokens",
    "seconds",
    "cost_usd",
    "cost_usd_estimated",
)


def token_cost(
    prices: dict[str, float], prompt_tokens: int, completion_tokens: int, cached_prompt_tokens: int = 0
) -> float:
    """USD for a call at a role's configured ``prices`` (per million tokens). Cached prompt
    tokens (part of ``prompt_tokens``) cost ``cached_input_per_mtok`` where it is given, and
    the full input price where not, so a missing cache price never lowers a cost."""
    cached = min(int(cached_prompt_tokens), int(prompt_tokens))
    cached_price = prices.get("cached_input_per_mtok", prices["input_per_mtok"])
    return (
        (prompt_tokens - cached) * prices["input_per_mtok"]
        + cached * cached_price
        + completion_tokens * prices["output_per_mtok"]
    ) / 1e6


def runs_as_labels(runs_as: Mapping[str, Mapping[str, int]], model: str | None = None) -> list[str]:
    """The distinct ways one model's local replies were computed (every model's when
    ``model`` is None), from a ``UsageLog.runs_as`` or a usage file's ``runs_as``."""
    chosen = [runs_as.get(model, {})] if model is not None else list(runs_as.values())
    return sorted({label for counts in chosen for label in counts})


class UsageLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_model: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(FIELDS, 0))
        # How a local model's replies were computed ("int4 on cpu"), counted per model, cache
        # hits included (a hit carries the label of the call that made it): `precision: auto`
        # resolves per machine, so the declared precision alone does not say what ran.
        self.runs_as: dict[str, Counter] = defaultdict(Counter)

    def record(
        self,
        model: str,
        *,
        cached: bool,
        prompt_tokens: int = 0,
        cached_prompt_tokens: int = 0,
        completion_tokens: int = 0,
        seconds: float = 0.0,
        cost_usd: float = 0.0,
        estimated: bool = False,
        runs_as: str | None = None,
    ) -> None:
        with self._lock:
            if runs_as:
                self.runs_as[model][runs_as] += 1
            row = self.by_model[model]
            if cached:
                row["cache_hits"] += 1
                return
            row["calls"] += 1
            row["prompt_tokens"] += int(prompt_tokens)
            row["cached_prompt_tokens"] += int(cached_prompt_tokens)
            row["completion_tokens"] += int(completion_tokens)
            row["seconds"] += float(seconds)
            row["cost_usd"] += float(cost_usd or 0.0)
            if estimated:
                row["cost_usd_estimated"] += float(cost_usd or 0.0)

    def totals(self) -> dict[str, float]:
        out = dict.fromkeys(FIELDS, 0)
        for row in self.by_model.values():
            for key in FIELDS:
                out[key] += row[key]
        return out

    def as_dict(self, stage: str, job: dict[str, Any]) -> dict[str, Any]:
        return {
            "stage": stage,
            "job": job,
            "by_model": {k: dict(v) for k, v in sorted(self.by_model.items())},
            "totals": self.totals(),
            "runs_as": {k: dict(sorted(v.items())) for k, v in sorted(self.runs_as.items())},
        }

    def write(self, path: str | Path, stage: str, job: dict[str, Any]) -> None:
        write_json(path, self.as_dict(stage, job))
