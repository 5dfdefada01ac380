"""Load the CTRS rubric (items, anchors, scale) from ``resources/ctrs/ctrs.yaml``."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml


def load_rubric(path: str | Path, variant: str | None = None) -> dict[str, Any]:
    try:
        rubric = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: cannot read the rubric ({err})") from err
    if not isinstance(rubric, dict) or not isinstance(rubric.get("items"), list) or "scale" not in rubric:
        raise ValueError(f"{path}: not a rubric (needs name, scale and a list of items, as resources/ctrs/ctrs.yaml)")
    if variant and variant != rubric["name"]:
        changes = (rubric.get("variants") or {}).get(variant)
        if changes is None:
            raise ValueError(
                f"judging.rubric_variant: {path} has no variant {variant!r} "
                f"(known: {sorted(rubric.get('variants') or {})})"
            )
        rubric = copy.deepcopy(rubric)
        for item in rubric["items"]:
            item.update(changes.get(item["id"], {}))
        rubric["name"] = variant
    ids = [item["id"] for item in rubric["items"]]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate item ids")
    return rubric


def item_ids(rubric: dict[str, Any]) -> list[str]:
    return [item["id"] for item in rubric["items"]]


def max_total(rubric: dict[str, Any]) -> int:
    return int(rubric["scale"]["max"]) * len(rubric["items"])


def competence_threshold(rubric: dict[str, Any], override: float | None = None) -> float:
    """The total counted as competent: the config's ``report.competence_threshold`` when
    set, else the rubric file's own (ctrs.yaml: 40 of 66, the study's)."""
    if override is not None:
        return float(override)
    if "competence_threshold" not in rubric:
        raise ValueError(
            f"rubric {rubric.get('name')!r} has no competence_threshold; add one to the rubric file "
            "or set report.competence_threshold in the config"
        )
    return float(rubric["competence_threshold"])


def summarise(rubric: dict[str, Any], item_scores: dict[str, float]) -> dict[str, float]:
    """Raw total (0 to ``max_total``) and the percentage the study appears to report."""
    total = float(sum(item_scores[i] for i in item_ids(rubric)))
    return {
        "total": round(total, 4),
        "max_total": max_total(rubric),
        "percent": round(100.0 * total / max_total(rubric), 4),
    }
