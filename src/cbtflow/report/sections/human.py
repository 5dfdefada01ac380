"""Agreement of each judge with human raters (ICC on the total, weighted kappa per item)."""

from __future__ import annotations

from typing import Any

from cbtflow.report.format import ci as _ci
from cbtflow.report.format import fmt as _fmt
from cbtflow.report.inputs import ReportInputs


def _human_lines(agreement: dict[str, Any]) -> list[str]:
    """Each judge against each human rater (never pooled)."""
    if not agreement.get("ran"):
        return []
    lines = [
        "## Judge–human agreement (each judge apart)",
        "",
        "| judge | human rater | n transcripts | ICC(A,1) total [95% CI] | weighted κ per item: mean (min–max) |",
        "|---|---|---|---|---|",
    ]
    for judge, per in agreement["by_judge"].items():
        for human, entry in per.items():
            total = entry["total"]
            icc_text = (
                f"{_fmt(total['icc2_single']['icc'])} {_ci(total['icc2_single']['ci95'])}"
                if total.get("ran")
                else f"not run: {total['reason']}"
            )
            kappas = [k["kappa"] for k in entry["kappa_quadratic"].values() if k["kappa"] is not None]
            kappa_text = (
                f"{_fmt(sum(kappas) / len(kappas))} ({_fmt(min(kappas))}–{_fmt(max(kappas))})" if kappas else "—"
            )
            lines.append(f"| {judge} | {human} | {total.get('n_transcripts', '—')} | {icc_text} | {kappa_text} |")
    return lines + [""]


def section(inputs: ReportInputs) -> list[str]:
    return _human_lines(inputs.stats.get("human_agreement") or {})
