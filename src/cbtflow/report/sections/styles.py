"""The primary effect per patient style, and whether it depends on the style."""

from __future__ import annotations

from typing import Any

from cbtflow.report.format import ci as _ci
from cbtflow.report.format import fmt as _fmt
from cbtflow.report.sections.tests_tables import model_label, test_text
from cbtflow.report.tables import markdown_table


def style_lines(block: dict[str, Any]) -> list[str]:
    """The tuning effect per patient style, and whether it depends on the style."""
    if not block.get("ran"):
        return [f"*By patient style:* not run: {block['reason']}.", ""] if block else []
    tuned, baseline = block["tuned"], block["baseline"]
    lines = [
        f"### {tuned} − {baseline} by patient style (unit: profile; styles are prompt fragments in "
        "resources/profiles/styles.yaml, simulated, not real patients)",
        "",
    ]
    cells = [
        [model_label(model), style, f"{_fmt(cell['estimate'])} {_ci(cell['ci95'])}", cell["n_units"]]
        for model, per in block["by_model"].items()
        for style, cell in per["by_style"].items()
    ]
    lines += markdown_table(["model", "style", f"{tuned} − {baseline} [95% CI]", "n profiles"], cells)
    lines.append("")
    for model, per in block["by_model"].items():
        test = test_text(per["condition_by_style"])
        lines.append(f"- Does the effect depend on the style? {model_label(model)}: {test}")
    lines += [f"- Model × style on the effect: {test_text(block['model_by_style'])}", ""]
    return lines
