"""Sessions and transcripts that failed within their role's max_failures, listed, never analysed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cbtflow.report.inputs import ReportInputs


def _failure_lines(failed: Sequence[dict[str, Any]]) -> list[str]:
    """Transcripts left out because judging failed (within each judge's max_failures)."""
    if not failed:
        return []
    lines = [
        "## Judging failures (left out of every analysis)",
        "",
        f"{len(failed)} transcript(s) could not be scored after the re-asks; the n of each table above counts "
        "only scored transcripts.",
        "",
        "| judge | model | condition | seed | profile | reason | raw output |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {f['judge']} | {f['model']} | {f['condition']} | {f['seed']} | {f['profile_id']} | "
        f"{str(f['reason'])[:160].replace('|', '/')} | {f.get('raw_output') or '—'} |"
        for f in failed
    ]
    return lines + [""]


def section(inputs: ReportInputs) -> list[str]:
    return _failure_lines(inputs.stats.get("failures") or [])
