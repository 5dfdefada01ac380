"""The analysis a reviewer would accept, from a long-format scores table.

The unit of every test is the simulated patient (eval profile). The headline per judge is
the ``primary`` block: for each contrast present, tuned − baseline per model and pooled,
generalising over patients *and* training runs when there are two or more seeds
(``generalising``: crossed random effects, small-sample df), with its 95% CI, p, and Holm p
within its declared family (the primary family is cbt vs instruct per model; pooled rows
are summaries). The paired t on profile means, which is conditional on the adapters that
were trained, stays under ``conditional_on_adapters``, labelled. The study's own analysis
(profile × seed as units) is kept under ``as_in_study``, never as the headline. Every
result records its n; a test that cannot run says why.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from cbtflow.conditions import BASELINE, TUNED, contrast_name, contrasts_among
from cbtflow.judge.kinds import HEURISTIC_SCALE
from cbtflow.stats.agreement import HUMAN_PREFIX, human_agreement, icc, reliability
from cbtflow.stats.anova import rm_anova_models, rm_anova_two_way
from cbtflow.stats.course import course_analysis, course_means, has_course
from cbtflow.stats.descriptive import competence, context_length, descriptives
from cbtflow.stats.generalising import headline_contrast
from cbtflow.stats.mixed import mixed_model
from cbtflow.stats.paired import (
    adjust_families,
    cohens_dz_ci,
    holm,
    paired_t,
    paired_test,
    partial_eta_squared_ci,
    profile_contrast,
    resolve_families,
    skipped,
    study_contrast,
)
from cbtflow.stats.robustness import robustness_matrix
from cbtflow.stats.styles import style_interaction
from cbtflow.stats.units import PROFILE_UNIT, STUDY_UNIT, profile_means

__all__ = [
    "analyse",
    "cohens_dz_ci",
    "holm",
    "icc",
    "paired_t",
    "paired_test",
    "partial_eta_squared_ci",
    "profile_contrast",
    "mixed_model",
    "rm_anova_models",
    "rm_anova_two_way",
    "VARIANCE_SOURCES",
]

STUDY_LABEL = "as in the study: profile × seed treated as independent"
CONDITIONAL_LABEL = (
    "conditional on the adapters that were trained: paired t on profile means; it answers whether these "
    "particular adapters helped these patients, not whether the recipe helps"
)
VARIANCE_SOURCES = (
    "The headline (primary) generalises over simulated patients and, with two or more seeds, over training "
    "runs: each adapter (model × seed) is one draw of the recipe, and a run that came out well or badly shifts "
    "all its patients together, so its variance is in the CI, with small-sample (Satterthwaite) df. The paired "
    "tests on profile means are conditional on the adapters that were trained and are labelled so."
)


def json_safe(value: Any) -> Any:
    """JSON-safe numbers: NaN/inf become None, numpy scalars become Python ones."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else value
    return value


def item_level(items: pd.DataFrame, tuned: str = TUNED, baseline: str = BASELINE) -> dict[str, Any]:
    """Per model and item: tuned − baseline on profile means, Holm across the model's items."""
    out: dict[str, Any] = {}
    for (model, item), group in items.groupby(["model", "item"]):
        wide = profile_means(group).pivot_table(index="profile", columns="condition", values="score")
        if tuned not in wide or baseline not in wide:
            continue
        wide = wide.dropna(subset=[tuned, baseline])
        out.setdefault(str(model), {})[str(item)] = {
            **paired_test(wide[tuned].to_numpy(), wide[baseline].to_numpy()),
            "unit": PROFILE_UNIT,
        }
    if not out:
        return {"_all": skipped(f"needs item scores under both '{tuned}' and '{baseline}'")}
    for per_item in out.values():
        names = sorted(per_item)
        for name, p in zip(names, holm([per_item[i].get("p") for i in names])):
            per_item[name]["p_holm"] = p
    return out


def split_by_answering_model(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """A judge whose scores came from more than one model (a fallback answered some calls)
    becomes one judge per answering model, ``judge@model``: different models' scores are
    never pooled under one name. Returns the relabelled rows and the splits made."""
    if "answered_by" not in frame or frame["answered_by"].isna().all():
        return frame, {}
    splits: dict[str, list[str]] = {}
    frame = frame.copy()
    for judge, rows in frame.groupby("judge"):
        models = sorted(rows["answered_by"].dropna().unique())
        if len(models) > 1:
            named = rows["judge"] + "@" + rows["answered_by"].fillna("unknown")
            frame.loc[rows.index, "judge"] = named
            splits[str(judge)] = sorted(named.unique())
    return frame, splits


def flag_counts(totals: pd.DataFrame) -> dict[str, Any]:
    """Transcripts with heuristic harmful or degenerate flags, per model × condition."""
    if "harmful_flags" not in totals or totals["harmful_flags"].isna().all():
        return skipped("no detector flags in this table")
    out: dict[str, Any] = {}
    for (model, condition), g in totals.groupby(["model", "condition"]):
        out.setdefault(str(model), {})[str(condition)] = {
            "n": int(len(g)),
            "harmful": int((g["harmful_flags"].fillna(0) > 0).sum()),
            "degenerate": int((g["degenerate_flags"].fillna(0) > 0).sum()),
        }
    return {"ran": True, "detectors": "heuristic (resources/detectors.yaml)", "by_model": out}


def digit_mass(items: pd.DataFrame, totals: pd.DataFrame) -> dict[str, Any]:
    """A local LLM judge's confidence: mean probability mass on the score digits, and the
    share of item scores flagged as low-mass."""
    if "digit_mass" not in items or items["digit_mass"].isna().all():
        return skipped("not a local LLM judge")
    flagged = float(totals["low_confidence_items"].fillna(0).sum()) if "low_confidence_items" in totals else 0.0
    return {
        "ran": True,
        "mean_mass": float(items["digit_mass"].mean()),
        "min_mass": float(items["digit_mass"].min()),
        "flagged_share": flagged / max(1, int(items["digit_mass"].notna().sum())),
    }


def _contrasts(totals: pd.DataFrame, pairs: list[tuple[str, str]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each contrast's headline (generalising) and conditional blocks."""
    primary, conditional = {}, {}
    for a, b in pairs:
        blocks = profile_contrast(totals, a, b)
        primary[contrast_name(a, b)] = headline_contrast(totals, a, b, copy.deepcopy(blocks))
        conditional[contrast_name(a, b)] = {m: {**block, "label": CONDITIONAL_LABEL} for m, block in blocks.items()}
    return primary, conditional


def _judge_analysis(
    jframe: pd.DataFrame, repeats: pd.DataFrame, threshold: float | None, families: dict[str, list[str]] | None
) -> dict[str, Any]:
    judge = str(jframe["judge"].iloc[0])
    heuristic = bool(jframe["heuristic"].fillna(False).iloc[0]) if "heuristic" in jframe else False
    totals = jframe[jframe["item"] == "total"]
    items = jframe[~jframe["item"].isin(["total", "percent", "safety"])]
    conditions = sorted(totals["condition"].unique())
    pairs = contrasts_among(conditions)
    if not pairs:
        raise ValueError(
            f"judge '{judge}': conditions {conditions} contain no pair to compare; the analysis needs "
            f"'{TUNED}' and '{BASELINE}' (or another contrast pair) scored for the same profiles"
        )
    names = [contrast_name(a, b) for a, b in pairs]
    family_list = resolve_families(names, families)
    primary, conditional = _contrasts(totals, pairs)
    splits = sorted(totals["eval_split"].dropna().unique()) if "eval_split" in totals else []
    return {
        "heuristic": heuristic,
        "scale": HEURISTIC_SCALE if heuristic else "rubric total",
        "eval_splits": splits,
        "primary_by_split": (
            {split: _contrasts(totals[totals["eval_split"] == split], pairs)[0] for split in splits}
            if len(splits) > 1
            else skipped("one eval split")
        ),
        "styles": sorted(totals["style"].dropna().unique()) if "style" in totals else [],
        "by_style": style_interaction(totals) if (TUNED, BASELINE) in pairs else skipped("no cbt vs instruct pair"),
        "n_transcripts": int(len(totals)),
        "n_profiles": int(totals["profile"].nunique()),
        "descriptives": descriptives(totals),
        "descriptives_percent": descriptives(jframe[jframe["item"] == "percent"]),
        "primary": primary,
        "multiplicity": adjust_families(primary, family_list),
        "conditional_on_adapters": conditional,
        "conditional_label": CONDITIONAL_LABEL,
        "multiplicity_conditional": adjust_families(conditional, family_list),
        "variance_sources": VARIANCE_SOURCES,
        "between_models": {c: rm_anova_models(totals, c) for c in conditions},
        "model_by_condition": rm_anova_two_way(totals),
        "mixed_model": (
            mixed_model(totals) if (TUNED, BASELINE) in pairs else skipped(f"needs both '{TUNED}' and '{BASELINE}'")
        ),
        "items": {contrast_name(a, b): item_level(items, a, b) for a, b in pairs},
        "as_in_study": {
            "label": STUDY_LABEL,
            "unit": STUDY_UNIT,
            "paired": {contrast_name(a, b): study_contrast(totals, a, b) for a, b in pairs},
            "between_models": {c: rm_anova_models(totals, c, unit="profile_seed") for c in conditions},
            "model_by_condition": rm_anova_two_way(totals, unit="profile_seed"),
        },
        "competence": (
            skipped("heuristic judge: a competence threshold on CTRS totals does not apply")
            if heuristic
            else skipped("no competence threshold given (the rubric's competence_threshold)")
            if threshold is None
            else competence(totals, threshold)
        ),
        "flags": flag_counts(totals),
        "digit_mass": digit_mass(items, totals),
        "context_length": context_length(totals),
        "reliability_across_repeats": (
            reliability(repeats, "repeat") if len(repeats) else skipped("judge ran with repeats: 1")
        ),
    }


def analyse(
    scores: pl.DataFrame,
    threshold: float | None = None,
    item_order: list[str] | None = None,
    primary_judge: str | None = None,
    families: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Every analysis, per judge; reliability across repeats and across judges; the
        robustness of the primary effect to the judge and the patient style. A table of courses
    (``session`` takes more than one value) is analysed on course means, the declared course
    primary, and each judge gains a ``course`` section (``cbtflow.stats.course``).
        ``item_order`` is the rubric's item order, kept for the report's tables and figures;
        ``families`` the declared Holm families (``report.multiplicity_families``), by default
        the primary family (cbt vs instruct per model) and one secondary family per other contrast.

        Raises ValueError naming what is missing instead of returning an empty analysis.
    """
    everything = scores.to_pandas()
    if "repeat" not in everything:
        everything["repeat"] = np.nan
    frame = everything[everything["repeat"].isna()]
    if not (frame["item"] == "total").any():
        raise ValueError("the scores table has no 'total' rows (and no item rows to sum); nothing to analyse")
    frame, splits = split_by_answering_model(frame)
    everything, _ = split_by_answering_model(everything)
    courses: dict[str, Any] = {}
    if has_course(frame):  # the headline is the course-level primary: the mean over sessions
        first = set(frame.loc[frame["session"] == frame["session"].min(), "item"])
        later_only = sorted(set(frame["item"]) - first - {"total", "percent", "safety"})
        courses = {str(j): course_analysis(g, later_only) for j, g in frame.groupby("judge")}
        frame, everything = course_means(frame), course_means(everything)
    result: dict[str, Any] = {
        "judges": {},
        "judges_split_by_answering_model": splits,
        "item_order": list(item_order or sorted(set(frame["item"]) - {"total", "percent"})),
    }
    machines = frame[~frame["judge"].str.startswith(HUMAN_PREFIX)]
    result["reliability_across_judges"] = (
        reliability(machines, "judge")
        if machines["judge"].nunique() > 1
        else skipped("needs at least 2 judges (human raters are compared with each judge apart)")
    )
    result["human_agreement"] = human_agreement(frame)
    result["robustness"] = robustness_matrix(frame[frame["item"] == "total"], primary_judge)
    for judge, jframe in frame.groupby("judge"):
        repeats = everything[(everything["judge"] == judge) & everything["repeat"].notna()]
        result["judges"][str(judge)] = _judge_analysis(jframe, repeats, threshold, families)
        result["judges"][str(judge)]["course"] = courses.get(str(judge)) or skipped("one session per patient")
    return json_safe(result)
