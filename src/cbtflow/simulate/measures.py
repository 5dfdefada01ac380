"""Simulated self-reports: the patient role answers brief standardised questionnaires in
character, before and after an evaluation session (mood, affect) and after it (alliance).

They show how the simulation moves, as CACTUS's PANAS and PsychEval's WAI do; a simulated
self-report is not a patient outcome, and the report says so. Each questionnaire is data
(``resources/measures/<name>.yaml``) shaped like a rubric (items with anchors on one
scale), so a local patient answers through its probabilities of the score digits and an
API patient in validated JSON with re-asks, through the same code and call cache as the
judges.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cbtflow.dialogue import render_transcript
from cbtflow.llm import Client, Endpoint
from cbtflow.llm import items as llm_judge
from cbtflow.seeds import derive_seed

WHEN = ("pre", "post")
# A self-report is a short in-character answer: no judge-sized replies.
API_SAMPLING = {"temperature": 0.0, "max_tokens": 256}


def load_measure(path: str | Path) -> dict[str, Any]:
    """A questionnaire, checked: items with anchors on the scale, subscales naming items."""
    spec = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    needed = ("name", "when", "scale", "better", "items", "subscales")
    missing = [k for k in needed if k not in (spec or {})]
    if missing:
        raise ValueError(f"{path}: a measure needs {missing} (see resources/measures/mood.yaml)")
    ids = {item["id"] for item in spec["items"]}
    for name, members in spec["subscales"].items():
        unknown = sorted(set(members) - ids)
        if unknown:
            raise ValueError(f"{path}: subscale {name!r} names unknown items {unknown}")
    bad = [w for w in spec["when"] if w not in WHEN]
    if bad:
        raise ValueError(f"{path}: when {bad} is not one of {list(WHEN)}")
    return spec


def better(measure: dict[str, Any], subscale: str) -> str:
    """ "lower" or "higher": which direction of a subscale means the patient is better off."""
    rule = measure["better"]
    return rule[subscale] if isinstance(rule, dict) else rule


def context(patient_system: str, turns: list[dict[str, Any]] | None) -> str:
    """What the patient answers from: its own persona, and after the session the session."""
    if turns is None:
        return f"{patient_system}\n\nToday's therapy session has not started yet."
    return f"{patient_system}\n\nThe therapy session you just had:\n{render_transcript(turns)}"


def administer(
    client: Client,
    endpoint: Endpoint,
    measure: dict[str, Any],
    text: str,
    templates: dict[str, str],
    seed: int,
    raw_path: str | Path,
) -> dict[str, Any]:
    """Item scores and subscale totals of one questionnaire answered in character."""
    if endpoint.is_local or endpoint.is_scripted:
        items = llm_judge.score_local(client, endpoint, measure, text, templates["measure_item"])
    else:
        call = llm_judge.ApiCall(client, endpoint, API_SAMPLING, seed, 2, raw_path)
        items = llm_judge.score_api_per_item(call, measure, text, templates["measure_item_json"])
    scores = {k: v["score"] for k, v in items.items()}
    return {
        "items": scores,
        "subscales": {
            name: round(sum(scores[i] for i in members), 4) for name, members in measure["subscales"].items()
        },
    }


def self_reports(
    client: Client,
    endpoint: Endpoint,
    measures: dict[str, dict[str, Any]],
    patient_system: str,
    turns: list[dict[str, Any]],
    templates: dict[str, str],
    seed: int,
    raw_stem: str | Path,
) -> dict[str, dict[str, Any]]:
    """``{"pre": {measure: scores}, "post": {...}}`` for one session: each questionnaire at
    the time points its file names. The pre answers depend on the persona only, so every
    model and condition gets the same ones (answered once, then from the call cache)."""
    out: dict[str, dict[str, Any]] = {}
    for w, when in enumerate(WHEN):
        text = context(patient_system, None if when == "pre" else turns)
        for m, (name, measure) in enumerate(measures.items()):
            if when in measure["when"]:
                raw = f"{raw_stem}.{when}.{name}.raw.txt"
                answer_seed = derive_seed(seed, "measure.answer", w, m)
                out.setdefault(when, {})[name] = administer(
                    client, endpoint, measure, text, templates, answer_seed, raw
                )
    return out
