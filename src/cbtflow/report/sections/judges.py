"""One section per judge, the primary judge first: its card, the headline, the tests behind
it, then the study's own analysis."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cbtflow.judge.kinds import HEURISTIC_SCALE
from cbtflow.report.format import ci as _ci
from cbtflow.report.format import fmt as _fmt
from cbtflow.report.inputs import ReportInputs
from cbtflow.report.sections.answer import family_line, headline_table
from cbtflow.report.sections.card import card_lines
from cbtflow.report.sections.flags import flag_lines, mass_lines
from cbtflow.report.sections.styles import style_lines
from cbtflow.report.sections.tests_tables import (
    anova_lines,
    contrast_sections,
    contrast_table,
    item_lines,
    mixed_lines,
    posthoc_lines,
    two_way_lines,
)
from cbtflow.report.tables import per_model_condition
from cbtflow.report.viewer import viewer_link


def _judge_section(
    judge: str, result: dict[str, Any], primary: bool, item_order: Sequence[str], card: list[str]
) -> list[str]:
    """One judge: its card, the primary table, the tests behind it, then the study's analysis."""
    heuristic = bool(result.get("heuristic"))
    scale = HEURISTIC_SCALE if heuristic else "total"
    lines = [f"## Judge `{judge}`{' (primary)' if primary else ''}{': ' + HEURISTIC_SCALE if heuristic else ''}", ""]
    if heuristic:
        lines += [
            f"*{HEURISTIC_SCALE}: a heuristic score from surface features of the therapist's turns (the "
            "lexicon judge: a count of CBT words and phrases), not a competence rating and not a CTRS score. "
            "It rewards the vocabulary the course generator and the prompted condition are told to use, so it "
            "favours them by construction.*",
            "",
        ]
        if primary:
            lines += [
                "**This run has no informative primary outcome**: its primary judge is a heuristic. Use an "
                "LLM judge validated against human ratings before reading any difference below as a change "
                "in therapy quality.",
                "",
            ]
    lines += card
    lines += [
        "### Primary result (generalises over simulated patients and training runs)",
        "",
        f"{result['n_profiles']} eval profiles. Each adapter (model × seed) is one training run of the recipe; "
        "with two or more seeds the CI and p include the run-to-run variance (crossed random effects, "
        "Satterthwaite df), so they answer whether the recipe helps, not only these adapters.",
        "",
    ]
    for key, contrast in result["primary"].items():
        tuned, baseline = key.split("_vs_")
        lines += [
            f"**{tuned} vs {baseline}** on {scale} (difference = {tuned} − {baseline}; positive means {tuned} "
            "scored higher)",
            "",
            *headline_table(contrast),
            "",
            family_line(result["multiplicity"], key),
            "",
        ]
    lines += [
        f"### Conditional on the adapters trained ({result['conditional_label']})",
        "",
        "Each simulated patient gives one difference (seeds averaged), so n = profiles. A training run that "
        "came out well or badly shifts every patient together, and this test does not see it: read it as "
        "evidence about these adapters only.",
        "",
    ]
    for key, contrast in result["conditional_on_adapters"].items():
        tuned, baseline = key.split("_vs_")
        lines += [f"**{tuned} vs {baseline}**, conditional on the adapters", "", *contrast_table(contrast), ""]
        lines += [family_line(result["multiplicity_conditional"], key), ""]
    for split, contrasts in (result.get("primary_by_split") or {}).items():
        if split in ("ran", "reason"):
            continue
        where = split.replace("_", "-")
        for key, contrast in contrasts.items():
            tuned, baseline = key.split("_vs_")
            lines += [f"**{tuned} vs {baseline}, {where} eval profiles only**", "", *headline_table(contrast), ""]
    lines += style_lines(result.get("by_style") or {})
    lines += [f"*Variance sources.* {result['variance_sources']}", ""]
    lines += [
        "### Scores (mean ± SD over transcripts)",
        "",
        f"| model | condition | n transcripts | n profiles | {scale} | percent of maximum | transcripts |",
        "|---|---|---|---|---|---|---|",
    ]
    for model, per in result["descriptives"].items():
        for condition, d in per.items():
            pct = result["descriptives_percent"].get(model, {}).get(condition, {"mean": None, "sd": None})
            link = viewer_link(model=model, condition=condition, judge=judge)
            lines.append(
                f"| {model} | {condition} | {d['n']} | {d['n_profiles']} | {_fmt(d['mean'])} ± {_fmt(d['sd'])} | "
                f"{_fmt(pct['mean'])} ± {_fmt(pct['sd'])} | [read them]({link}) |"
            )
    lines += ["", "### Between models (one-way repeated-measures ANOVA per condition, subject = profile)", ""]
    lines += anova_lines(result["between_models"]) + [
        "",
        "Post-hoc paired tests between models (Holm-adjusted within each condition):",
        "",
    ]
    lines += posthoc_lines(result["between_models"])
    lines += ["### Model × condition (two-way RM-ANOVA, subject = profile)", ""] + two_way_lines(
        result["model_by_condition"]
    )
    for key, per_model in result["items"].items():
        tuned, baseline = key.split("_vs_")
        lines += [f"### Item level, {tuned} vs {baseline} (profile means; Holm across each model's items)", ""]
        lines += item_lines(per_model, item_order, tuned, baseline)
    lines += ["### Mixed model (accounts for the adapter training run)", ""] + mixed_lines(result["mixed_model"])
    study = result["as_in_study"]
    lines += [
        f"### The study's analysis ({study['label']})",
        "",
        "For comparison with the paper only: seeds re-sample the same simulated patient, so these p-values "
        "overstate the evidence. They are not the headline.",
        "",
    ]
    pairs = lambda t, b: f"**{t} vs {b}**, pairs = profile × seed"  # noqa: E731
    lines += contrast_sections(study["paired"], pairs, holm_column=False)
    lines += ["Between models, subject = profile × seed:", ""] + anova_lines(study["between_models"]) + [""]
    comp = result["competence"]
    if comp.get("ran", True):
        lines += [f"### Competence (total ≥ {comp['threshold']:g})", ""]
        share = lambda v: [_fmt(v["share"]), v["n"]]  # noqa: E731
        lines += per_model_condition(["share", "n transcripts"], comp["by_model"], share)
    lines += flag_lines(result.get("flags", {})) + mass_lines(result.get("digit_mass", {}))
    ctx = result["context_length"]
    lines += [
        "### Score against transcript length (descriptive; unit: transcript)",
        "",
        (
            f"Slope {_fmt(ctx['slope_per_1000_tokens'])} points per 1,000 tokens "
            f"{_ci(ctx['ci95_per_1000_tokens'])}, n = {ctx['n']}."
            if ctx.get("ran")
            else f"Not run: {ctx['reason']}"
        ),
    ]
    turn = ctx.get("per_turn", {})
    lines += [
        (
            f"Slope {_fmt(turn['slope'])} points per turn {_ci(turn['ci95'])}."
            if "slope" in turn
            else f"Per turn: not run ({turn.get('reason', 'no data')})."
        ),
        "",
    ]
    return lines


def section(inputs: ReportInputs) -> list[str]:
    stats, primary = inputs.stats, inputs.primary_judge
    lines: list[str] = []
    for judge in sorted(stats["judges"], key=lambda j: j != primary):
        result = stats["judges"][judge]
        card = card_lines(inputs.cards.get(judge), result, stats, inputs.run_perturbations.get(judge))
        lines += _judge_section(judge, result, judge == primary, inputs.item_order, card)
    return lines
