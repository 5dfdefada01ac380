"""Turn courses into a chat-format training set (therapist = assistant, client = user).

Every example carries the same short therapist system prompt and opening cue that the
simulations use, so the adapter learns the behaviour under the exact conditions it is
evaluated in. The split into train/validation is by course, never by session, so no
profile leaks from training into validation.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cbtflow.dialogue import THERAPIST, speaker_messages
from cbtflow.io import atomic_dir, sha256_json


def session_messages(session: dict[str, Any], system_prompt: str) -> list[dict[str, str]]:
    messages = speaker_messages(session["turns"], THERAPIST, system_prompt)
    while messages and messages[-1]["role"] != "assistant":  # a training example ends on a therapist turn
        messages.pop()
    return messages


def build_examples(
    courses: Sequence[dict[str, Any]], system_prompt: str, validation_fraction: float, seed: int
) -> list[dict[str, Any]]:
    ids = sorted(c["profile_id"] for c in courses)
    rng = random.Random(seed)
    rng.shuffle(ids)
    n_val = int(round(len(ids) * validation_fraction)) if len(ids) > 1 else 0
    if validation_fraction > 0 and len(ids) > 1:
        n_val = max(1, n_val)
    validation = set(ids[:n_val])
    rows, seen = [], set()
    for course in sorted(courses, key=lambda c: c["profile_id"]):
        for session in course["sessions"]:
            messages = session_messages(session, system_prompt)
            if not any(m["role"] == "assistant" for m in messages):
                continue
            fingerprint = sha256_json([" ".join(m["content"].lower().split()) for m in messages[2:]])
            if fingerprint in seen:  # a generator that repeats itself must not weight one session twice
                continue
            seen.add(fingerprint)
            rows.append(
                {
                    "course": course["profile_id"],
                    "session": session["number"],
                    "phase": session["phase"],
                    "split": "validation" if course["profile_id"] in validation else "train",
                    "messages": messages,
                }
            )
    return rows


def dataset_stats(courses: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts over the text-only dataset. Tokens depend on each base's tokenizer, so they
    are counted where a base tokenizes: each adapter's train_log (a dataset tokenized with
    one model's tokenizer would rerun, with every adapter, whenever that model changed)."""
    rejections: Counter[str] = Counter()
    phases: Counter[str] = Counter()
    turns: Counter[str] = Counter()
    words: Counter[str] = Counter()
    dropped = 0
    for course in courses:
        for session in course.get("dropped_sessions", []):
            rejections.update(session["rejections"])
            dropped += 1
        for session in course["sessions"]:
            rejections.update(session.get("rejections", []))
            phases[session["phase"]] += 1
            for turn in session["turns"]:
                turns[turn["role"]] += 1
                words[turn["role"]] += len(turn["text"].split())
    usable = sum(1 for c in courses for s in c["sessions"] if any(t["role"] == "therapist" for t in s["turns"]))
    return {
        "courses": len(courses),
        "duplicates_removed": usable - len(rows),
        "sessions": sum(len(c["sessions"]) for c in courses),
        "dropped_sessions": dropped,
        "examples": {split: sum(r["split"] == split for r in rows) for split in ("train", "validation")},
        "turns_by_role": dict(turns),
        "words_by_role": dict(words),
        "rejections_by_reason": dict(rejections),
        "phase_coverage": dict(phases),
    }


def save_dataset_dict(rows: Sequence[dict[str, Any]], out_dir: str | Path) -> None:
    """A ``datasets.DatasetDict`` (train/validation), loadable with ``load_from_disk``."""
    from datasets import Dataset, DatasetDict

    splits = {}
    for split in ("train", "validation"):
        subset = [
            {"messages": r["messages"], "course": r["course"], "session": r["session"], "phase": r["phase"]}
            for r in rows
            if r["split"] == split
        ]
        splits[split] = (
            Dataset.from_list(subset)
            if subset
            else Dataset.from_dict({"messages": [], "course": [], "session": [], "phase": []})
        )
    with atomic_dir(out_dir) as staging:
        DatasetDict(splits).save_to_disk(str(staging))
