"""Instruments: the rubric a judge scores (items, anchors, scale), as data.

The CTRS (``resources/ctrs/ctrs.yaml``) is the default; ``judging.instrument`` names another
packaged one (``resources/<name>/<name>.yaml``) or a file of your own in the same form. The
file also says what the judge prompts call it (``title``, ``rater``, ``measures``,
``practice``), its default variant, and, optionally, the lexicon beside it that the lexicon
judge counts and a ``safety`` item scored apart from the total.

Course items: an item marked ``applies_from_session: n`` (n > 1) only applies from session n
of a course (reviewing last week's homework, bridging from the last session). The rule,
one place: the total is over the items that apply at every session, so totals compare
across sessions and with one-session runs; a course item is scored where it applies,
recorded as not applicable where it does not (never as 0) and analysed on its own.
Loading moves such items from ``items`` to ``course_items``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

# What the judge prompts say an instrument is, where its file does not (a generic wording).
FRAMING_DEFAULTS = {"rater": "clinical supervisor", "measures": "competence", "practice": "psychotherapy"}
PACKAGED = "resources"  # packaged instruments, as the workflow (run from the project root) sees them


def instrument_file(name_or_path: str) -> str:
    """A packaged instrument by name (``resources/<name>/<name>.yaml``), or a file's path."""
    if "/" in name_or_path or name_or_path.endswith((".yaml", ".yml")):
        return name_or_path
    return f"{PACKAGED}/{name_or_path}/{name_or_path}.yaml"


def lexicon_file(path: str, rubric: dict[str, Any]) -> str | None:
    """The instrument's lexicon (a file beside it), or None when it has none."""
    return str(Path(path).parent / rubric["lexicon"]) if rubric.get("lexicon") else None


def framing(rubric: dict[str, Any]) -> dict[str, Any]:
    """The fields a judge prompt frames its question with (another rubric scored by the
    same judge, the crisis rubric, takes the instrument's)."""
    return {key: rubric[key] for key in ("title", *FRAMING_DEFAULTS)}


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
    for item in rubric["items"]:
        start = item.get("applies_from_session", 1)
        if not isinstance(start, int) or start < 1:
            raise ValueError(
                f"{path}: items.{item['id']}.applies_from_session must be a whole number ≥ 1, not {start!r}"
            )
    every = [i for i in rubric["items"] if i.get("applies_from_session", 1) == 1]
    if not every:
        raise ValueError(f"{path}: every item has applies_from_session > 1; the total needs items that always apply")
    course = [i for i in rubric["items"] if i.get("applies_from_session", 1) > 1]
    return {"title": rubric["name"], **FRAMING_DEFAULTS, **rubric, "items": every, "course_items": course}


def course_items_at(rubric: dict[str, Any], session: int) -> tuple[list[dict[str, Any]], list[str]]:
    """The course items that apply at ``session``, and the ids of those that do not."""
    items = rubric.get("course_items") or []
    applies = [i for i in items if session >= int(i["applies_from_session"])]
    return applies, [i["id"] for i in items if session < int(i["applies_from_session"])]


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
