"""Therapist conditions, as one table, and the contrasts the analysis runs between them.

A light module (no numerical imports) so config validation, the rules, the scripts and
the statistics share one definition: which weights a condition's therapist runs, whether
it loads the model's adapter, and which system prompt it gets.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Condition:
    name: str
    weights: str  # "base": the model's base; "external": the model's own `external` checkpoint
    adapter: bool  # the model's LoRA adapter (per seed) is loaded on the weights
    prompt: str  # the therapist's system-prompt template, resources/prompts/<prompt>.j2

    @property
    def same_for_every_model_of_a_base(self) -> bool:
        """Two models on one base make exactly the same calls (no adapter, no checkpoint of their own)."""
        return self.weights == "base" and not self.adapter


TABLE: dict[str, Condition] = {
    c.name: c
    for c in (
        Condition("instruct", "base", False, "therapist_system"),  # the study's short neutral prompt
        Condition("cbt", "base", True, "therapist_system"),  # + our CBT adapter
        Condition("prompted", "base", False, "therapist_prompted"),  # a detailed CBT prompt
        Condition("external", "external", False, "therapist_system"),  # the model's own checkpoint
    )
}
ORDER = list(TABLE)  # for tables and figures
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
