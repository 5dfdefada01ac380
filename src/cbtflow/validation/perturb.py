"""Controlled perturbations of a transcript, for the judge card's metamorphic checks.

A judge that measures an item must score lower when the behaviour the item names is taken
out of a session (sensitivity), not on other items (specificity), and not change when
only form changes: padding, labels in the text, whitespace (invariance). The entries are
data (``resources/perturbations.yaml``); this module holds the few transformations they
name. Only therapist turns change; each result is a valid transcript (both speakers, the
therapist first), and the same input always gives the same output.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from cbtflow.packaged import RESOURCES

DEFAULT_PERTURBATIONS = RESOURCES / "perturbations.yaml"
SENTENCE = re.compile(r"(?<=[.!?])\s+")
KINDS = ("targeted", "invariance")


def load_perturbations(
    path: str | Path = DEFAULT_PERTURBATIONS,
    items: list[str] | None = None,
    names: list[str] | None = None,
    lowers: dict[str, list[str]] | None = None,
) -> list[dict]:
    """The entries, checked: a known transform, a kind, and (targeted) rubric items to lower;
    only those in ``names`` (``validation.perturbations``) when given.

    What a targeted perturbation should lower depends on the instrument: one whose file maps
    perturbations to its own items (``perturbations: {drop_agenda: [structure]}``, passed as
    ``lowers``) keeps only the targeted perturbations it maps, each lowering its items."""
    try:
        entries = (yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}).get("perturbations")
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: cannot read the perturbations ({err})") from err
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: needs a non-empty 'perturbations' list")
    if lowers is not None:
        entries = [
            {**e, "lowers": list(lowers[e.get("name")])} if e.get("kind") == "targeted" else e
            for e in entries
            if e.get("kind") != "targeted" or e.get("name") in lowers
        ]
    for number, entry in enumerate(entries):
        where = f"{path}: perturbations[{number}] ({entry.get('name', '?')})"
        if entry.get("transform") not in TRANSFORMS:
            raise ValueError(f"{where}: transform {entry.get('transform')!r} is not one of {sorted(TRANSFORMS)}")
        if entry.get("kind") not in KINDS:
            raise ValueError(f"{where}: kind must be one of {KINDS}")
        lowers = entry.get("lowers") or []
        if entry["kind"] == "targeted" and not lowers:
            raise ValueError(f"{where}: a targeted perturbation names the items it should lower ('lowers')")
        unknown = sorted(set(lowers) - set(items or lowers))
        if unknown:
            raise ValueError(f"{where}: items {unknown} are not in the rubric {items}")
    if names:
        known = [e["name"] for e in entries]
        missing = sorted(set(names) - set(known))
        if missing:
            raise ValueError(f"validation.perturbations: {missing} are not in {path} (known: {known})")
        entries = [e for e in entries if e["name"] in names]
    return entries


def _sentences(text: str) -> list[str]:
    return [s for s in SENTENCE.split(text.strip()) if s]


def _pattern(entry: dict[str, Any]) -> re.Pattern[str]:
    return re.compile(entry["match"], re.IGNORECASE)


def _therapist_texts(turns: list[dict[str, Any]], change: Callable[[str], str]) -> list[dict[str, Any]]:
    return [{**t, "text": change(t["text"])} if t["role"] == "therapist" else dict(t) for t in turns]


def drop_sentences(turns: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Remove the therapist sentences that match; a turn left empty becomes a short
    neutral acknowledgement so that the speakers still alternate."""
    pattern = _pattern(entry)

    def change(text: str) -> str:
        kept = [s for s in _sentences(text) if not pattern.search(s)]
        return " ".join(kept) if kept else "Okay."

    return _therapist_texts(turns, change)


def replace_sentences(turns: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Each matching therapist sentence becomes ``replacement``."""
    pattern = _pattern(entry)

    def change(text: str) -> str:
        return " ".join(entry["replacement"] if pattern.search(s) else s for s in _sentences(text))

    return _therapist_texts(turns, change)


def replace_turns(turns: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    """A therapist turn that matches anywhere becomes ``replacement`` as a whole."""
    pattern = _pattern(entry)
    return _therapist_texts(turns, lambda text: entry["replacement"] if pattern.search(text) else text)


def truncate(turns: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Keep the first ``keep_share`` of the turns (at least one exchange): the session is cut short."""
    keep = max(2, round(len(turns) * float(entry["keep_share"])))
    return [dict(t) for t in turns[:keep]]


def pad(turns: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Neutral filler after every therapist turn: more words, the same behaviour."""
    return _therapist_texts(turns, lambda text: f"{text} {entry['filler']}")


def relabel(turns: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Role words in the therapist's text replaced by others (whole words, case kept at the start)."""

    def change(text: str) -> str:
        for old, new in entry["replacements"].items():
            text = re.sub(rf"\b{old}\b", new, text)
            text = re.sub(rf"\b{old.capitalize()}\b", new.capitalize(), text)
        return text

    return _therapist_texts(turns, change)


def whitespace(turns: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Doubled spaces between words and a trailing newline."""
    return _therapist_texts(turns, lambda text: "  ".join(text.split(" ")) + "\n")


TRANSFORMS: dict[str, Callable[[list[dict[str, Any]], dict[str, Any]], list[dict[str, Any]]]] = {
    f.__name__: f for f in (drop_sentences, replace_sentences, replace_turns, truncate, pad, relabel, whitespace)
}


def perturb(transcript: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``transcript`` with ``entry``'s transformation applied, named after it."""
    turns = TRANSFORMS[entry["transform"]](transcript["turns"], entry)
    return {**transcript, "turns": turns, "perturbation": entry["name"]}
