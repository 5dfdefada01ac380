"""Detector flags and, for local judges, the probability mass on the score digits."""

from __future__ import annotations

from typing import Any

from cbtflow.report.format import fmt as _fmt
from cbtflow.report.tables import per_model_condition


def flag_lines(flags: dict[str, Any]) -> list[str]:
    if not flags.get("ran"):
        return []
    lines = [
        "### Flagged sessions (heuristic detectors: resources/detectors.yaml)",
        "",
        "Transcripts with at least one flag; a flagged transcript's items are capped (harmful: ≤ 1, degenerate: "
        "0). The detectors are regexes and word-overlap rules: they miss paraphrases and can misfire, and each "
        "flag in the score document names the turn and text that fired it.",
        "",
    ]
    return lines + per_model_condition(
        ["n transcripts", "harmful advice", "degenerate"],
        flags["by_model"],
        lambda v: [v["n"], v["harmful"], v["degenerate"]],
    )


def mass_lines(mass: dict[str, Any]) -> list[str]:
    if not mass.get("ran"):
        return []
    return [
        "### Judge confidence (probability mass on the score digits)",
        "",
        f"Mean mass {_fmt(mass['mean_mass'])} (lowest {_fmt(mass['min_mass'])}); {_fmt(mass['flagged_share'])} of "
        "item scores are flagged low-confidence (below the judge's `low_mass_threshold`).",
        "",
    ]
