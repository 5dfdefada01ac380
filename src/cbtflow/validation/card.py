"""What a judge measures, shown before a study rests on it: the judge card.

- **Known groups.** On each labelled reference set (the bundled authored pairs and any in
  ``validation.reference_sets``): AUC (binary labels) or Spearman (ordinal), with a
  bootstrap 95% CI; the same after removing what therapist length explains (the judge's
  totals residualised on therapist words by least squares); and length alone, the
  baseline a judge must beat.
- **Perturbations** (``cbtflow.validation.perturb``, data in ``resources/perturbations.yaml``) of the
  sets' better sessions: per targeted perturbation, the change of the items it should lower
  (sensitivity) and of the others (specificity); per invariance, the change of the total
  (filler padding: the verbosity bias).
- **Verdicts** against thresholds (``validation.thresholds``, defaults in the schema).

Every session, original or perturbed, goes through the judge's own scoring path and call
cache (``cbtflow.judge.run.judge_transcripts``), so a rerun is free. Per-transcript scores
are kept in the card so anyone can recompute its numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import stats as sps

from cbtflow.judge.kinds import kind_of
from cbtflow.session_key import SessionKey
from cbtflow.stats.descriptive import mean_ci
from cbtflow.validation.perturb import perturb
from cbtflow.validation.reference_sets import authored_sessions, load_reference_set, therapist_words

BOOTSTRAP = 2000
LENGTH_CONTROL = "judge totals residualised on therapist words (least squares with intercept), then the same statistic"


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """P(a label-1 session scores above a label-0 one), ties counting half."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, float)
    pos, neg = scores[labels == 1], scores[labels == 0]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def spearman(scores: np.ndarray, labels: np.ndarray) -> float:
    """Pearson correlation of the ranks (average ranks for ties)."""
    a, b = sps.rankdata(scores), sps.rankdata(labels)
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def residualise(scores: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """What therapist length does not explain in the scores."""
    scores, lengths = np.asarray(scores, float), np.asarray(lengths, float)
    if lengths.std() == 0:
        return scores - scores.mean()
    design = np.column_stack([np.ones_like(lengths), lengths])
    coef, *_ = np.linalg.lstsq(design, scores, rcond=None)
    return scores - design @ coef


def _bootstrap(statistic: Callable[[np.ndarray], float], labels: np.ndarray, kind: str, seed: int) -> list[float]:
    """Percentile 95% CI over resampled sessions (within each label for binary sets)."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(labels == v) for v in (0, 1)] if kind == "binary" else [np.arange(len(labels))]
    values = []
    for _ in range(BOOTSTRAP):
        index = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])
        value = statistic(index)
        if np.isfinite(value):
            values.append(value)
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] if values else [None, None]


def known_groups(
    scores: Sequence[float], labels: Sequence[float], lengths: Sequence[float], kind: str, seed: int = 0
) -> dict[str, Any]:
    """The judge, the judge with length controlled, and length alone, each with its CI."""
    scores, labels, lengths = (np.asarray(x, float) for x in (scores, labels, lengths))
    measure = auc if kind == "binary" else spearman
    out: dict[str, Any] = {"n": int(len(scores)), "statistic": "AUC" if kind == "binary" else "Spearman"}
    for name, values in (
        ("judge", scores),
        ("length_controlled", None),
        ("length_alone", lengths),
    ):

        def statistic(index: np.ndarray, values: np.ndarray | None = values) -> float:
            x = residualise(scores[index], lengths[index]) if values is None else values[index]
            return measure(x, labels[index])

        everything = np.arange(len(scores))
        out[name] = {"estimate": statistic(everything), "ci95": _bootstrap(statistic, labels, kind, seed)}
    out["length_controlled"]["how"] = LENGTH_CONTROL
    return out


def perturbation_effects(
    originals: dict[str, dict[str, Any]], perturbed: dict[str, dict[str, Any]], entry: dict[str, Any], items: list[str]
) -> dict[str, Any]:
    """Per item, perturbed − original over the sessions the perturbation changed."""
    keys = sorted(perturbed)
    change = {i: np.array([perturbed[k]["items"][i] - originals[k]["items"][i] for k in keys]) for i in items}
    total = np.array([perturbed[k]["total"] - originals[k]["total"] for k in keys])
    out: dict[str, Any] = {
        "kind": entry["kind"],
        "lowers": entry.get("lowers", []),
        "verbosity_bias": bool(entry.get("verbosity_bias")),
        "n_sessions": len(keys),
        "items": {i: mean_ci(v) for i, v in change.items()},
        "total": mean_ci(total),
    }
    if entry["kind"] == "targeted":
        others = [i for i in items if i not in entry["lowers"]]
        out["off_target_mean_abs_change"] = float(np.mean([abs(out["items"][i]["mean"] or 0.0) for i in others]))
    return out


def sessions_of(config: dict[str, Any]) -> dict[str, tuple[list[dict[str, Any]], str]]:
    """Every reference set: the bundled authored pairs, then the config's."""
    sets = {"authored": (authored_sessions(), "binary")}
    for spec in (config.get("validation") or {}).get("reference_sets") or []:
        sets[spec["name"]] = (load_reference_set(spec["path"], spec["label"]), spec["label"])
    return sets


def to_transcript(session: dict[str, Any], set_name: str, condition: str) -> dict[str, Any]:
    """A reference session in the shape the judging path reads (nothing about its origin)."""
    return {
        "profile_id": f"{set_name}/{session['id']}",
        "model": "reference",
        "condition": condition,
        "seed": 0,
        "risk_level": "none",
        "n_tokens": 0,
        "turns": session["turns"],
    }


def better_half(sessions: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The sessions to perturb: label 1 of a binary set, the upper half of an ordinal one."""
    if kind == "binary":
        return [s for s in sessions if s["label"] == 1]
    cut = float(np.median([s["label"] for s in sessions]))
    return [s for s in sessions if s["label"] >= cut]


Scorer = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


def _row(set_name: str, session: dict[str, Any], turns: list, name: str | None, doc: dict, items: list[str]) -> dict:
    return {
        "set": set_name,
        "id": session["id"],
        "label": session.get("label"),
        "therapist_words": therapist_words(turns),
        "perturbation": name,
        "total": doc["total"],
        "items": {i: doc["items"][i] for i in items},
    }


def score_originals(
    sets: dict[str, list[dict[str, Any]]], items: list[str], score: Scorer
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Every session as it is: its scores by ``set/id``, and its rows."""
    originals, rows = {}, []
    for set_name, sessions in sets.items():
        for session, doc in zip(sessions, score([to_transcript(s, set_name, "original") for s in sessions])):
            originals[f"{set_name}/{session['id']}"] = doc
            rows.append(_row(set_name, session, session["turns"], None, doc, items))
    return originals, rows


def perturbation_part(
    sources: dict[str, list[dict[str, Any]]],
    originals: dict[str, dict[str, Any]],
    perturbations: list[dict[str, Any]],
    items: list[str],
    score: Scorer,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Each perturbation of each source session it changes, scored and compared with the original."""
    effects, rows = {}, []
    for entry in perturbations:
        changed = []
        for set_name, sessions in sources.items():
            for session in sessions:
                altered = perturb({"turns": session["turns"]}, entry)["turns"]
                if altered != session["turns"]:
                    changed.append(
                        (set_name, session, to_transcript({**session, "turns": altered}, set_name, entry["name"]))
                    )
        docs = score([t for _, _, t in changed]) if changed else []
        perturbed = {}
        for (set_name, session, transcript), doc in zip(changed, docs):
            perturbed[f"{set_name}/{session['id']}"] = doc
            rows.append(_row(set_name, session, transcript["turns"], entry["name"], doc, items))
        effects[entry["name"]] = perturbation_effects(originals, perturbed, entry, items)
    return effects, rows


def build_card(
    judge_name: str,
    heuristic: bool,
    sets: dict[str, tuple[list[dict[str, Any]], str]],
    perturbations: list[dict[str, Any]],
    items: list[str],
    score: Scorer,
    thresholds: dict[str, float],
    seed: int = 0,
) -> dict[str, Any]:
    """Score every session and its perturbations with ``score`` and summarise them."""
    card: dict[str, Any] = {"kind": "judge_card", "judge": judge_name, "heuristic": heuristic}
    originals, rows = score_originals({name: sessions for name, (sessions, _) in sets.items()}, items, score)
    card["reference_sets"] = {}
    for set_name, (_, kind) in sets.items():
        own = [r for r in rows if r["set"] == set_name]
        card["reference_sets"][set_name] = {
            "label": kind,
            **known_groups(
                [r["total"] for r in own], [r["label"] for r in own], [r["therapist_words"] for r in own], kind, seed
            ),
        }
    better = {name: better_half(sessions, kind) for name, (sessions, kind) in sets.items()}
    card["perturbations"], perturbed_rows = perturbation_part(better, originals, perturbations, items, score)
    card["scores"] = rows + perturbed_rows
    card["verdicts"] = verdicts(card, thresholds)
    card["passed"] = all(v["passed"] for v in card["verdicts"].values() if v.get("required"))
    return card


def verdicts(card: dict[str, Any], thresholds: dict[str, float]) -> dict[str, Any]:
    """Pass or fail per criterion, each with the numbers it read."""
    discriminating = [
        name
        for name, result in card["reference_sets"].items()
        if result["judge"]["ci95"][0] is not None
        and result["judge"]["ci95"][0] > (thresholds["min_auc"] if result["statistic"] == "AUC" else 0.0)
    ]
    beats_length = [
        name
        for name, result in card["reference_sets"].items()
        if result["judge"]["estimate"] > result["length_alone"]["estimate"]
    ]
    responding, silent = [], []
    for name, effect in card["perturbations"].items():
        if effect["kind"] != "targeted" or not effect["n_sessions"]:
            continue
        drops = [effect["items"][i] for i in effect["lowers"]]
        ok = all(d["mean"] is not None and d["mean"] <= -thresholds["min_item_drop"] for d in drops)
        (responding if ok else silent).append(name)
    targeted = len(responding) + len(silent)
    verbosity = next((n for n, e in card["perturbations"].items() if e.get("verbosity_bias")), None)
    padding = card["perturbations"].get(verbosity, {}).get("total", {})
    bias = padding.get("mean")
    moved = {
        name: effect["total"]["mean"]
        for name, effect in card["perturbations"].items()
        if effect["kind"] == "invariance"
        and name != verbosity
        and effect["total"]["mean"] is not None
        and abs(effect["total"]["mean"]) > thresholds["max_verbosity_bias"]
    }
    return {
        "discrimination": {
            "required": True,
            "passed": bool(discriminating),
            "sets_passing": discriminating,
            "rule": f"the CI's lower bound above {thresholds['min_auc']} (AUC) or 0 (Spearman) on at least one set",
        },
        "beats_length": {
            "required": False,
            "passed": bool(beats_length),
            "sets_passing": beats_length,
            "rule": "the judge's statistic above therapist length's on the same set",
        },
        "items_respond": {
            "required": True,
            "passed": targeted > 0 and len(responding) / targeted >= thresholds["min_responding_share"],
            "responding": responding,
            "silent": silent,
            "rule": f"at least {thresholds['min_responding_share']:.0%} of targeted perturbations lower their items "
            f"by {thresholds['min_item_drop']} points or more",
        },
        "verbosity_bias": {
            "required": True,
            "passed": bias is not None and abs(bias) <= thresholds["max_verbosity_bias"],  # unmeasured: not passed
            "change_in_total": bias,
            "ci95": padding.get("ci95"),
            "rule": f"filler padding moves the total by at most {thresholds['max_verbosity_bias']} points",
        },
        "invariances": {
            "required": False,
            "passed": not moved,
            "moved": moved,
            "rule": "no other invariance perturbation moves the total by more than "
            f"{thresholds['max_verbosity_bias']} points",
        },
    }


def judge_scorer(config: dict[str, Any], judge_name: str, raw_dir: str) -> tuple[Scorer, list[str], dict[str, Any]]:
    """The configured judge's own scoring path (its call cache, detectors and caps), as a
    function from transcripts to scores; fails naming any session it could not score."""
    from cbtflow.config import run_facts
    from cbtflow.instrument import item_ids
    from cbtflow.judge.run import judge_transcripts, load_job, packaged_files
    from cbtflow.layout import judge_settings
    from cbtflow.runtime import client

    judge = judge_settings(config, judge_name)
    files = packaged_files(judge, run_facts(config))
    job = load_job(client(config["cache_dir"], config), judge, files, config["judging"]["rubric_variant"])
    items = item_ids(job.rubric)

    def score(transcripts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        paths = [f"{raw_dir}/{t['condition']}/{t['profile_id']}.json" for t in transcripts]
        docs = judge_transcripts(job, transcripts, paths, seed=0)
        failed = [d["profile_id"] for d in docs if d.get("status") == "failed"]
        if failed:
            raise ValueError(f"judge '{judge_name}' could not score sessions {failed}")
        return [{"total": d["total"], "items": {i: d["items"][i]["score"] for i in items}} for d in docs]

    return score, items, judge


def _perturbations(config: dict[str, Any], path: str, items: list[str]) -> list[dict[str, Any]]:
    from cbtflow.config import instrument
    from cbtflow.validation.perturb import load_perturbations

    lowers = instrument(config)[1].get("perturbations")  # the instrument's own targets, if it names them
    return load_perturbations(path, items, (config.get("validation") or {}).get("perturbations"), lowers)


def card_for(config: dict[str, Any], judge_name: str, perturbations_path: str, raw_dir: str) -> dict[str, Any]:
    """The card of one configured judge, scored through its own judging path and cache."""
    score, items, judge = judge_scorer(config, judge_name, raw_dir)
    thresholds = config["validation"]["thresholds"]  # a validated config: defaults filled in
    perturbations = _perturbations(config, perturbations_path, items)
    card = build_card(
        judge_name, kind_of(judge).heuristic, sessions_of(config), perturbations, items, score, thresholds
    )
    return {**card, "judge_settings": {k: v for k, v in judge.items() if k != "endpoint"}}


def sample_transcripts(transcripts: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """``n`` of the run's transcripts, evenly spread over their sorted ids (deterministic)."""
    ordered = sorted(
        (t for t in transcripts if t.get("turns") and not t.get("failure")),
        key=SessionKey.of,
    )
    if n >= len(ordered):
        return ordered
    step = len(ordered) / n
    return [ordered[int(i * step)] for i in range(n)]


def run_perturbations_for(
    config: dict[str, Any], judge_name: str, transcripts: list[dict[str, Any]], perturbations_path: str, raw_dir: str
) -> dict[str, Any]:
    """The perturbations applied to a sample of the run's own eval transcripts (kept apart
    from the card, which must not rerun when a model changes)."""
    score, items, _ = judge_scorer(config, judge_name, raw_dir)
    sample = sample_transcripts(transcripts, int(config["validation"]["run_transcripts"]))
    sessions = [{"id": SessionKey.of(t).path(), "turns": t["turns"]} for t in sample]
    originals, rows = score_originals({"run": sessions}, items, score)
    effects, perturbed = perturbation_part(
        {"run": sessions}, originals, _perturbations(config, perturbations_path, items), items, score
    )
    return {
        "kind": "judge_run_perturbations",
        "judge": judge_name,
        "transcripts": [s["id"] for s in sessions],
        "perturbations": effects,
        "scores": rows + perturbed,
    }
