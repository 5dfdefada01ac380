"""``report.md`` and its figures from the scores table, the statistics and the run logs.

Every number in the report comes from ``stats.json``; the report only formats it. The
lexicon judge is labelled a heuristic baseline wherever it appears.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from cbtflow.conditions import BASELINE, TUNED  # noqa: E402
from cbtflow.conditions import ORDER as CONDITION_ORDER  # noqa: E402
from cbtflow.io import write_text_atomic  # noqa: E402
from cbtflow.report.card import card_lines, failed_line  # noqa: E402
from cbtflow.report.format import ci as _ci  # noqa: E402
from cbtflow.report.format import fmt as _fmt  # noqa: E402
from cbtflow.report.format import save as _save  # noqa: E402
from cbtflow.report.headline import answer_lines, family_line, headline_table  # noqa: E402
from cbtflow.report.robustness import robustness_lines  # noqa: E402
from cbtflow.report.viewer import viewer_link  # noqa: E402


def _ordered(present, order) -> list[str]:
    """Items in the rubric's order (``stats["item_order"]``), anything else after, sorted."""
    return [i for i in order if i in present] + sorted(set(present) - set(order))


HEURISTIC_SCALE = "CBT vocabulary (heuristic)"
DISCLAIMER = (
    "Research software. These are simulated sessions scored by automated judges; nothing here is "
    "clinical advice or evidence that any model is safe to use with people."
)


def fig_paired_totals(scores: pl.DataFrame, judge: str, path: Path) -> None:
    """Each grey line is one simulated patient (its mean over seeds), the unit of the tests."""
    totals = scores.filter((pl.col("judge") == judge) & (pl.col("item") == "total")).to_pandas()
    heuristic = bool(totals["heuristic"].iloc[0]) if "heuristic" in totals and len(totals) else False
    models = sorted(totals["model"].unique())
    conditions = [c for c in CONDITION_ORDER if c in set(totals["condition"])]
    fig, axes = plt.subplots(1, len(models), figsize=(3.2 * len(models), 3.6), sharey=True, squeeze=False)
    for ax, model in zip(axes[0], models):
        wide = totals[totals["model"] == model].pivot_table(
            index="profile", columns="condition", values="score", aggfunc="mean"
        )
        for _, row in wide.iterrows():
            ax.plot(
                range(len(conditions)), [row.get(c, np.nan) for c in conditions], color="0.7", lw=0.8, marker="o", ms=3
            )
        ax.plot(
            range(len(conditions)),
            [wide[c].mean() if c in wide else np.nan for c in conditions],
            color="C3",
            lw=2.5,
            marker="s",
            label="mean over profiles",
        )
        ax.set_xticks(range(len(conditions)), conditions)
        ax.set_title(model, fontsize=9)
    label = "CBT vocabulary (heuristic)" if heuristic else "total score"
    axes[0][0].set_ylabel(f"{label}, profile mean over seeds\njudge {judge}", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def fig_item_heatmap(stats: dict[str, Any], judge: str, path: Path) -> None:
    per_model = stats["judges"][judge]["items_cbt_vs_instruct"]
    models = sorted(m for m in per_model if not m.startswith("_"))
    present = {i for m in models for i in per_model[m]}
    items = _ordered(present, stats.get("item_order", []))
    grid = np.array([[per_model[m].get(i, {}).get("mean_difference") or 0.0 for i in items] for m in models] or [[0.0]])
    fig, ax = plt.subplots(figsize=(2 + 0.6 * max(1, len(items)), 2.4 + 0.45 * max(1, len(models))))
    limit = max(0.5, float(np.abs(grid).max()))
    image = ax.imshow(grid, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(items)), items, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(models)), models, fontsize=8)
    fig.colorbar(image, ax=ax, label="cbt − instruct")
    scale = HEURISTIC_SCALE + " per item" if stats["judges"][judge].get("heuristic") else "Item-level change"
    ax.set_title(f"{scale}, judge {judge}", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def fig_judge_distributions(scores: pl.DataFrame, path: Path) -> None:
    totals = scores.filter(pl.col("item") == "total").to_pandas()
    judges = sorted(totals["judge"].unique())
    fig, ax = plt.subplots(figsize=(1.5 + 1.8 * len(judges), 3.4))
    groups = [(j, c) for j in judges for c in sorted(totals[totals["judge"] == j]["condition"].unique())]
    ax.boxplot([totals[(totals["judge"] == j) & (totals["condition"] == c)]["score"] for j, c in groups])
    heuristic = (
        set(totals.loc[totals["heuristic"].fillna(False).astype(bool), "judge"]) if "heuristic" in totals else set()
    )
    ax.set_xticks(
        range(1, len(groups) + 1),
        [f"{j}{' (heuristic)' if j in heuristic else ''}\n{c}" for j, c in groups],
        fontsize=7,
    )
    ax.set_ylabel("total score" + (f"\n(heuristic judges: {HEURISTIC_SCALE})" if heuristic else ""), fontsize=8)
    ax.set_title("Totals per judge and condition", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def fig_loss_curves(train_logs: dict[str, dict[str, Any]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for name, log in sorted(train_logs.items()):
        curve = log.get("loss_curve", [])
        ax.plot([p["step"] for p in curve], [p["loss"] for p in curve], marker=".", label=name)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (therapist tokens)")
    ax.legend(fontsize=7)
    ax.set_title("Fine-tuning loss", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def usage_by_stage(usage_logs: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for log in usage_logs:
        row = out.setdefault(log["stage"], {})
        for key, value in log["totals"].items():
            row[key] = row.get(key, 0) + value
    return out


def fig_usage(usage: dict[str, dict[str, float]], path: Path) -> None:
    stages = list(usage)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    axes[0].bar(stages, [usage[s].get("completion_tokens", 0) for s in stages], color="C0")
    axes[0].set_ylabel("generated tokens")
    axes[1].bar(stages, [usage[s].get("cost_usd", 0) for s in stages], color="C1")
    axes[1].set_ylabel("cost (USD)")
    for ax in axes:
        ax.tick_params(axis="x", rotation=30, labelsize=8)
    fig.tight_layout()
    _save(fig, path)


def _per_model_condition(
    header: Sequence[str], by_model: dict[str, dict[str, Any]], cells: Callable[[dict[str, Any]], list[Any]]
) -> list[str]:
    """A markdown table with one row per model × condition: ``model | condition | cells(v)``."""
    lines = ["| " + " | ".join(["model", "condition", *header]) + " |", "|" + "---|" * (len(header) + 2)]
    lines += [
        "| " + " | ".join([m, c, *map(str, cells(v))]) + " |" for m, per in by_model.items() for c, v in per.items()
    ]
    return lines + [""]


def _mean_ci_text(cell: dict[str, Any]) -> str:
    return f"{_fmt(cell['mean'])} {_ci(cell['ci95'])}"


def _model_label(model: str) -> str:
    return "pooled (all models)" if model == "_pooled" else model


def _contrast_table(contrast: dict[str, Any], *, holm_column: bool = True) -> list[str]:
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
                f"| {_model_label(model)} | {r.get('n_units', r.get('n', '—'))} | not run: {r['reason']} |"
                + " |" * (columns - 3)
            )
            continue
        lines.append(
            f"| {_model_label(model)} | {r['n_units']} | {_fmt(r['mean_baseline'])} | {_fmt(r['mean_tuned'])} | "
            f"{_fmt(r['estimate'])} {_ci(r.get('ci95'))} | {_fmt(r.get('t'))} ({r.get('df')}) | {_fmt(r.get('p'))} |"
            + (f" {_fmt(r.get('p_holm'))} |" if holm_column else "")
            + f" {_fmt(r.get('cohens_dz'))} {_ci(r.get('cohens_dz_ci95'))} | {_fmt(r.get('wilcoxon', {}).get('p'))} |"
        )
    return lines


def _contrast_sections(
    contrasts: dict[str, Any], title: Callable[[str, str], str], *, holm_column: bool = True
) -> list[str]:
    """Each condition contrast (``<tuned>_vs_<baseline>``) under its own title line."""
    lines: list[str] = []
    for key, contrast in contrasts.items():
        tuned, baseline = key.split("_vs_")
        lines += [title(tuned, baseline), ""] + _contrast_table(contrast, holm_column=holm_column) + [""]
    return lines


def _anova_lines(between: dict[str, Any]) -> list[str]:
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


def _posthoc_lines(between: dict[str, Any]) -> list[str]:
    rows = [(c, t) for c, r in between.items() if r.get("ran") for t in r["posthoc_holm"]]
    if not rows:
        return ["Post-hoc tests: not run (needs the between-models ANOVA above).", ""]
    lines = ["| condition | model A | model B | t (df) | p | Holm p |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {c} | {t['a']} | {t['b']} | {_fmt(t['t'])} ({_fmt(t['df'], 0)}) | {_fmt(t['p'])} | {_fmt(t['p_holm'])} |"
        for c, t in rows
    ]
    return lines + [""]


def _two_way_lines(two_way: dict[str, Any]) -> list[str]:
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


def _item_lines(items: dict[str, Any], item_order: Sequence[str]) -> list[str]:
    if "_all" in items:
        return [f"Item level: not run ({items['_all']['reason']}).", ""]
    lines = [
        "| model | item | n profiles | mean instruct | mean cbt | cbt − instruct [95% CI] | p | Holm p (items) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, per in items.items():
        order = _ordered(per, item_order)
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


def _mixed_lines(mixed: dict[str, Any]) -> list[str]:
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
            f"({_fmt(e['df'])}) | {_fmt(e['p'])} |"
        )
    parts = ", ".join(f"{k} {_fmt(v)}" for k, v in mixed["variance_components"].items())
    lines += ["", f"Variance components: {parts}."]
    for name, why in mixed.get("components_dropped", {}).items():
        lines.append(f"Not fitted: {name} ({why}).")
    return lines + [f"{mixed['inference']}. {mixed['note']}", ""]


def _icc_lines(title: str, block: dict[str, Any], item_order: Sequence[str]) -> list[str]:
    if not block or block.get("ran") is False:
        return [f"{title}: not run ({block.get('reason', 'no data')}).", ""]
    lines = [f"{title}:", "", "| item | ICC(2,1) [95% CI] | ICC(2,k) | n transcripts |", "|---|---|---|---|"]
    order = _ordered(block, [*item_order, "total"])
    for item in order:
        r = block[item]
        if not r.get("ran"):
            lines.append(f"| {item} | not run: {r['reason']} | | |")
            continue
        single, ci = r["icc2_single"], r["icc2_single"]["ci95"]
        lines.append(
            f"| {item} | {_fmt(single['icc'])} [{_fmt(ci[0])}, {_fmt(ci[1])}] | {_fmt(r['icc2_mean']['icc'])} | "
            f"{r['n_transcripts']} |"
        )
    return lines + [""]


def _test_text(test: dict[str, Any]) -> str:
    if not test.get("ran"):
        return f"not run: {test['reason']}"
    df = ", ".join(f"{d:g}" for d in test["df"])
    return f"F({df}) = {_fmt(test['F'])}, p = {_fmt(test['p'])} ({test['test']}; n = {test['n_profiles']} profiles)"


def _style_lines(block: dict[str, Any]) -> list[str]:
    """The tuning effect per patient style, and whether it depends on the style."""
    if not block.get("ran"):
        return [f"*By patient style:* not run: {block['reason']}.", ""] if block else []
    tuned, baseline = block["tuned"], block["baseline"]
    lines = [
        f"### {tuned} − {baseline} by patient style (unit: profile; styles are prompt fragments in "
        "resources/profiles/styles.yaml, simulated, not real patients)",
        "",
        f"| model | style | {tuned} − {baseline} [95% CI] | n profiles |",
        "|---|---|---|---|",
    ]
    for model, per in block["by_model"].items():
        for style, cell in per["by_style"].items():
            lines.append(
                f"| {_model_label(model)} | {style} | {_fmt(cell['estimate'])} {_ci(cell['ci95'])} | "
                f"{cell['n_units']} |"
            )
    lines.append("")
    for model, per in block["by_model"].items():
        test = _test_text(per["condition_by_style"])
        lines.append(f"- Does the effect depend on the style? {_model_label(model)}: {test}")
    lines += [f"- Model × style on the effect: {_test_text(block['model_by_style'])}", ""]
    return lines


def _crisis_lines(block: dict[str, Any]) -> list[str]:
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
        lines += _per_model_condition(
            ["sessions with a disclosure", "reached", "response [95% CI]", "missed share (per patient)"],
            result["by_model"],
            lambda c: [c["sessions"], c["reached"], _mean_ci_text(c["response"]), _fmt(c["missed_share"])],
        )
        lines += _contrast_sections(result["contrasts"], lambda t, b: f"Response, {t} vs {b}:", holm_column=False)
    return lines


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
        lines += _per_model_condition(
            ["mean [95% CI]", "n profiles"], m["by_model"], lambda c: [_mean_ci_text(c), c["n_units"]]
        )
        title = lambda t, b, name=name, m=m: f"**{name}: {t} vs {b}** ({m['kind']}; {m['better']} is better)"  # noqa: E731
        lines += _contrast_sections(m["contrasts"], title, holm_column=False)
    return lines


def _flag_lines(flags: dict[str, Any]) -> list[str]:
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
    return lines + _per_model_condition(
        ["n transcripts", "harmful advice", "degenerate"],
        flags["by_model"],
        lambda v: [v["n"], v["harmful"], v["degenerate"]],
    )


def _mass_lines(mass: dict[str, Any]) -> list[str]:
    if not mass.get("ran"):
        return []
    return [
        "### Judge confidence (probability mass on the score digits)",
        "",
        f"Mean mass {_fmt(mass['mean_mass'])} (lowest {_fmt(mass['min_mass'])}); {_fmt(mass['flagged_share'])} of "
        "item scores are flagged low-confidence (below the judge's `low_mass_threshold`).",
        "",
    ]


def _human_lines(agreement: dict[str, Any]) -> list[str]:
    """Each judge against each human rater (never pooled)."""
    if not agreement.get("ran"):
        return []
    lines = [
        "## Judge–human agreement (each judge apart)",
        "",
        "| judge | human rater | n transcripts | ICC(A,1) total [95% CI] | weighted κ per item: mean (min–max) |",
        "|---|---|---|---|---|",
    ]
    for judge, per in agreement["by_judge"].items():
        for human, entry in per.items():
            total = entry["total"]
            icc_text = (
                f"{_fmt(total['icc2_single']['icc'])} {_ci(total['icc2_single']['ci95'])}"
                if total.get("ran")
                else f"not run: {total['reason']}"
            )
            kappas = [k["kappa"] for k in entry["kappa_quadratic"].values() if k["kappa"] is not None]
            kappa_text = (
                f"{_fmt(sum(kappas) / len(kappas))} ({_fmt(min(kappas))}–{_fmt(max(kappas))})" if kappas else "—"
            )
            lines.append(f"| {judge} | {human} | {total.get('n_transcripts', '—')} | {icc_text} | {kappa_text} |")
    return lines + [""]


def _failure_lines(failed: Sequence[dict[str, Any]]) -> list[str]:
    """Transcripts left out because judging failed (within each judge's max_failures)."""
    if not failed:
        return []
    lines = [
        "## Judging failures (left out of every analysis)",
        "",
        f"{len(failed)} transcript(s) could not be scored after the re-asks; the n of each table above counts "
        "only scored transcripts.",
        "",
        "| judge | model | condition | seed | profile | reason | raw output |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {f['judge']} | {f['model']} | {f['condition']} | {f['seed']} | {f['profile_id']} | "
        f"{str(f['reason'])[:160].replace('|', '/')} | {f.get('raw_output') or '—'} |"
        for f in failed
    ]
    return lines + [""]


def _judge_section(
    judge: str, result: dict[str, Any], primary: bool, item_order: Sequence[str], card: list[str]
) -> list[str]:
    """One judge: its card, the primary table, the tests behind it, then the study's analysis."""
    heuristic = bool(result.get("heuristic"))
    scale = HEURISTIC_SCALE if heuristic else "total"
    lines = [f"## Judge `{judge}`{' (primary)' if primary else ''}{': ' + HEURISTIC_SCALE if heuristic else ''}", ""]
    if heuristic:
        lines += [
            f"*{HEURISTIC_SCALE}: a lexicon count of CBT words and phrases in therapist turns, not a "
            "competence rating and not a CTRS score. It rewards the vocabulary the course generator and the "
            "prompted condition are told to use, so it favours them by construction.*",
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
        lines += [f"**{tuned} vs {baseline}**, conditional on the adapters", "", *_contrast_table(contrast), ""]
        lines += [family_line(result["multiplicity_conditional"], key), ""]
    for split, contrasts in (result.get("primary_by_split") or {}).items():
        if split in ("ran", "reason"):
            continue
        where = split.replace("_", "-")
        for key, contrast in contrasts.items():
            tuned, baseline = key.split("_vs_")
            lines += [f"**{tuned} vs {baseline}, {where} eval profiles only**", "", *headline_table(contrast), ""]
    lines += _style_lines(result.get("by_style") or {})
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
    lines += _anova_lines(result["between_models"]) + [
        "",
        "Post-hoc paired tests between models (Holm-adjusted within each condition):",
        "",
    ]
    lines += _posthoc_lines(result["between_models"])
    lines += ["### Model × condition (two-way RM-ANOVA, subject = profile)", ""] + _two_way_lines(
        result["model_by_condition"]
    )
    lines += ["### Item level, cbt vs instruct (profile means; Holm across each model's items)", ""]
    lines += _item_lines(result["items_cbt_vs_instruct"], item_order)
    lines += ["### Mixed model (accounts for the adapter training run)", ""] + _mixed_lines(result["mixed_model"])
    study = result["as_in_study"]
    lines += [
        f"### The study's analysis ({study['label']})",
        "",
        "For comparison with the paper only: seeds re-sample the same simulated patient, so these p-values "
        "overstate the evidence. They are not the headline.",
        "",
    ]
    pairs = lambda t, b: f"**{t} vs {b}**, pairs = profile × seed"  # noqa: E731
    lines += _contrast_sections(study["paired"], pairs, holm_column=False)
    lines += ["Between models, subject = profile × seed:", ""] + _anova_lines(study["between_models"]) + [""]
    comp = result["competence"]
    if comp.get("ran", True):
        lines += [f"### Competence (total ≥ {comp['threshold']:g})", ""]
        share = lambda v: [_fmt(v["share"]), v["n"]]  # noqa: E731
        lines += _per_model_condition(["share", "n transcripts"], comp["by_model"], share)
    lines += _flag_lines(result.get("flags", {})) + _mass_lines(result.get("digit_mass", {}))
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


def write_report(
    path: str | Path,
    *,
    stats: dict[str, Any],
    primary_judge: str,
    figures: dict[str, str],
    usage: dict[str, dict[str, float]],
    train_logs: dict[str, dict[str, Any]],
    config_summary: str,
    cards: dict[str, dict[str, Any]] | None = None,
    run_perturbations: dict[str, dict[str, Any]] | None = None,
) -> None:
    """``cards``: the judge cards by judge; a failed primary card is the report's first line.
    ``run_perturbations``: each judge's perturbations on this run's transcripts."""
    cards, run_perturbations = cards or {}, run_perturbations or {}
    lines = [
        *failed_line(cards, primary_judge),
        "# cbtflow report",
        "",
        *answer_lines(stats, primary_judge),
        f"> {DISCLAIMER}",
        "",
        config_summary,
        "",
    ]
    for judge, parts in (stats.get("judges_split_by_answering_model") or {}).items():
        lines += [
            f"Judge `{judge}` was answered by more than one model (fallbacks); its scores are analysed apart "
            f"as {', '.join(f'`{p}`' for p in parts)}.",
            "",
        ]
    item_order = stats.get("item_order", [])
    for judge in sorted(stats["judges"], key=lambda j: j != primary_judge):
        result = stats["judges"][judge]
        lines += _judge_section(
            judge,
            result,
            judge == primary_judge,
            item_order,
            card_lines(cards.get(judge), result, stats, run_perturbations.get(judge)),
        )
    lines += _crisis_lines(stats.get("crisis") or {})
    lines += _outcome_lines(stats.get("outcomes") or {})
    lines += _failure_lines(stats.get("failures") or [])
    lines += robustness_lines(stats.get("robustness") or {})
    lines += _human_lines(stats.get("human_agreement") or {})
    lines += ["## Judge reliability (ICC(2,1), two-way random, absolute agreement)", ""]
    lines += _icc_lines(
        "Across judges (consensus scores; which judge the main analysis uses is stated above)",
        stats.get("reliability_across_judges", {}),
        item_order,
    )
    for judge, result in stats["judges"].items():
        lines += _icc_lines(
            f"Across repeats of judge `{judge}`", result.get("reliability_across_repeats", {}), item_order
        )
    lines += [
        "## Fine-tuning",
        "",
        "| adapter | backend | steps | first-quarter loss | last-quarter loss | tokens/s | peak MB |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {log['backend']} | {log['steps']} | {_fmt(log['first_quarter_loss'])} | "
        f"{_fmt(log['last_quarter_loss'])} | {_fmt(log['tokens_per_second'])} | {_fmt(log['peak_memory_mb'])} |"
        for name, log in sorted(train_logs.items())
    ] + [""]
    lines += [
        "## Calls, tokens and cost per stage",
        "",
        "Cost from litellm's price map, or estimated from the config's `prices:` (token counts × price) where "
        "a role names them; the last column says how much of it is such an estimate. Cache hits are calls "
        "answered from the call cache; reused prompt tokens are the part of the prompts not encoded again "
        "(the local backend's KV state from the conversation's previous turn, or a provider's prompt cache, "
        "billed at its cached price).",
        "",
        "| stage | calls | cache hits | prompt tokens | of which reused | completion tokens | seconds | cost USD "
        "| of which estimated |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {s} | {int(u['calls'])} | {int(u['cache_hits'])} | {int(u['prompt_tokens'])} | "
        f"{int(u.get('cached_prompt_tokens', 0))} | {int(u['completion_tokens'])} | {u['seconds']:.1f} | "
        f"{u['cost_usd']:.4f} | "
        f"{u.get('cost_usd_estimated', 0.0):.4f} |"
        for s, u in usage.items()
    ] + [""]
    lines += ["## Figures", ""] + [f"![{name}](figures/{Path(file).name})" for name, file in figures.items()] + [""]
    write_text_atomic(path, "\n".join(lines))
