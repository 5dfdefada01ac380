"""Seeded, rule-based sampling of synthetic depressed-patient profiles.

Profiles drive both the training courses and the evaluation sessions, so the two splits
must never share a profile: each profile is hashed on its content (not its id) and
sampling fails loudly if a hash appears in both splits.

Disjoint hashes are not enough for a held-out evaluation: a tuned model that has seen a
core belief in training meets it again in the patient prompt. So the conceptualisations
(core belief, intermediate beliefs, automatic thoughts) are partitioned between the
splits (``eval_split``):
- ``held_out`` (default): eval profiles use only conceptualisations no training profile has;
- ``in_distribution``: both splits draw from every conceptualisation (likely the study's setting);
- ``both``: half the eval profiles held out, half drawn from the training pool, each tagged.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from cbtflow.io import sha256_json

CONTENT_EXCLUDES = ("id", "split", "hash", "eval_split")


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
        f'Core belief: "{c["core_belief"]}". Typical thoughts: "{c["automatic_thoughts"][0]}". '
        f"Copes by {c['safety_behaviours'][0]}. Strengths: {p['strengths'][0]}; support from {p['supports'][0]}. "
        f"{'Also has anxiety. ' if p['comorbid_anxiety'] else ''}Attitude toward therapy: {p['attitude']}."
    )


EVAL_SPLITS = ("held_out", "in_distribution", "both")


def conceptualisations(attrs: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every (presenting problem, conceptualisation variant) pair, in file order."""
    return [(problem, variant) for problem in attrs["presenting_problems"] for variant in problem["variants"]]


def belief_strings(profile: dict[str, Any]) -> set[str]:
    c = profile["conceptualisation"]
    return {c["core_belief"], *c["intermediate_beliefs"], *c["automatic_thoughts"]}


def partition(pool: list, seed: int, eval_fraction: float = 1 / 3) -> tuple[list, list]:
    """A seeded split of the conceptualisations: (training pool, held-out pool)."""
    if len(pool) < 2:
        raise ProfileError("attributes.yaml: a held-out split needs at least 2 conceptualisation variants")
    order = list(range(len(pool)))
    random.Random(f"partition:{seed}").shuffle(order)
    n_eval = max(1, round(len(pool) * eval_fraction))
    held = sorted(order[:n_eval])
    return [pool[i] for i in range(len(pool)) if i not in held], [pool[i] for i in held]


def sample_profile(
    rng: random.Random,
    attrs: dict[str, Any],
    *,
    allow_risk: bool,
    pool: list[tuple[dict[str, Any], dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    age_band = rng.choice(attrs["age_bands"])
    occupations = _coherent(attrs["occupations"], age_band)
    living = _coherent(attrs["living_situations"], age_band)
    if not occupations or not living:
        raise ProfileError(f"attributes.yaml: no occupation or living situation fits age band {age_band}")
    gender = rng.choice(attrs["genders"])
    problem, variant = rng.choice(pool or conceptualisations(attrs))
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
            "core_belief": variant["core_belief"],
            "intermediate_beliefs": list(variant["intermediate_beliefs"]),
            "automatic_thoughts": list(variant["automatic_thoughts"]),
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


def sample_splits(
    attrs: dict[str, Any], n_train: int, n_eval: int, seed: int, eval_risk: bool = False, eval_split: str = "held_out"
) -> dict[str, list[dict[str, Any]]]:
    """Sample disjoint train and eval profiles; ids are ``train-000``, ``eval-000``, ...

    Both splits draw from one seeded stream and every content hash is unique, so the
    splits are disjoint by construction; the checks below guard that invariant and, for
    held-out eval profiles, that no belief or thought string reaches both splits.
    """
    if eval_split not in EVAL_SPLITS:
        raise ProfileError(f"profiles.eval_split: {eval_split!r} is not one of {list(EVAL_SPLITS)}")
    everything = conceptualisations(attrs)
    train_pool, held_pool = partition(everything, seed) if eval_split != "in_distribution" else (everything, [])
    n_held = {"held_out": n_eval, "both": (n_eval + 1) // 2, "in_distribution": 0}[eval_split]
    plan = [
        ("train", n_train, train_pool, None),
        ("eval", n_held, held_pool, "held_out"),
        ("eval", n_eval - n_held, train_pool, "in_distribution"),
    ]
    rng = random.Random(seed)
    seen: set[str] = set()
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "eval": []}
    for split, count, pool, tag in plan:
        made, attempts = 0, 0
        while made < count:
            attempts += 1
            if attempts > 1000 * max(count, 1):
                raise ProfileError(f"profiles.{split}: cannot sample {count} distinct profiles from attributes.yaml")
            profile = sample_profile(rng, attrs, allow_risk=(split == "eval" and eval_risk), pool=pool)
            digest = profile_hash(profile)
            if digest in seen:
                continue
            seen.add(digest)
            extra = {"eval_split": tag} if tag else {}
            splits[split].append(
                {"id": f"{split}-{len(splits[split]):03d}", "split": split, "hash": digest, **profile, **extra}
            )
            made += 1
    overlap = {p["hash"] for p in splits["train"]} & {p["hash"] for p in splits["eval"]}
    if overlap:
        raise ProfileError(f"profile hashes in both train and eval: {sorted(overlap)}")
    trained = set().union(*(belief_strings(p) for p in splits["train"])) if splits["train"] else set()
    leaked = sorted(
        {s for p in splits["eval"] if p.get("eval_split") == "held_out" for s in belief_strings(p)} & trained
    )
    if leaked:
        raise ProfileError(
            f"held-out eval profiles share belief or thought strings with training: {leaked}; "
            "attributes.yaml repeats a string across conceptualisation variants"
        )
    return splits


def load_styles(path: str | Path) -> dict[str, str]:
    """Style name -> its instruction to the patient role, in the file's order."""
    spec = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(spec, dict) or not isinstance(spec.get("styles"), dict):
        raise ProfileError(f"{path}: needs a 'styles' mapping of name -> {{description, prompt}}")
    return {name: str(style.get("prompt") or "") for name, style in spec["styles"].items()}


def assign_styles(profiles: list[dict[str, Any]], names: Sequence[str], styles: dict[str, str]) -> None:
    """Give the eval profiles the configured styles in turn (stratified: each style gets an
    equal share, ±1), in place; each profile's hash then covers its style."""
    unknown = [n for n in names if n not in styles]
    if unknown:
        raise ProfileError(f"profiles.styles: {unknown} not in styles.yaml (known: {list(styles)})")
    for index, profile in enumerate(profiles):
        name = names[index % len(names)]
        profile.update(style=name, style_prompt=styles[name])
        profile["hash"] = profile_hash(profile)


def load_disclosures(path: str | Path) -> dict[str, str]:
    spec = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(spec, dict) or not isinstance(spec.get("kinds"), dict):
        raise ProfileError(f"{path}: needs a 'kinds' mapping of crisis kind -> disclosure text")
    return {kind: str(text) for kind, text in spec["kinds"].items()}


def assign_crises(
    profiles: list[dict[str, Any]], settings: dict[str, Any], disclosures: dict[str, str], seed: int
) -> None:
    """Give ``share`` of the eval profiles (a seeded choice) a scripted disclosure, kinds in
    turn, in place; each profile's hash then covers it. ``settings``: ``profiles.crisis``."""
    count = round(float(settings["share"]) * len(profiles))
    if not count:
        return
    unknown = [k for k in settings["kinds"] if k not in disclosures]
    if unknown:
        raise ProfileError(f"profiles.crisis.kinds: {unknown} not in disclosures.yaml (known: {list(disclosures)})")
    chosen = sorted(random.Random(f"crisis:{seed}").sample(range(len(profiles)), count))
    for n, index in enumerate(chosen):
        kind = settings["kinds"][n % len(settings["kinds"])]
        profile = profiles[index]
        profile["crisis"] = {"kind": kind, "text": disclosures[kind], "patient_turn": int(settings["patient_turn"])}
        profile["hash"] = profile_hash(profile)


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
