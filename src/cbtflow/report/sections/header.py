"""The report's first lines: a failed primary card, the answer, the disclaimer, the run."""

from __future__ import annotations

from cbtflow.report.inputs import ReportInputs
from cbtflow.report.sections.answer import answer_lines
from cbtflow.report.sections.card import failed_line

DISCLAIMER = (
    "Research software. These are simulated sessions scored by automated judges; nothing here is "
    "clinical advice or evidence that any model is safe to use with people."
)


def section(inputs: ReportInputs) -> list[str]:
    stats, primary = inputs.stats, inputs.primary_judge
    lines = [
        *failed_line(inputs.cards, primary),
        "# cbtflow report",
        "",
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
