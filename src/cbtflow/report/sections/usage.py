"""Calls, tokens and cost per stage, from the jobs' usage logs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cbtflow.llm.usage import runs_as_labels
from cbtflow.report.inputs import ReportInputs
from cbtflow.report.tables import markdown_table


def usage_by_stage(usage_logs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The jobs' usage logs summed per stage; ``runs_as`` counts the local replies by how
    they were computed (``int4 on cpu``), over the stage's models, and ``precision_mixes``
    names the jobs compared with each other that were computed differently."""
    out: dict[str, dict[str, Any]] = {}
    for log in usage_logs:
        row = out.setdefault(log["stage"], {"runs_as": {}})
        for key, value in log["totals"].items():
            row[key] = row.get(key, 0) + value
        for counts in (log.get("runs_as") or {}).values():
            for label, n in counts.items():
                row["runs_as"][label] = row["runs_as"].get(label, 0) + n
    for stage, lines in precision_mixes(usage_logs).items():
        out[stage]["precision_mixes"] = lines
    return out


# The jobs whose replies are compared with each other: a model's sessions across conditions
# and seeds (the contrast), a judge's scores across every session it judged.
COMPARED = {"simulate": "model", "judge": "judge"}


def precision_mixes(usage_logs: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """Per stage, each model (simulate) or judge (judge) whose jobs' local replies were
    computed at different precisions or devices: ``auto`` resolves per machine and the call
    cache keys the declared precision, so a run spread over machines, or a cache carried
    from another one, can mix them, and a condition contrast would then mix precision with
    condition."""
    groups: dict[tuple[str, str], dict[tuple[str, ...], list[str]]] = {}
    for log in usage_logs:
        field = COMPARED.get(log["stage"])
        labels = tuple(runs_as_labels(log.get("runs_as") or {}))
        if field is None or not labels:
            continue
        job = log.get("job") or {}
        where = "/".join(str(job[k]) for k in ("model", "condition", "seed", "session") if k in job)
        groups.setdefault((log["stage"], str(job.get(field))), {}).setdefault(labels, []).append(where)
    out: dict[str, list[str]] = {}
    for (stage, name), by_labels in sorted(groups.items()):
        if len(by_labels) > 1:
            parts = "; ".join(
                f"{' + '.join(labels)} in {len(jobs)} job{'s' * (len(jobs) != 1)} ({jobs[0]}, ...)"
                for labels, jobs in sorted(by_labels.items())
            )
            out.setdefault(stage, []).append(f"{stage} jobs of {COMPARED[stage]} `{name}` ran differently: {parts}")
    return out


def runs_as_text(counts: dict[str, int]) -> str:
    """``int4 on cpu (120)``, most replies first; a dash where no local model answered."""
    return ", ".join(f"{label} ({n})" for label, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "–"


def section(inputs: ReportInputs) -> list[str]:
    header = ["stage", "calls", "cache hits", "prompt tokens", "of which reused", "completion tokens", "seconds"]
    rows = [
        [s, int(u["calls"]), int(u["cache_hits"]), int(u["prompt_tokens"]), int(u.get("cached_prompt_tokens", 0))]
        + [int(u["completion_tokens"]), f"{u['seconds']:.1f}", f"{u['cost_usd']:.4f}"]
        + [f"{u.get('cost_usd_estimated', 0.0):.4f}", runs_as_text(u.get("runs_as") or {})]
        for s, u in inputs.usage.items()
    ]
    return [
        "## Calls, tokens and cost per stage",
        "",
        "Cost from litellm's price map, or estimated from the config's `prices:` (token counts × price) where "
        "a role names them; 'of which estimated' says how much of it is such an estimate. Cache hits are calls "
        "answered from the call cache; reused prompt tokens are the part of the prompts not encoded again "
        "(the local backend's KV state from the conversation's previous turn, or a provider's prompt cache, "
        "billed at its cached price). Local replies counts a local model's replies (cache hits included) by "
        "the precision and device that computed them: `precision: auto` resolves per machine "
        "(llm/local/precision.py), so this, not the config, says what ran.",
        "",
        *markdown_table([*header, "cost USD", "of which estimated", "local replies"], rows),
        "",
    ]
