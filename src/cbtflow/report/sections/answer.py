"""The report's answer: one sentence per model first, then the headline tables.

A reader who stops after the first lines must know the estimate, its CI, what it
generalises over (patients, training runs), the judge and the n, and, with one seed,
that it holds only for the one adapter trained per model.
"""

from __future__ import annotations

from typing import Any

from cbtflow.conditions import BASELINE, TUNED, contrast_name
from cbtflow.judge.kinds import HEURISTIC_SCALE
from cbtflow.report.format import ci as _ci
from cbtflow.report.format import fmt as _fmt
from cbtflow.report.format import fmt_df

HEADLINE = contrast_name(TUNED, BASELINE)


def _label(model: str) -> str:
    return "pooled (mean of each model's own difference)" if model == "_pooled" else model


def _scope(block: dict[str, Any]) -> str:
    over = " and ".join(block.get("generalises_over") or ["patients"])
    if block.get("scope_note"):
        return f"generalises over {over} only ({block['scope_note']})"
    return f"generalises over {over}"


def _n(block: dict[str, Any]) -> str:
    if block.get("n_adapter_runs"):
        return f"n = {block['n_profiles']} simulated patients × {block['n_adapter_runs']} adapter runs"
    return f"n = {block.get('n_units')} simulated patients"


def sentence(model: str, block: dict[str, Any], judge: str, scale: str) -> str:
    """One model's answer in words."""
    tuned, baseline = block.get("tuned", TUNED), block.get("baseline", BASELINE)
    if not block.get("ran"):
        return f"- **{_label(model)}**: not estimated ({block.get('reason')})."
    df = f", df {fmt_df(block['df'])}" if block.get("df") is not None else ""
    fallback = f" Fallback: {block['fallback']['reason']}." if block.get("fallback") else ""
    return (
        f"- **{_label(model)}**: {tuned} − {baseline} = {_fmt(block['estimate'])} {_ci(block.get('ci95'))} "
        f"on {scale} (judge `{judge}`), p = {_fmt(block.get('p'))}{df}; {_scope(block)}; {_n(block)}.{fallback}"
    )


def answer_lines(stats: dict[str, Any], primary_judge: str) -> list[str]:
    """The report's opening: the study's question answered per model by the primary judge."""
    result = stats["judges"].get(primary_judge)
    if not result or HEADLINE not in result["primary"]:
        return ["## Answer", "", f"Not estimated: judge `{primary_judge}` has no {HEADLINE} contrast.", ""]
    scale = HEURISTIC_SCALE if result.get("heuristic") else "the rubric total"
    contrast = result["primary"][HEADLINE]
    lines = ["## Answer", ""]
    lines += [sentence(m, b, primary_judge, scale) for m, b in contrast.items()]
    single = [m for m, b in contrast.items() if b.get("scope_note", "").startswith("one seed")]
    if single:
        lines += [
            "",
            f"With one seed, the result for {', '.join(_label(m) for m in single)} holds for the one adapter "
            "trained per model: it cannot say whether the recipe would help again when re-trained.",
        ]
    if result.get("heuristic"):
        lines += ["", "The primary judge is a heuristic: this is not a change in therapy quality."]
    return lines + [""]


def family_line(multiplicity: dict[str, Any], contrast: str) -> str:
    """Names the Holm family of a contrast's Holm column."""
    for name, family in multiplicity["families"].items():
        if contrast in family["contrasts"]:
            members = ", ".join(family["members"]) or "none"
            return (
                f"Holm p: family *{name}* ({len(family['members'])} tests: {members}); "
                f"the pooled row is {multiplicity['pooled_rows']}."
            )
    return "Holm p: this contrast is in no declared family."


def headline_table(contrast: dict[str, Any]) -> list[str]:
    """The generalising estimate per model: every column names its condition and the df."""
    first = next(iter(contrast.values()))
    tuned, baseline = first.get("tuned", TUNED), first.get("baseline", BASELINE)
    lines = [
        f"| model | n patients × runs | mean {baseline} | mean {tuned} | {tuned} − {baseline} [95% CI] | t (df) | p "
        "| Holm p | generalises over | method |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, r in contrast.items():
        if not r.get("ran"):
            lines.append(f"| {_label(model)} | {r.get('n_units', '—')} | not run: {r.get('reason')} |" + " |" * 7)
            continue
        runs = r.get("n_adapter_runs")
        n = f"{r['n_profiles']} × {runs}" if runs else f"{r['n_units']} × 1"
        method = r["method"] + (f" ({r['fallback']['reason']})" if r.get("fallback") else "")
        lines.append(
            f"| {_label(model)} | {n} | {_fmt(r.get('mean_baseline'))} | {_fmt(r.get('mean_tuned'))} | "
            f"{_fmt(r['estimate'])} {_ci(r.get('ci95'))} | {_fmt(r.get('t'))} ({fmt_df(r.get('df'))}) | "
            f"{_fmt(r.get('p'))} | {_fmt(r.get('p_holm'))} | {', '.join(r.get('generalises_over', []))} | "
            f"{method} |"
        )
    return lines
