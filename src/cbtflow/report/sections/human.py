"""Agreement of each judge with human raters (ICC on the total, weighted kappa per item), and
of the raters with each other: the human ceiling a judge's agreement is read against."""

from __future__ import annotations

from typing import Any

from cbtflow.report.format import ci as _ci
from cbtflow.report.format import fmt as _fmt
from cbtflow.report.inputs import ReportInputs


def _row(first: str, second: str, entry: dict[str, Any]) -> str:
    total = entry["total"]
    icc_text = (
        f"{_fmt(total['icc2_single']['icc'])} {_ci(total['icc2_single']['ci95'])}"
        if total.get("ran")
        else f"not run: {total['reason']}"
    )
    kappas = [k["kappa"] for k in entry["kappa_quadratic"].values() if k["kappa"] is not None]
    kappa_text = f"{_fmt(sum(kappas) / len(kappas))} ({_fmt(min(kappas))}–{_fmt(max(kappas))})" if kappas else "—"
    return f"| {first} | {second} | {total.get('n_transcripts', '—')} | {icc_text} | {kappa_text} |"


HEADER = "| n transcripts | ICC(A,1) total [95% CI] | weighted κ per item: mean (min–max) |"


def ceiling_sentence(agreement: dict[str, Any], judge: str) -> str | None:
    """A judge's mean agreement with the raters, stated against the raters' own."""
    relative = (agreement.get("relative_to_ceiling") or {}).get(judge)
    if not relative or relative.get("mean_icc") is None:
        return None
    if relative.get("ceiling_icc") is None:
        return (
            f"{judge}: mean ICC(A,1) with the raters {_fmt(relative['mean_icc'])}; no rater–rater ceiling (one rater)"
        )
    return (
        f"{judge}: mean ICC(A,1) with the raters {_fmt(relative['mean_icc'])} against the raters' own "
        f"{_fmt(relative['ceiling_icc'])}, {_fmt(relative['ratio_to_ceiling'], 2)} of the human ceiling"
    )


def _human_lines(agreement: dict[str, Any]) -> list[str]:
    """The raters against each other (the ceiling), then each judge against each rater."""
    if not agreement.get("ran"):
        return []
    lines: list[str] = []
    if agreement.get("between_raters"):
        ceiling = agreement["ceiling"]
        lines += [
            "## Rater–rater agreement (the human ceiling)",
            "",
            f"*{ceiling['label']}.* Mean over {ceiling['n_pairs']} rater pairs: ICC(A,1) {_fmt(ceiling['mean_icc'])}, "
            f"weighted κ {_fmt(ceiling['mean_kappa'])}.",
            "",
            "| rater | rater " + HEADER,
            "|---|---|---|---|---|",
            *[_row(*pair.split(" | "), entry) for pair, entry in agreement["between_raters"].items()],
            "",
        ]
    if agreement["by_judge"]:
        lines += [
            "## Judge–human agreement (each judge apart)",
            "",
            "| judge | human rater " + HEADER,
            "|---|---|---|---|---|",
        ]
        for judge, per in agreement["by_judge"].items():
            lines += [_row(judge, human, entry) for human, entry in per.items()]
        lines += [""] + [f"- {s}" for s in (ceiling_sentence(agreement, j) for j in agreement["by_judge"]) if s] + [""]
    return lines


def section(inputs: ReportInputs) -> list[str]:
    return _human_lines(inputs.stats.get("human_agreement") or {})
