"""Judge reliability: across judges and across each judge's repeats."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cbtflow.report.format import fmt as _fmt
from cbtflow.report.format import ordered
from cbtflow.report.inputs import ReportInputs


def _icc_lines(title: str, block: dict[str, Any], item_order: Sequence[str]) -> list[str]:
    if not block or block.get("ran") is False:
        return [f"{title}: not run ({block.get('reason', 'no data')}).", ""]
    lines = [f"{title}:", "", "| item | ICC(2,1) [95% CI] | ICC(2,k) | n transcripts |", "|---|---|---|---|"]
    order = ordered(block, [*item_order, "total"])
    for item in order:
        r = block[item]
        if not r.get("ran"):
            lines.append(f"| {item} | not run: {r['reason']} | | |")
            continue
        single, ci = r["icc2_single"], r["icc2_single"]["ci95"]
        lines.append(
            f"| {item} | {_fmt(single['icc'])} [{_fmt(ci[0])}, {_fmt(ci[1])}] | {_fmt(r['icc2_mean']['icc'])} | "
            f"{r['n_transcripts']} |"
        )
    return lines + [""]


def section(inputs: ReportInputs) -> list[str]:
    stats, order = inputs.stats, inputs.item_order
    lines = ["## Judge reliability (ICC(2,1), two-way random, absolute agreement)", ""]
    lines += _icc_lines(
        "Across judges (consensus scores; which judge the main analysis uses is stated above)",
        stats.get("reliability_across_judges", {}),
        order,
    )
    for judge, result in stats["judges"].items():
        lines += _icc_lines(f"Across repeats of judge `{judge}`", result.get("reliability_across_repeats", {}), order)
    return lines
