"""The simulated patients' self-reports (questionnaires before and after the session)."""

from __future__ import annotations

from typing import Any

from cbtflow.report.inputs import ReportInputs
from cbtflow.report.sections.tests_tables import contrast_sections, mean_ci_text
from cbtflow.report.tables import per_model_condition


def _outcome_lines(block: dict[str, Any]) -> list[str]:
    """Simulated self-reports: change (or post) by model × condition, and the contrasts."""
    if not block.get("ran"):
        return []
    lines = [
        "## Simulated self-reports: mood, affect, alliance",
        "",
        f"*{block['label']}.* The patient model answers brief questionnaires in character (resources/measures); "
        "the values show how the simulation moves, not how a person would. Unit: profile (seeds averaged).",
        "",
    ]
    for name, m in block["measures"].items():
        lines += [f"**{name}**: {m['kind']}; {m['better']} is better", ""]
        lines += per_model_condition(
            ["mean [95% CI]", "n profiles"], m["by_model"], lambda c: [mean_ci_text(c), c["n_units"]]
        )
        title = lambda t, b, name=name, m=m: f"**{name}: {t} vs {b}** ({m['kind']}; {m['better']} is better)"  # noqa: E731
        lines += contrast_sections(m["contrasts"], title, holm_column=False)
    return lines


def section(inputs: ReportInputs) -> list[str]:
    return _outcome_lines(inputs.stats.get("outcomes") or {})
