"""Quality gates for generated sessions: each gate names the reason a session is rejected.

A rejected session is regenerated with a new sub-seed; the reasons are counted in the
course and in the dataset statistics, so the data's quality is measured, not assumed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

META = re.compile(r"\b(as an ai|language model|i am an ai|i'm an ai|as a chatbot)\b|^\s*[\[(]", re.IGNORECASE)
SPEAKER_LINE = re.compile(r"^\s*\**\s*(therapist|client|patient)\s*\**\s*:\s*(.*)$", re.IGNORECASE)


def gate_both_speakers(turns: Sequence[dict[str, Any]], _: dict) -> str | None:
    roles = {t["role"] for t in turns}
    return None if {"therapist", "patient"} <= roles else "missing_speaker"


def gate_min_turns(turns: Sequence[dict[str, Any]], limits: dict) -> str | None:
    return "too_few_turns" if len(turns) < limits["min_turns"] else None


def gate_max_turns(turns: Sequence[dict[str, Any]], limits: dict) -> str | None:
    return "too_many_turns" if len(turns) > limits.get("max_turns", 10_000) else None


def gate_alternation(turns: Sequence[dict[str, Any]], _: dict) -> str | None:
    if turns and turns[0]["role"] != "therapist":
        return "therapist_does_not_open"
    for a, b in zip(turns, turns[1:]):
        if a["role"] == b["role"]:
            return "no_alternation"
    return None


def gate_empty(turns: Sequence[dict[str, Any]], _: dict) -> str | None:
    return "empty_turn" if any(not t["text"].strip() for t in turns) else None


def gate_meta(turns: Sequence[dict[str, Any]], _: dict) -> str | None:
    return "meta_text" if any(META.search(t["text"]) for t in turns) else None


def gate_truncated(turns: Sequence[dict[str, Any]], _: dict) -> str | None:
    """A session whose last utterance stops mid-sentence was cut off by the token limit."""
    last = turns[-1]["text"].rstrip() if turns else ""
    return "truncated_ending" if last and not re.search(r"[.!?…\"'’”)\]]$", last) else None


def gate_leak(turns: Sequence[dict[str, Any]], limits: dict) -> str | None:
    foreign = limits.get("foreign_names") or []
    text = " ".join(t["text"] for t in turns)
    return "profile_leak" if any(re.search(rf"\b{re.escape(n)}\b", text) for n in foreign) else None


def gate_role_break(turns: Sequence[dict[str, Any]], _: dict) -> str | None:
    """The patient talking as the therapist, or the reverse: such a session would teach the
    therapist role from the wrong side."""
    from cbtflow.dialogue import role_breaks

    found = role_breaks(turns)
    return f"role_break:{found[0]['kind']}" if found else None


def gate_content(turns: Sequence[dict[str, Any]], limits: dict) -> str | None:
    """The heuristic detectors (resources/detectors.yaml): degenerate or harmful therapist turns."""
    from cbtflow.data.detectors import rejection_reason

    return rejection_reason(turns, limits["detectors"]) if limits.get("detectors") else None


def gate_crisis_content(turns: Sequence[dict[str, Any]], limits: dict) -> str | None:
    """Crisis content in a training session (either speaker): never trained on, as in the
    study; evaluation meets it only in scripted crisis moments (resources/crisis)."""
    pattern = (limits.get("detectors") or {}).get("crisis_content")
    if not pattern:
        return None
    return "crisis_content" if any(re.search(pattern, t["text"], re.I) for t in turns) else None


GATES: list[Callable[[Sequence[dict[str, Any]], dict], str | None]] = [
    gate_both_speakers,
    gate_min_turns,
    gate_max_turns,
    gate_alternation,
    gate_empty,
    gate_meta,
    gate_truncated,
    gate_leak,
    gate_role_break,
    gate_content,
    gate_crisis_content,
]


def check(turns: Sequence[dict[str, Any]], limits: dict) -> str | None:
    """The first failing gate's reason, or None when the session passes."""
    for gate in GATES:
        reason = gate(turns, limits)
        if reason:
            return reason
    return None


def parse_transcript(text: str) -> list[dict[str, Any]]:
    """Strictly parse ``Therapist:``/``Client:`` lines; continuation lines join the turn."""
    turns: list[dict[str, Any]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        match = SPEAKER_LINE.match(line)
        if match:
            role = "therapist" if match.group(1).lower() == "therapist" else "patient"
            turns.append({"role": role, "text": match.group(2).strip()})
        elif turns:
            turns[-1]["text"] = f"{turns[-1]['text']} {line.strip()}".strip()
    return turns
