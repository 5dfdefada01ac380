"""Labelled reference sessions a judge is checked on (known-groups validity).

A user points ``validation.reference_sets`` at any labelled corpus: a JSONL file, one
session a line, ``{"id": ..., "label": ..., "turns": [{"role": "therapist"|"patient",
"text": ...}]}`` (other fields are ignored), with ``label: binary`` (0/1 or true/false) or
``ordinal`` (numbers, higher is better). A line that breaks this is an error naming the
file and line. The bundled set (``resources/reference/authored.yaml``) is written by us,
never by a model: pairs of a competent and a deficient session of one patient.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from cbtflow.packaged import RESOURCES

AUTHORED = RESOURCES / "reference" / "authored.yaml"
ROLES = ("therapist", "patient")
LABEL_KINDS = ("binary", "ordinal")


def _label(value: Any, kind: str, where: str) -> float:
    if kind == "binary":
        if isinstance(value, bool) or value in (0, 1):
            return float(value)
        raise ValueError(f"{where}: a binary label is 0, 1, true or false, not {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: an ordinal label is a finite number, not {value!r}")
    return float(value)


def _turns(turns: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(turns, list) or not turns:
        raise ValueError(f'{where}: needs a non-empty "turns" list')
    for number, turn in enumerate(turns):
        if not isinstance(turn, dict) or turn.get("role") not in ROLES or not isinstance(turn.get("text"), str):
            raise ValueError(f'{where}: turns[{number}] needs "role" (therapist or patient) and a string "text"')
    if {t["role"] for t in turns} != set(ROLES):
        raise ValueError(f"{where}: a session needs turns from both the therapist and the patient")
    return [{"role": t["role"], "text": t["text"]} for t in turns]


def load_reference_set(path: str | Path, label: str) -> list[dict[str, Any]]:
    """The sessions of one JSONL reference set, each checked; fails naming file and line."""
    if label not in LABEL_KINDS:
        raise ValueError(f"validation.reference_sets: label must be one of {LABEL_KINDS}, not {label!r}")
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ValueError(f"{path}: cannot read the reference set ({err})") from err
    sessions, seen = [], {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: not valid JSON ({err.msg})") from err
        if not isinstance(row, dict) or any(key not in row for key in ("id", "label", "turns")):
            raise ValueError(f'{where}: each line needs "id", "label" and "turns"')
        key = str(row["id"])
        if key in seen:
            raise ValueError(f"{where}: id {key!r} repeats line {seen[key]}")
        seen[key] = number
        sessions.append({"id": key, "label": _label(row["label"], label, where), "turns": _turns(row["turns"], where)})
    if not sessions:
        raise ValueError(f"{path}: the reference set has no sessions")
    if label == "binary" and len({s["label"] for s in sessions}) < 2:
        raise ValueError(f"{path}: a binary reference set needs sessions of both labels")
    return sessions


def authored_sessions(path: str | Path = AUTHORED) -> list[dict[str, Any]]:
    """The bundled pairs as sessions: label 1 competent, 0 deficient (``differs_in`` names the items)."""
    pairs = yaml.safe_load(Path(path).read_text(encoding="utf-8"))["pairs"]
    sessions = []
    for number, pair in enumerate(pairs):
        for label, therapist, differs in (
            (1.0, pair["competent"], []),
            (0.0, pair["deficient"]["therapist"], pair["deficient"]["items"]),
        ):
            turns = []
            for said, answered in zip(therapist, pair["patient"]):
                turns += [{"role": "therapist", "text": said}, {"role": "patient", "text": answered}]
            kind = "competent" if label else "deficient"
            sessions.append(
                {"id": f"pair{number}-{kind}", "label": label, "turns": turns, "differs_in": differs, "pair": number}
            )
    return sessions


def therapist_words(turns: list[dict[str, Any]]) -> int:
    """Words the therapist said: the length a judge must do better than."""
    return sum(len(t["text"].split()) for t in turns if t["role"] == "therapist")
