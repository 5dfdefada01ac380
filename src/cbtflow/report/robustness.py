"""The report's robustness section and its two figures: the primary effect under each
judge and patient setup (a table and a sensitivity plot), and where each judge departs
from human raters on the scale (confusion matrices)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cbtflow.report.format import ci as _ci  # noqa: E402
from cbtflow.report.format import fmt as _fmt  # noqa: E402
from cbtflow.report.format import save as _save  # noqa: E402


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
        f"| setup | model | n units | {tuned} − {baseline} [95% CI] | Cohen's dz |",
        "|---|---|---|---|---|",
    ]
    for setup, entry in block["setups"].items():
        for model, r in entry["by_model"].items():
            lines.append(
                f"| {setup} | {model} | {r['n_units']} | {_fmt(r['effect'])} {_ci(r['ci95'])} | {_fmt(r['dz'])} |"
            )
    lines += [
        "",
        "Do the setups rank the models alike? Kendall's τ-b between two setups' per-model effects, with a "
        f"percentile bootstrap 95% CI over simulated patients ({block['bootstrap']} resamples; none with fewer "
        "than 3 models, where τ can only be ±1):",
        "",
        "| family | setup A | setup B | models | Kendall τ [95% CI] |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['family']} | {r['a']} | {r['b']} | {r['n_models']} | {_fmt(r['tau'])} {_ci(r['ci95'])} |"
        for r in block["ranking_agreement"]
    ]
    return lines + [""]


def fig_sensitivity(block: dict[str, Any], path: Path) -> None:
    """Cohen's dz per model (rows) under each setup (markers): a robust conclusion keeps its
    markers on the same side of zero and in the same order."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    if not block.get("ran"):
        ax.text(0.5, 0.5, f"not run: {block.get('reason', '')}", ha="center", va="center", wrap=True)
        ax.set_axis_off()
        return _save(fig, path)
    models = sorted({m for entry in block["setups"].values() for m in entry["by_model"]})
    offsets = np.linspace(-0.25, 0.25, max(1, len(block["setups"])))
    for offset, (setup, entry) in zip(offsets, block["setups"].items()):
        xs = [entry["by_model"].get(m, {}).get("dz") for m in models]
        ys = [i + offset for i in range(len(models))]
        marker = "o" if entry["family"] == "judge" else "s"
        ax.scatter([x if x is not None else np.nan for x in xs], ys, label=setup, marker=marker)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(range(len(models)), models)
    ax.set_xlabel(f"Cohen's dz of {block['tuned']} − {block['baseline']} (profile as unit)")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    _save(fig, path)


def fig_judge_confusion(agreement: dict[str, Any], path: Path) -> None:
    """Item scores of each judge (columns) against a human rater (rows), pooled over items."""
    pairs = [
        (judge, human, entry["confusion"])
        for judge, per in (agreement.get("by_judge") or {}).items()
        for human, entry in per.items()
        if entry.get("confusion", {}).get("labels")
    ]
    if not pairs:
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.text(0.5, 0.5, "no human ratings imported (report.human_ratings)", ha="center", va="center")
        ax.set_axis_off()
        return _save(fig, path)
    fig, axes = plt.subplots(1, len(pairs), figsize=(3.6 * len(pairs), 3.4), squeeze=False)
    for ax, (judge, human, matrix) in zip(axes[0], pairs):
        counts, labels = np.array(matrix["counts"]), matrix["labels"]
        ax.imshow(counts, cmap="Blues")
        for (i, j), n in np.ndenumerate(counts):
            ax.text(j, i, str(n), ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel(f"{judge} (rounded)")
        ax.set_ylabel(human)
    fig.tight_layout()
    _save(fig, path)
