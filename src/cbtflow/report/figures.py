"""The report's figures, one function each, written atomically as PNG files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from cbtflow.conditions import ORDER as CONDITION_ORDER  # noqa: E402
from cbtflow.judge.kinds import HEURISTIC_SCALE  # noqa: E402
from cbtflow.report.format import ordered  # noqa: E402
from cbtflow.report.format import save as _save  # noqa: E402


def placeholder(path: Path, message: str) -> None:
    """A figure with nothing to draw says why, instead of showing an empty panel."""
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    ax.set_axis_off()
    _save(fig, path)


def fig_paired_totals(scores: pl.DataFrame, judge: str, path: Path) -> None:
    """Each grey line is one simulated patient (its mean over seeds), the unit of the tests."""
    totals = scores.filter((pl.col("judge") == judge) & (pl.col("item") == "total")).to_pandas()
    if totals.empty:
        return placeholder(path, f"judge {judge} scored no transcript")
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
    label = HEURISTIC_SCALE if heuristic else "total score"
    axes[0][0].set_ylabel(f"{label}, profile mean over seeds\njudge {judge}", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)


def fig_item_heatmap(stats: dict[str, Any], judge: str, path: Path) -> None:
    """One panel per contrast that has item-level results: the mean difference per model × item."""
    panels = []
    for key, per_model in stats["judges"][judge]["items"].items():
        models = sorted(m for m in per_model if not m.startswith("_"))
        items = ordered({i for m in models for i in per_model[m]}, stats.get("item_order", []))
        if models and items:
            grid = np.array([[per_model[m].get(i, {}).get("mean_difference") or 0.0 for i in items] for m in models])
            panels.append((key.replace("_vs_", " − "), models, items, grid))
    if not panels:
        return placeholder(path, f"no item-level contrast for judge {judge}")
    width = max(len(items) for _, _, items, _ in panels)
    height = max(len(models) for _, models, _, _ in panels)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(len(panels) * (2 + 0.6 * width), 2.4 + 0.45 * height), squeeze=False
    )
    scale = HEURISTIC_SCALE + " per item" if stats["judges"][judge].get("heuristic") else "Item-level change"
    limit = max(0.5, max(float(np.abs(grid).max()) for *_, grid in panels))  # one colour scale for every panel
    for ax, (label, models, items, grid) in zip(axes[0], panels):
        image = ax.imshow(grid, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
        ax.set_xticks(range(len(items)), items, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(models)), models, fontsize=8)
        ax.set_title(f"{scale}, {label}, judge {judge}", fontsize=9)
        fig.colorbar(image, ax=ax, label=label)
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
    if not train_logs:
        return placeholder(path, "no adapter was trained in this run (no condition loads one)")
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


def fig_usage(usage: dict[str, dict[str, Any]], path: Path) -> None:
    stages = list(usage)
    if not stages:
        return placeholder(path, "no usage logs")
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    axes[0].bar(stages, [usage[s].get("completion_tokens", 0) for s in stages], color="C0")
    axes[0].set_ylabel("generated tokens")
    axes[1].bar(stages, [usage[s].get("cost_usd", 0) for s in stages], color="C1")
    axes[1].set_ylabel("cost (USD)")
    for ax in axes:
        ax.tick_params(axis="x", rotation=30, labelsize=8)
    fig.tight_layout()
    _save(fig, path)


def fig_sensitivity(block: dict[str, Any], path: Path) -> None:
    """Cohen's dz per model (rows) under each setup (markers): a robust conclusion keeps its
    markers on the same side of zero and in the same order."""
    if not block.get("ran"):
        return placeholder(path, f"not run: {block.get('reason', '')}")
    fig, ax = plt.subplots(figsize=(7, 3.5))
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
        return placeholder(path, "no human ratings imported (report.human_ratings)")
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


def fig_course_trajectory(stats: dict[str, Any], judge: str, path: Path) -> None:
    """Score by session per model and condition (mean over patients of patient means, 95% CI)."""
    course = (stats["judges"].get(judge) or {}).get("course") or {}
    if not course.get("ran"):
        return placeholder(path, "one session per patient (simulation.sessions: 1): no course to plot")
    by_session = course["by_session"]
    models = sorted(by_session)
    fig, axes = plt.subplots(1, len(models), figsize=(3.4 * len(models), 3.4), sharey=True, squeeze=False)
    for ax, model in zip(axes[0], models):
        for index, condition in enumerate(ordered(by_session[model], CONDITION_ORDER)):
            cells = by_session[model][condition]
            sessions = sorted(int(s) for s in cells)
            means = np.array([cells[str(s)]["mean"] for s in sessions], float)
            low = np.array([(cells[str(s)]["ci95"] or [np.nan, np.nan])[0] for s in sessions], float)
            high = np.array([(cells[str(s)]["ci95"] or [np.nan, np.nan])[1] for s in sessions], float)
            ax.plot(sessions, means, marker="o", color=f"C{index}", label=condition)
            ax.fill_between(sessions, low, high, color=f"C{index}", alpha=0.15)
        ax.set_xticks(sorted({int(s) for per in by_session[model].values() for s in per}))
        ax.set_xlabel("session")
        ax.set_title(model, fontsize=9)
    heuristic = bool((stats["judges"].get(judge) or {}).get("heuristic"))
    axes[0][0].set_ylabel(f"{HEURISTIC_SCALE if heuristic else 'total score'}\njudge {judge}", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
