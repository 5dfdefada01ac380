"""Seeded, rule-based sampling of synthetic depressed-patient profiles.

Profiles drive both the training courses and the evaluation sessions, so the two splits
must never share a profile: each profile is hashed on its content (not its id) and
sampling fails loudly if a hash appears in both splits.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import yaml

from cbtflow.io import sha256_json

CONTENT_EXCLUDES = ("id", "split", "hash")


class ProfileError(ValueError):
    pass


def load_attributes(path: str | Path) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def profile_hash(profile: dict[str, Any]) -> str:
    return sha256_json({k: v for k, v in profile.items() if k not in CONTENT_EXCLUDES})[:16]


def _coherent(options: list[dict[str, Any]], age_band: str) -> list[dict[str, Any]]:
    return [o for o in options if age_band in o["age_bands"]]


def vignette(p: dict[str, Any]) -> str:
    c = p["conceptualisation"]
    return (
        f"{p['name']} is a {p['age_band']} year old {p['culture']} {p['gender']} ({p['occupation']}, "
        f"{p['living_situation']}) with {p['phq9_band']} depression (PHQ-9 {p['phq9_range']}) after "
        f"{p['presenting_problem']}. Low mood is triggered by {' and '.join(p['triggers'])}. "
        f"Core belief: \"{c['core_belief']}\". Typical thoughts: \"{c['automatic_thoughts'][0]}\". "
        f"Copes by {c['safety_behaviours'][0]}. Strengths: {p['strengths'][0]}; support from {p['supports'][0]}. "
        f"{'Also has anxiety. ' if p['comorbid_anxiety'] else ''}Attitude toward therapy: {p['attitude']}."
    )


def sample_profile(rng: random.Random, attrs: dict[str, Any], *, allow_risk: bool) -> dict[str, Any]:
    age_band = rng.choice(attrs["age_bands"])
    occupations = _coherent(attrs["occupations"], age_band)
    living = _coherent(attrs["living_situations"], age_band)
    if not occupations or not living:
        raise ProfileError(f"attributes.yaml: no occupation or living situation fits age band {age_band}")
    gender = rng.choice(attrs["genders"])
    problem = rng.choice(attrs["presenting_problems"])
    band = rng.choice(attrs["phq9_bands"])
    profile = {
        "name": rng.choice(attrs["first_names"][gender]),
        "age_band": age_band,
        "gender": gender,
        "occupation": rng.choice(occupations)["name"],
        "living_situation": rng.choice(living)["name"],
        "culture": rng.choice(attrs["cultures"]),
        "phq9_band": band["name"],
        "phq9_range": band["range"],
        "presenting_problem": problem["name"],
        "triggers": list(problem["triggers"]),
        "conceptualisation": {
            "core_belief": problem["core_belief"],
            "intermediate_beliefs": list(problem["intermediate_beliefs"]),
            "automatic_thoughts": list(problem["automatic_thoughts"]),
            "distortions": rng.sample(attrs["distortions"], 2),
            "emotions": rng.sample(attrs["emotions"], 2),
            "safety_behaviours": rng.sample(attrs["safety_behaviours"], 2),
        },
        "strengths": rng.sample(attrs["strengths"], 2),
        "supports": rng.sample(attrs["supports"], 1),
        "history": rng.choice(attrs["histories"]),
        "comorbid_anxiety": rng.random() < 0.4,
        "attitude": rng.choice(attrs["attitudes"]),
        "risk_level": rng.choice(attrs["risk_levels"]) if allow_risk else "none",
    }
    profile["vignette"] = vignette(profile)
    return profile


def sample_splits(attrs: dict[str, Any], n_train: int, n_eval: int, seed: int,
                  eval_risk: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Sample disjoint train and eval profiles; ids are ``train-000``, ``eval-000``, ...

    Both splits draw from one seeded stream and every content hash is unique, so the
    splits are disjoint by construction; the check below guards that invariant.
    """
    rng = random.Random(seed)
    seen: set[str] = set()
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "eval": []}
    for split, count in (("train", n_train), ("eval", n_eval)):
        attempts = 0
        while len(splits[split]) < count:
            attempts += 1
            if attempts > 1000 * max(count, 1):
                raise ProfileError(f"profiles.{split}: cannot sample {count} distinct profiles from attributes.yaml")
            profile = sample_profile(rng, attrs, allow_risk=(split == "eval" and eval_risk))
            digest = profile_hash(profile)
            if digest in seen:
                continue
            seen.add(digest)
            splits[split].append({"id": f"{split}-{len(splits[split]):03d}", "split": split, "hash": digest,
                                  **profile})
    overlap = {p["hash"] for p in splits["train"]} & {p["hash"] for p in splits["eval"]}
    if overlap:
        raise ProfileError(f"profile hashes in both train and eval: {sorted(overlap)}")
    return splits


def profile_ids(split: str, count: int) -> list[str]:
    """Ids are known from the config alone, so Snakemake can plan per-profile targets."""
    return [f"{split}-{i:03d}" for i in range(count)]


def load_profiles(path: str | Path) -> list[dict[str, Any]]:
    """Profiles from a split file; an empty or damaged file is an error that names it."""
    from cbtflow.io import read_jsonl

    profiles = read_jsonl(path)
    if not profiles:
        raise ProfileError(f"{path}: holds no profiles; delete it and rerun its profiles rule")
    missing = [i for i, p in enumerate(profiles, start=1) if "id" not in p or "hash" not in p]
    if missing:
        raise ProfileError(f"{path}: line(s) {missing} are not profiles (no id/hash); delete it and rerun")
    return profiles
