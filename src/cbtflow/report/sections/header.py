"""The report's first lines: a failed primary card, jobs compared across precisions, the answer, the
disclaimer, the run."""

from __future__ import annotations

from cbtflow.report.inputs import ReportInputs
from cbtflow.report.sections.answer import answer_lines
from cbtflow.report.sections.card import failed_line

DISCLAIMER = (
    "Research software. These are simulated sessions scored by automated judges; nothing here is "
    "clinical advice or evidence that any model is safe to use with people."
)


def mixed_precision_lines(inputs: ReportInputs) -> list[str]:
    """Before the answer: jobs compared with each other whose local replies were computed at
    different precisions (``precision_mixes`` of the usage logs), a confound of the contrast."""
    lines = []
    for stage in inputs.usage.values():
        for mix in stage.get("precision_mixes", []):
            lines += [
                f"**Mixed precision.** {mix}. Local replies differ with precision (bench/RESULTS.md), so "
                "comparisons across these jobs mix precision with what is compared; set `precision` on the "
                "base explicitly and rerun them on one kind of machine.",
                "",
            ]
    return lines


def section(inputs: ReportInputs) -> list[str]:
    stats, primary = inputs.stats, inputs.primary_judge
    lines = [
        *failed_line(inputs.cards, primary),
        "# cbtflow report",
        "",
        *mixed_precision_lines(inputs),
        *answer_lines(stats, primary),
        f"> {DISCLAIMER}",
        "",
        inputs.config_summary,
        "",
    ]
    for judge, parts in (stats.get("judges_split_by_answering_model") or {}).items():
        lines += [
            f"Judge `{judge}` was answered by more than one model (fallbacks); its scores are analysed apart "
            f"as {', '.join(f'`{p}`' for p in parts)}.",
            "",
        ]
    return lines
