"""Therapist conditions and the contrasts the analysis runs between them.

A light module (no numerical imports) so config validation, the rules and the statistics
share one list.
"""

from __future__ import annotations

BASELINE, TUNED = "instruct", "cbt"

# (tuned side, baseline side): the difference is always first − second, so a positive
# value means the first condition scored higher. cbt_vs_instruct is the study's question.
CONTRASTS: list[tuple[str, str]] = [
    (TUNED, BASELINE),
    ("prompted", BASELINE),
    (TUNED, "prompted"),
    ("external", BASELINE),
    (TUNED, "external"),
]


def contrast_name(tuned: str, baseline: str) -> str:
    return f"{tuned}_vs_{baseline}"


def contrasts_among(conditions: list[str] | set[str]) -> list[tuple[str, str]]:
    """The contrasts whose two conditions are both present."""
    return [(a, b) for a, b in CONTRASTS if a in conditions and b in conditions]
