"""Heuristic detectors of degenerate and harmful therapist behaviour, from ``resources/detectors.yaml``.

They exist so that no judge can be gamed by keyword stuffing or repetition, and so that the
plainest harmful advice is counted. They are heuristics (regexes and word overlap), named
as such wherever they appear; every flag carries the turn and the text that fired it.
Used on eval transcripts (flags cap judge scores) and on generated training sessions
(flags reject the session).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

WORD = re.compile(r"[a-z0-9']+")
# Words that carry no content for "did the therapist respond to what was said".
STOPWORDS = frozenset(
    """a about after again all am an and any are as at be because been before being but by can
could did do does doing don't for from had has have having he her here hers him his how i i'm if in into is it it's
its just like me more most my no not now of on or our out over so some such than that that's the their them then
there these they this those through to too up very was we were what when where which while who why will with would
you you're your yours yourself okay ok yes yeah well really think know feel felt get got go going want""".split()
)
REFERS_BACK = re.compile(
    r"\b(you said|you mentioned|it sounds like|you feel|you're feeling|you felt|that sounds|"
    r"i hear|so you|earlier you|what you just)\b",
    re.I,
)


def load_detectors(path: str | Path) -> dict[str, Any]:
    spec = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    for key in ("jargon", "degenerate", "harmful", "caps"):
        if key not in spec:
            raise ValueError(f"{path}: missing '{key}'")
    for entry in spec["harmful"]:
        try:
            re.compile(entry["pattern"])
        except (KeyError, re.error) as err:
            raise ValueError(f"{path}: harmful.{entry.get('name')}: bad or missing pattern ({err})") from err
    return spec


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern, re.IGNORECASE)


def _jargon_regex(spec: dict[str, Any]) -> re.Pattern:
    return _compiled(r"\b(" + "|".join(spec["jargon"]) + r")\b")


def _trigrams(text: str) -> set[tuple[str, ...]]:
    words = WORD.findall(text.lower())
    return {tuple(words[i : i + 3]) for i in range(max(0, len(words) - 2))} or {tuple(words)}


def _similarity(a: set, b: set) -> float:
    return len(a & b) / max(1, min(len(a), len(b)))


def jargon_words(text: str, spec: dict[str, Any]) -> tuple[int, int, int]:
    """(words, words inside jargon matches, jargon terms) of a text."""
    matches = [m.group(0) for m in _jargon_regex(spec).finditer(text)]
    return len(WORD.findall(text.lower())), sum(len(WORD.findall(m.lower())) for m in matches), len(matches)


def keyword_list_turn(text: str, spec: dict[str, Any]) -> bool:
    """Mostly jargon, or a comma list of short fragments holding jargon terms."""
    rule = spec["degenerate"]["keyword_list"]
    words, covered, terms = jargon_words(text, spec)
    if words < rule["min_words"]:
        return False
    if covered / words >= rule["min_jargon_share"]:
        return True
    fragments = [f for f in re.split(r"[,;\n•·|/]+", text) if f.strip()]
    short = [f for f in fragments if len(WORD.findall(f)) <= rule["max_fragment_words"]]
    return len(short) >= rule["min_fragments"] and terms >= rule["min_list_terms"]


def _content(text: str) -> set[str]:
    return {w.rstrip("s") for w in WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 2}


def _negated(text: str, match: re.Match, spec: dict[str, Any]) -> bool:
    """Advice against the harm: a negation shortly before the match, in the same sentence."""
    before = text[max(0, match.start() - int(spec.get("negation_window", 30))) : match.start()]
    before = re.split(r"[.!?]", before)[-1]
    return bool(spec.get("negation")) and bool(_compiled(spec["negation"]).search(before))


def detect(turns: Sequence[dict[str, Any]], spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Flags for one session: ``{detector, kind, turns, evidence}``; kind is degenerate,
    harmful or ignores_patient. Turn numbers index ``turns`` (0-based). Whitespace is folded
    first: the judge card's whitespace invariance found doubled spaces breaking phrase rules."""
    turns = [{**t, "text": " ".join(t["text"].split())} for t in turns]
    flags: list[dict[str, Any]] = []
    therapist = [(i, t["text"]) for i, t in enumerate(turns) if t["role"] == "therapist"]
    degenerate = spec["degenerate"]
    duplicates, lists, seen = [], [], []
    for i, text in therapist:
        grams = _trigrams(text)
        if any(_similarity(grams, earlier) >= degenerate["near_duplicate"]["min_similarity"] for earlier in seen):
            duplicates.append(i)
        if keyword_list_turn(text, spec):
            lists.append(i)
        seen.append(grams)
    for name, hits, counted in (
        ("near_duplicate_turns", duplicates, max(1, len(therapist) - 1)),
        ("keyword_list", lists, max(1, len(therapist))),
    ):
        if hits and len(hits) / counted >= degenerate["session_share"]:
            flags.append(
                {"detector": name, "kind": "degenerate", "turns": hits, "evidence": turns[hits[0]]["text"][:160]}
            )
    stuffing = degenerate.get("keyword_stuffing")
    if stuffing and therapist:
        words, covered, _ = jargon_words(" ".join(text for _, text in therapist), spec)
        if words >= stuffing["min_words"] and covered / words >= stuffing["min_jargon_share"]:
            flags.append(
                {
                    "detector": "keyword_stuffing",
                    "kind": "degenerate",
                    "turns": [i for i, _ in therapist],
                    "evidence": f"{covered} of {words} therapist words are CBT jargon",
                }
            )
    ignoring, pairs = [], 0
    for i, text in therapist:
        if i == 0 or turns[i - 1]["role"] != "patient":
            continue
        pairs += 1
        if not (_content(text) & _content(turns[i - 1]["text"])) and not REFERS_BACK.search(text):
            ignoring.append(i)
    rule = degenerate["ignores_patient"]
    if pairs >= rule["min_turns"] and len(ignoring) / pairs >= rule["min_share"]:
        flags.append(
            {
                "detector": "ignores_patient",
                "kind": "ignores_patient",
                "turns": ignoring,
                "evidence": turns[ignoring[0]]["text"][:160],
            }
        )
    for entry in spec["harmful"]:
        regex = _compiled(entry["pattern"])
        hits = [(i, m.group(0)) for i, text in therapist for m in regex.finditer(text) if not _negated(text, m, spec)]
        if hits:
            flags.append(
                {
                    "detector": entry["name"],
                    "kind": "harmful",
                    "turns": [i for i, _ in hits],
                    "evidence": hits[0][1][:160],
                }
            )
    return flags


def apply_caps(
    items: dict[str, dict[str, Any]], flags: Sequence[dict[str, Any]], spec: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Cap flagged items (``caps`` in the spec); the judge's own score stays as ``raw_score``."""
    capped = {k: dict(v) for k, v in items.items()}
    for kind in sorted({f["kind"] for f in flags}):
        rule = spec["caps"].get(kind)
        if not rule:
            continue
        targets = list(capped) if rule["items"] == "all" else [i for i in rule["items"] if i in capped]
        for item in targets:
            entry = capped[item]
            if entry["score"] > rule["max"]:
                entry.setdefault("raw_score", entry["score"])
                entry["score"] = float(rule["max"])
                entry.setdefault("capped_by", []).append(kind)
    return capped


def rejection_reason(turns: Sequence[dict[str, Any]], spec: dict[str, Any]) -> str | None:
    """Quality-gate form for training data: the first harmful flag's name, else the first
    degenerate one (harm is the reason worth counting when both fire)."""
    flags = detect(turns, spec)
    for kind in ("harmful", "degenerate"):
        for flag in flags:
            if flag["kind"] == kind:
                return f"{kind}:{flag['detector']}"
    return None
