"""The lexicon judge kind: a deterministic CTRS proxy from surface markers of CBT practice
(a heuristic baseline, named as one in every score document and report).

Features and weights live in ``resources/ctrs/lexicon.yaml`` so that anyone can see and
change exactly what is counted; every score carries its feature values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from cbtflow.judge.kinds import CallPlan, JudgeJob, JudgeKind, Reads, RunFacts, Scorer, Work, register

CRISIS_HEURISTIC_FILE = "resources/crisis/heuristic.yaml"

OPEN_START = re.compile(
    r"^(what|how|why|when|where|which|who|tell me|could you (tell|describe|say)|can you (tell|describe|say)"
    r"|in what way)\b",
    re.I,
)


def load_lexicon(path: str | Path) -> dict[str, Any]:
    lexicon = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    for item, features in lexicon["items"].items():
        for feature in features:
            if "pattern" not in feature and "computed" not in feature:
                raise ValueError(f"{path}: items.{item}.{feature.get('name')} needs a pattern or computed")
    return lexicon


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern:
    return re.compile(pattern, re.IGNORECASE)


def _window(turns: Sequence[str], spec: str | None) -> Sequence[str]:
    if not spec:
        return turns
    where, _, n = spec.partition(":")
    return turns[: int(n)] if where == "first" else turns[-int(n) :]


def _questions(turns: Sequence[str]) -> list[str]:
    found = []
    for turn in turns:
        for sentence in re.split(r"(?<=[.!?])\s+", turn):
            if sentence.strip().endswith("?"):
                found.append(sentence.strip())
    return found


def computed_feature(name: str, turns: Sequence[str]) -> float:
    if name == "open_question_share":
        questions = _questions(turns)
        return sum(bool(OPEN_START.search(q)) for q in questions) / len(questions) if questions else 0.0
    if name == "turn_length_balance":
        return sum(8 <= len(t.split()) <= 90 for t in turns) / len(turns) if turns else 0.0
    raise ValueError(f"unknown computed lexicon feature {name!r}")


def _score_features(
    features: Sequence[dict[str, Any]], therapist: Sequence[str], scale: dict[str, int]
) -> dict[str, Any]:
    """The weighted share of features present, mapped onto the rubric's scale."""
    values, weighted, weights = {}, 0.0, 0.0
    for feature in features:
        if "computed" in feature:
            value = computed_feature(feature["computed"], therapist)
        else:
            text = "\n".join(_window(therapist, feature.get("turns")))
            cap = int(feature.get("cap", 1))
            value = min(len(_regex(feature["pattern"]).findall(text)), cap) / cap
        values[feature["name"]] = round(value, 4)
        weighted += float(feature["weight"]) * value
        weights += float(feature["weight"])
    lo, hi = float(scale["min"]), float(scale["max"])
    share = min(1.0, max(0.0, weighted / weights))
    return {"score": round(lo + (hi - lo) * share, 4), "features": values}


def score_transcript(
    lexicon: dict[str, Any], turns: Sequence[dict[str, Any]], rubric: dict[str, Any]
) -> dict[str, Any]:
    """Per rubric item: a score on the rubric's scale and the feature values behind it.
    Whitespace is folded first: the judge card found doubled spaces breaking phrase matches."""
    therapist = [" ".join(t["text"].split()) for t in turns if t["role"] == "therapist"]
    items = {}
    for item in (i["id"] for i in rubric["items"]):
        features = lexicon["items"].get(item)
        if not features:
            raise ValueError(f"lexicon has no features for rubric item {item!r}")
        items[item] = _score_features(features, therapist, rubric["scale"])
    return items


def score_safety(lexicon: dict[str, Any], turns: Sequence[dict[str, Any]], scale: dict[str, int]) -> dict[str, Any]:
    """The safety item: risk asked about directly, and a safe response."""
    therapist = [" ".join(t["text"].split()) for t in turns if t["role"] == "therapist"]
    return _score_features(lexicon["safety"], therapist, scale)


class LexiconScorer(Scorer):
    def score(self, transcript, out_path, seed):
        return score_transcript(self.job.data["lexicon"], transcript["turns"], self.job.rubric)

    def course_items(self, transcript, items, out_path, seed):
        return score_transcript(self.job.data["lexicon"], transcript["turns"], {**self.job.rubric, "items": items})

    def safety(self, transcript, out_path, seed):
        lexicon, scale = self.job.data["lexicon"], self.job.rubric["scale"]
        return {"safety": score_safety(lexicon, transcript["turns"], scale)}

    def crisis(self, transcript, out_path, seed):
        from cbtflow.judge import crisis

        return crisis.heuristic_items(self.job.crisis["heuristic"], crisis.responses(transcript["turns"]))


@register
class Lexicon(JudgeKind):
    name = "lexicon"
    description = "A transparent heuristic baseline: weighted surface markers per item (resources/ctrs/lexicon.yaml)."
    heuristic = True

    def reads(self, judge: dict[str, Any], facts: RunFacts) -> Reads:
        if facts.lexicon is None:
            raise ValueError(
                f"the lexicon kind counts an instrument's lexicon, and {facts.instrument} names none "
                "(its `lexicon:` field); use another kind with this instrument"
            )
        data = {"lexicon": facts.lexicon}
        if facts.crises:
            data["crisis_heuristic"] = CRISIS_HEURISTIC_FILE
        return Reads(data=data)

    def load(self, files):
        return {"lexicon": load_lexicon(files["lexicon"])}

    def scorer(self, job: JudgeJob) -> Scorer:
        return LexiconScorer(job)

    def plan(self, judge: dict[str, Any], work: Work) -> list[CallPlan]:
        return [CallPlan("", 0, 0, 0)]
