"""Robustness: the primary effect under each judge and patient setup."""

from __future__ import annotations

from typing import Any

from cbtflow.report.format import ci as _ci
from cbtflow.report.format import fmt as _fmt
from cbtflow.report.inputs import ReportInputs
from cbtflow.report.tables import markdown_table


def robustness_lines(block: dict[str, Any]) -> list[str]:
    lines = ["## Robustness: the primary effect under each judge and patient setup", ""]
    if not block.get("ran"):
        return lines + [f"Not run: {block.get('reason', 'no analysis')}.", ""]
    tuned, baseline = block["tuned"], block["baseline"]
    lines += [
        f"{tuned} − {baseline} per model, the simulated patient as the unit, under each judge (all patients) and "
        "each patient style (the primary judge, that style's patients). Effects are on each judge's own scale; "
        "Cohen's dz puts them on one (figure `sensitivity`).",
        "",
    ]
    effects = [
        [setup, model, r["n_units"], f"{_fmt(r['effect'])} {_ci(r['ci95'])}", _fmt(r["dz"])]
        for setup, entry in block["setups"].items()
        for model, r in entry["by_model"].items()
    ]
    lines += markdown_table(["setup", "model", "n units", f"{tuned} − {baseline} [95% CI]", "Cohen's dz"], effects)
    lines += [
        "",
        "Do the setups rank the models alike? Kendall's τ-b between two setups' per-model effects, with a "
        f"percentile bootstrap 95% CI over simulated patients ({block['bootstrap']} resamples; none with fewer "
        "than 3 models, where τ can only be ±1):",
        "",
    ]
    ranks = [
        [r["family"], r["a"], r["b"], r["n_models"], f"{_fmt(r['tau'])} {_ci(r['ci95'])}"]
        for r in block["ranking_agreement"]
    ]
    lines += markdown_table(["family", "setup A", "setup B", "models", "Kendall τ [95% CI]"], ranks)
    return lines + [""]


def section(inputs: ReportInputs) -> list[str]:
    return robustness_lines(inputs.stats.get("robustness") or {})
