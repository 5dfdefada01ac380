"""Calls, tokens and cost per stage, from the jobs' usage logs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cbtflow.report.inputs import ReportInputs
from cbtflow.report.tables import markdown_table


def usage_by_stage(usage_logs: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for log in usage_logs:
        row = out.setdefault(log["stage"], {})
        for key, value in log["totals"].items():
            row[key] = row.get(key, 0) + value
    return out


def section(inputs: ReportInputs) -> list[str]:
    header = ["stage", "calls", "cache hits", "prompt tokens", "of which reused", "completion tokens", "seconds"]
    rows = [
        [s, int(u["calls"]), int(u["cache_hits"]), int(u["prompt_tokens"]), int(u.get("cached_prompt_tokens", 0))]
        + [int(u["completion_tokens"]), f"{u['seconds']:.1f}", f"{u['cost_usd']:.4f}"]
        + [f"{u.get('cost_usd_estimated', 0.0):.4f}"]
        for s, u in inputs.usage.items()
    ]
    return [
        "## Calls, tokens and cost per stage",
        "",
        "Cost from litellm's price map, or estimated from the config's `prices:` (token counts × price) where "
        "a role names them; the last column says how much of it is such an estimate. Cache hits are calls "
        "answered from the call cache; reused prompt tokens are the part of the prompts not encoded again "
        "(the local backend's KV state from the conversation's previous turn, or a provider's prompt cache, "
        "billed at its cached price).",
        "",
        *markdown_table([*header, "cost USD", "of which estimated"], rows),
        "",
    ]
