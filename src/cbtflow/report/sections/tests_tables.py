"""The tables of one judge's tests: contrasts, ANOVAs, post-hoc tests, items, the mixed model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cbtflow.conditions import BASELINE, TUNED
from cbtflow.report.format import ci as _ci
from cbtflow.report.format import fmt as _fmt
from cbtflow.report.format import fmt_df, ordered


def mean_ci_text(cell: dict[str, Any]) -> str:
    return f"{_fmt(cell['mean'])} {_ci(cell['ci95'])}"


def model_label(model: str) -> str:
    return "pooled (all models)" if model == "_pooled" else model


def contrast_table(contrast: dict[str, Any], *, holm_column: bool = True) -> list[str]:
    """One paired contrast; every column names its condition (no generic 'baseline')."""
    any_block = next(iter(contrast.values()))
    tuned, baseline = any_block.get("tuned", TUNED), any_block.get("baseline", BASELINE)
    head = (
        f"| model | n units | mean {baseline} | mean {tuned} | {tuned} − {baseline} [95% CI] | t (df) | p |"
        + (" Holm p |" if holm_column else "")
        + " Cohen's dz [95% CI] | Wilcoxon p |"
    )
    columns = head.count("|") - 1
    lines = [head, "|" + "---|" * columns]
    for model, r in contrast.items():
        if not r.get("ran"):
            lines.append(
                f"| {model_label(model)} | {r.get('n_units', r.get('n', '—'))} | not run: {r['reason']} |"
                + " |" * (columns - 3)
            )
            continue
        lines.append(
            f"| {model_label(model)} | {r['n_units']} | {_fmt(r['mean_baseline'])} | {_fmt(r['mean_tuned'])} | "
            f"{_fmt(r['estimate'])} {_ci(r.get('ci95'))} | {_fmt(r.get('t'))} ({fmt_df(r.get('df'))}) | "
            f"{_fmt(r.get('p'))} |"
            + (f" {_fmt(r.get('p_holm'))} |" if holm_column else "")
            + f" {_fmt(r.get('cohens_dz'))} {_ci(r.get('cohens_dz_ci95'))} | {_fmt(r.get('wilcoxon', {}).get('p'))} |"
        )
    return lines


def contrast_sections(
    contrasts: dict[str, Any], title: Callable[[str, str], str], *, holm_column: bool = True
) -> list[str]:
    """Each condition contrast (``<tuned>_vs_<baseline>``) under its own title line."""
    lines: list[str] = []
    for key, contrast in contrasts.items():
        tuned, baseline = key.split("_vs_")
        lines += [title(tuned, baseline), ""] + contrast_table(contrast, holm_column=holm_column) + [""]
    return lines


def anova_lines(between: dict[str, Any]) -> list[str]:
    lines = [
        "| condition | n subjects | F | df | p | p (Greenhouse-Geisser) | sphericity W (p) | partial η² [95% CI] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for condition, r in between.items():
        if not r.get("ran"):
            lines.append(f"| {condition} | {r.get('n', '—')} | not run: {r['reason']} | | | | | |")
            continue
        sph = r["sphericity"]
        if r.get("identical_to_another_model"):
            condition = f"{condition} ({', '.join(r['identical_to_another_model'])}: same transcripts, counted once)"
        gg = _fmt(r["p_gg"]) if r.get("p_gg") is not None else "—"
        if sph.get("holds") is False:
            gg = f"**{gg}** (sphericity fails: use this)"
        lines.append(
            f"| {condition} | {r['n']} | {_fmt(r['F'])} | {_fmt(r['df_effect'], 0)}, {_fmt(r['df_error'], 0)} | "
            f"{_fmt(r['p'])} | {gg} | {_fmt(sph['W'])} ({_fmt(sph['p'])}) | "
            f"{_fmt(r['partial_eta_squared'])} {_ci(r.get('partial_eta_squared_ci95'))} |"
        )
    return lines


def posthoc_lines(between: dict[str, Any]) -> list[str]:
    rows = [(c, t) for c, r in between.items() if r.get("ran") for t in r["posthoc_holm"]]
    if not rows:
        return ["Post-hoc tests: not run (needs the between-models ANOVA above).", ""]
    lines = ["| condition | model A | model B | t (df) | p | Holm p |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {c} | {t['a']} | {t['b']} | {_fmt(t['t'])} ({_fmt(t['df'], 0)}) | {_fmt(t['p'])} | {_fmt(t['p_holm'])} |"
        for c, t in rows
    ]
    return lines + [""]


def two_way_lines(two_way: dict[str, Any]) -> list[str]:
    if not two_way.get("ran"):
        return [f"Model × condition RM-ANOVA not run: {two_way['reason']}", ""]
    lines = [
        f"n = {two_way['n']} subjects ({two_way['unit']}).",
        "",
        "| effect | F | df | p | p (Greenhouse-Geisser) | partial η² [95% CI] |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {k} | {_fmt(v['F'])} | {_fmt(v['df_effect'], 0)}, {_fmt(v['df_error'], 0)} | {_fmt(v['p'])} | "
        f"{_fmt(v.get('p_gg'))} | {_fmt(v['partial_eta_squared'])} {_ci(v.get('partial_eta_squared_ci95'))} |"
        for k, v in two_way["effects"].items()
    ]
    return lines + [""]


def item_lines(
    items: dict[str, Any], item_order: Sequence[str], tuned: str = TUNED, baseline: str = BASELINE
) -> list[str]:
    if "_all" in items:
        return [f"Item level: not run ({items['_all']['reason']}).", ""]
    lines = [
        f"| model | item | n profiles | mean {baseline} | mean {tuned} | {tuned} − {baseline} [95% CI] | p "
        "| Holm p (items) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, per in items.items():
        order = ordered(per, item_order)
        for item in order:
            r = per[item]
            if not r.get("ran"):
                lines.append(f"| {model} | {item} | {r.get('n', '—')} | not run: {r['reason']} | | | | |")
                continue
            lines.append(
                f"| {model} | {item} | {r['n']} | {_fmt(r['mean_baseline'])} | {_fmt(r['mean_tuned'])} | "
                f"{_fmt(r['mean_difference'])} {_ci(r.get('ci95'))} | {_fmt(r.get('p'))} | "
                f"{_fmt(r.get('p_holm'))} |"
            )
    return lines + [""]


def mixed_lines(mixed: dict[str, Any]) -> list[str]:
    if not mixed.get("ran"):
        return [f"Not run: {mixed['reason']}.", ""]
    lines = [
        f"`{mixed['formula']}`, {mixed['n_observations']} distinct transcripts, {mixed['n_profiles']} profiles, "
        f"{mixed['n_adapter_runs']} adapter runs, converged: {'yes' if mixed['converged'] else 'NO'}.",
        "",
        f"| model | {mixed['contrast']} [95% CI] | SE | t (Satterthwaite df) | p |",
        "|---|---|---|---|---|",
    ]
    for model, e in {**mixed["tuning_effect"], "mean over models": mixed["tuning_effect_mean_over_models"]}.items():
        lines.append(
            f"| {model} | {_fmt(e['estimate'])} {_ci(e['ci95'])} | {_fmt(e['se'])} | {_fmt(e['t'])} "
            f"({fmt_df(e['df'])}) | {_fmt(e['p'])} |"
        )
    parts = ", ".join(f"{k} {_fmt(v)}" for k, v in mixed["variance_components"].items())
    lines += ["", f"Variance components: {parts}."]
    for name, why in mixed.get("components_dropped", {}).items():
        lines.append(f"Not fitted: {name} ({why}).")
    return lines + [f"{mixed['inference']}. {mixed['note']}", ""]


def test_text(test: dict[str, Any]) -> str:
    if not test.get("ran"):
        return f"not run: {test['reason']}"
    df = ", ".join(f"{d:g}" for d in test["df"])
    return f"F({df}) = {_fmt(test['F'])}, p = {_fmt(test['p'])} ({test['test']}; n = {test['n_profiles']} profiles)"
