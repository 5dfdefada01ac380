"""``report.md`` and its figures from the scores table, the statistics and the run logs.

Every number in the report comes from ``stats.json``; the report only formats it. The
lexicon judge is labelled a heuristic baseline wherever it appears.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from cbtflow.io import write_bytes_atomic, write_text_atomic  # noqa: E402

CTRS_ORDER = ["agenda", "feedback", "understanding", "interpersonal", "collaboration", "pacing", "guided_discovery",
              "focus", "strategy", "techniques", "homework"]
DISCLAIMER = ("Research software. These are simulated sessions scored by automated judges; nothing here is "
              "clinical advice or evidence that any model is safe to use with people.")


def _save(fig, path: Path) -> None:
    """Render to memory, then write atomically: a killed job leaves no half PNG."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if abs(value) < 1e-12:  # numerical zero, e.g. an ICC of two judges that never agree
            value = 0.0
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
    return str(value)


def fig_paired_totals(scores: pl.DataFrame, judge: str, path: Path) -> None:
    totals = scores.filter((pl.col("judge") == judge) & (pl.col("item") == "total")).to_pandas()
    models = sorted(totals["model"].unique())
    conditions = [c for c in ["instruct", "cbt", "prompted", "external"] if c in set(totals["condition"])]
    fig, axes = plt.subplots(1, len(models), figsize=(3.2 * len(models), 3.6), sharey=True, squeeze=False)
    for ax, model in zip(axes[0], models):
        sub = totals[totals["model"] == model]
        wide = sub.pivot_table(index=["profile", "seed"], columns="condition", values="score")
        for _, row in wide.iterrows():
            ax.plot(range(len(conditions)), [row.get(c, np.nan) for c in conditions], color="0.7", lw=0.8, marker="o", ms=3)
        ax.plot(range(len(conditions)), [wide[c].mean() if c in wide else np.nan for c in conditions], color="C3",
                lw=2.5, marker="s", label="mean")
        ax.set_xticks(range(len(conditions)), conditions)
        ax.set_title(model, fontsize=9)
    axes[0][0].set_ylabel(f"CTRS total (0-66), judge {judge}")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def fig_item_heatmap(stats: dict[str, Any], judge: str, path: Path) -> None:
    per_model = stats["judges"][judge]["items_cbt_vs_instruct"]
    models = sorted(m for m in per_model if not m.startswith("_"))
    present = {i for m in models for i in per_model[m]}
    items = [i for i in CTRS_ORDER if i in present] + sorted(present - set(CTRS_ORDER))
    grid = np.array([[per_model[m].get(i, {}).get("mean_difference") or 0.0 for i in items] for m in models] or [[0.0]])
    fig, ax = plt.subplots(figsize=(2 + 0.6 * max(1, len(items)), 2.4 + 0.45 * max(1, len(models))))
    limit = max(0.5, float(np.abs(grid).max()))
    image = ax.imshow(grid, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(items)), items, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(models)), models, fontsize=8)
    fig.colorbar(image, ax=ax, label="cbt − instruct")
    ax.set_title(f"Item-level change, judge {judge}", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def fig_judge_distributions(scores: pl.DataFrame, path: Path) -> None:
    totals = scores.filter(pl.col("item") == "total").to_pandas()
    judges = sorted(totals["judge"].unique())
    fig, ax = plt.subplots(figsize=(1.5 + 1.8 * len(judges), 3.4))
    groups = [(j, c) for j in judges for c in sorted(totals[totals["judge"] == j]["condition"].unique())]
    ax.boxplot([totals[(totals["judge"] == j) & (totals["condition"] == c)]["score"] for j, c in groups])
    ax.set_xticks(range(1, len(groups) + 1), [f"{j}\n{c}" for j, c in groups], fontsize=8)
    ax.set_ylabel("CTRS total (0-66)")
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


def _paired_table(paired: dict[str, Any]) -> list[str]:
    lines = ["| model | n pairs | mean instruct | mean cbt | difference [95% CI] | t (df) | p | Cohen's dz | Wilcoxon p |",
             "|---|---|---|---|---|---|---|---|---|"]
    for model, r in paired.items():
        if not r.get("ran"):
            lines.append(f"| {model} | {r.get('n', '—')} | — | — | not run: {r['reason']} | | | | |")
            continue
        ci = r.get("ci95") or [None, None]
        lines.append(
            f"| {'pooled (all models)' if model == '_pooled' else model} | {r['n']} | {_fmt(r['mean_baseline'])} | "
            f"{_fmt(r['mean_tuned'])} | {_fmt(r['mean_difference'])} [{_fmt(ci[0])}, {_fmt(ci[1])}] | "
            f"{_fmt(r.get('t'))} ({r.get('df')}) | {_fmt(r.get('p'))} | {_fmt(r.get('cohens_dz'))} | "
            f"{_fmt(r.get('wilcoxon', {}).get('p'))} |")
    return lines


def _anova_lines(between: dict[str, Any]) -> list[str]:
    lines = ["| condition | n subjects | F | df | p | p (GG) | partial η² | sphericity W (p) |", "|---|---|---|---|---|---|---|---|"]
    for condition, r in between.items():
        if not r.get("ran"):
            lines.append(f"| {condition} | {r.get('n', '—')} | not run: {r['reason']} | | | | | |")
            continue
        sph = r["sphericity"]
        lines.append(f"| {condition} | {r['n']} | {_fmt(r['F'])} | {r['df_effect']}, {r['df_error']} | {_fmt(r['p'])} | "
                     f"{_fmt(r['p_gg'])} | {_fmt(r['partial_eta_squared'])} | {_fmt(sph['W'])} ({_fmt(sph['p'])}) |")
    return lines


def _icc_lines(title: str, block: dict[str, Any]) -> list[str]:
    if not block or block.get("ran") is False:
        return [f"{title}: not run ({block.get('reason', 'no data')}).", ""]
    lines = [f"{title}:", "", "| item | ICC(2,1) [95% CI] | ICC(2,k) | n transcripts |", "|---|---|---|---|"]
    order = [i for i in CTRS_ORDER + ["total"] if i in block] + sorted(set(block) - set(CTRS_ORDER) - {"total"})
    for item in order:
        r = block[item]
        if not r.get("ran"):
            lines.append(f"| {item} | not run: {r['reason']} | | |")
            continue
        single, ci = r["icc2_single"], r["icc2_single"]["ci95"]
        lines.append(f"| {item} | {_fmt(single['icc'])} [{_fmt(ci[0])}, {_fmt(ci[1])}] | {_fmt(r['icc2_mean']['icc'])} | "
                     f"{r['n_transcripts']} |")
    return lines + [""]


def write_report(path: str | Path, *, stats: dict[str, Any], primary_judge: str, figures: dict[str, str],
                 usage: dict[str, dict[str, float]], train_logs: dict[str, dict[str, Any]], config_summary: str) -> None:
    lines = ["# cbtflow report", "", f"> {DISCLAIMER}", "", config_summary, ""]
    for judge, result in stats["judges"].items():
        tag = " (primary)" if judge == primary_judge else ""
        lines += [f"## Judge `{judge}`{tag}", ""]
        if result.get("heuristic"):
            lines += ["*Heuristic baseline: a lexicon count of CBT markers, not a competence rating.*", ""]
        lines += ["### Scores (mean ± SD; the study's table reads like the percent column)", "",
                  "| model | condition | n | total (0-66) | percent |", "|---|---|---|---|---|"]
        for model, per in result["descriptives"].items():
            for condition, d in per.items():
                pct = result["descriptives_percent"][model][condition]
                lines.append(f"| {model} | {condition} | {d['n']} | {_fmt(d['mean'])} ± {_fmt(d['sd'])} | "
                             f"{_fmt(pct['mean'])} ± {_fmt(pct['sd'])} |")
        lines += ["", "### CBT-tuned vs instruct (paired by profile × seed, CTRS total 0-66)", ""]
        lines += _paired_table(result["paired_cbt_vs_instruct"]) + [""]
        for contrast, table in result.get("paired_conditions", {}).items():
            a, b = contrast.split("_vs_")
            lines += [f"### {a} vs {b} (paired, difference = {a} − {b})", ""] + _paired_table(table) + [""]
        lines += ["### Between models (one-way repeated-measures ANOVA per condition)", ""]
        lines += _anova_lines(result["between_models"]) + [""]
        two_way = result["model_by_condition"]
        if two_way.get("ran"):
            lines += ["### Model × condition (two-way RM-ANOVA)", "", "| effect | F | p | partial η² |", "|---|---|---|---|"]
            lines += [f"| {k} | {_fmt(v['F'])} | {_fmt(v['p'])} | {_fmt(v['partial_eta_squared'])} |"
                      for k, v in two_way["effects"].items()] + [""]
        else:
            lines += [f"Model × condition RM-ANOVA not run: {two_way['reason']}", ""]
        comp = result["competence"]
        lines += [f"### Competence (total ≥ {comp['threshold']:g} of 66)", "", "| model | condition | share | n |", "|---|---|---|---|"]
        lines += [f"| {m} | {c} | {_fmt(v['share'])} | {v['n']} |" for m, per in comp["by_model"].items()
                  for c, v in per.items()] + [""]
        ctx = result["context_length"]
        lines += ["### Score against transcript length", "",
                  (f"Slope {_fmt(ctx['slope_per_1000_tokens'])} points per 1,000 tokens "
                   f"[95% CI {_fmt(ctx['ci95_per_1000_tokens'][0])}, {_fmt(ctx['ci95_per_1000_tokens'][1])}], n = {ctx['n']}."
                   if ctx.get("ran") else f"Not run: {ctx['reason']}")]
        turn = ctx.get("per_turn", {})
        lines += [(f"Slope {_fmt(turn['slope'])} points per turn [95% CI {_fmt(turn['ci95'][0])}, {_fmt(turn['ci95'][1])}]."
                   if turn.get("ran", True) and "slope" in turn else f"Per turn: not run ({turn.get('reason', 'no data')})."), ""]
    lines += ["## Judge reliability (ICC(2,1), two-way random, absolute agreement)", ""]
    lines += _icc_lines("Across judges (consensus scores; which judge the main analysis uses is stated above)",
                        stats.get("reliability_across_judges", {}))
    for judge, result in stats["judges"].items():
        lines += _icc_lines(f"Across repeats of judge `{judge}`", result.get("reliability_across_repeats", {}))
    lines += ["## Fine-tuning", "", "| adapter | backend | steps | first-quarter loss | last-quarter loss | tokens/s | peak MB |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {name} | {log['backend']} | {log['steps']} | {_fmt(log['first_quarter_loss'])} | "
              f"{_fmt(log['last_quarter_loss'])} | {_fmt(log['tokens_per_second'])} | {_fmt(log['peak_memory_mb'])} |"
              for name, log in sorted(train_logs.items())] + [""]
    lines += ["## Calls, tokens and cost per stage", "", "| stage | calls | cache hits | prompt tokens | completion tokens | seconds | cost USD |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {s} | {int(u['calls'])} | {int(u['cache_hits'])} | {int(u['prompt_tokens'])} | {int(u['completion_tokens'])} | "
              f"{u['seconds']:.1f} | {u['cost_usd']:.4f} |" for s, u in usage.items()] + [""]
    lines += ["## Figures", ""] + [f"![{name}](figures/{Path(file).name})" for name, file in figures.items()] + [""]
    write_text_atomic(path, "\n".join(lines))
