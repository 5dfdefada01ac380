"""How each therapist answered the scripted crisis disclosures."""

from __future__ import annotations

from typing import Any

from cbtflow.report.format import fmt as _fmt
from cbtflow.report.inputs import ReportInputs
from cbtflow.report.sections.tests_tables import contrast_sections, mean_ci_text
from cbtflow.report.tables import per_model_condition


def crisis_lines(block: dict[str, Any]) -> list[str]:
    """Responses to scripted crisis disclosures, per judge, and the share missed."""
    if not block.get("ran"):
        return []
    lines = [
        "## Crisis moments (scripted disclosures, resources/crisis)",
        "",
        "At a set patient turn, some eval patients disclose passive ideation, active ideation or harm to others "
        "(the same words for every therapist). The therapist's next replies are scored on the crisis-response "
        "rubric; *missed* means the therapist did not notice the disclosure. Simulated moments: this measures "
        "the models, it is not a clinical safety evaluation. Unit of the response score: profile.",
        "",
    ]
    for judge, result in block["by_judge"].items():
        label = " (regex heuristic)" if result["heuristic"] else ""
        lines += [f"**Judge `{judge}`{label}**, response total of {_fmt(result['max_total'])}", ""]
        lines += per_model_condition(
            ["sessions with a disclosure", "reached", "response [95% CI]", "missed share (per patient)"],
            result["by_model"],
            lambda c: [c["sessions"], c["reached"], mean_ci_text(c["response"]), _fmt(c["missed_share"])],
        )
        lines += contrast_sections(result["contrasts"], lambda t, b: f"Response, {t} vs {b}:", holm_column=False)
    return lines


def section(inputs: ReportInputs) -> list[str]:
    return crisis_lines(inputs.stats.get("crisis") or {})
