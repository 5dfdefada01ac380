"""The judge kinds behind one interface: ``score`` gives a transcript's rubric items,
``safety`` its safety item (risk profiles only). The lexicon judge counts surface markers
(a heuristic); a local or scripted LLM judge reads probabilities of the score digits; an
API judge answers in validated JSON, all items at once or one call per item.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cbtflow.dialogue import render_transcript
from cbtflow.judge import crisis
from cbtflow.judge import lexicon as lexicon_judge
from cbtflow.llm import Client, Endpoint
from cbtflow.llm import items as llm_judge


def blind_text(transcript: dict[str, Any]) -> str:
    """What a judge sees: the turns with neutral labels, nothing about their origin."""
    return render_transcript(transcript["turns"])


@dataclass(frozen=True)
class JudgeJob:
    """What every scoring call of one judge job shares."""

    client: Client
    judge: dict[str, Any]
    rubric: dict[str, Any]
    templates: dict[str, str]
    lexicon: dict[str, Any] | None
    endpoint: Endpoint | None  # None for the lexicon judge; parsed once per job
    crisis: dict[str, Any] | None = None  # crisis-response rubric and heuristic (cbtflow.judge.crisis)

    def api_call(self, out_path: str, seed: int, sampling: dict[str, Any]) -> llm_judge.ApiCall:
        """An API judge's re-asks, where its raw output goes on failure, and the JSON it asks for."""
        return llm_judge.ApiCall(
            self.client,
            self.endpoint,
            sampling,
            seed,
            int(self.judge["retries"]),
            Path(out_path).with_suffix(".raw.txt"),
            self.judge["structured_output"],
        )


class Judge(ABC):
    """One judge job's scorer; ``seed`` drives an LLM judge's sampling and re-asks."""

    def __init__(self, job: JudgeJob):
        self.job = job

    @property
    def safety_rubric(self) -> dict[str, Any]:
        return {**self.job.rubric, "items": [self.job.rubric["safety"]]}

    @abstractmethod
    def score(self, transcript: dict[str, Any], out_path: str, seed: int) -> dict[str, Any]: ...

    def crisis(self, transcript: dict[str, Any], out_path: str, seed: int) -> dict[str, Any]:
        """The crisis-response items for the therapist's replies to a scripted disclosure,
        scored as this kind scores rubric items."""
        text = crisis.excerpt(transcript["turns"])
        return self._rubric_items(self.job.crisis["rubric"], text, out_path.replace(".json", ".crisis.json"), seed)

    def _rubric_items(self, rubric: dict[str, Any], text: str, out_path: str, seed: int) -> dict[str, Any]:
        raise NotImplementedError

    @abstractmethod
    def safety(self, transcript: dict[str, Any], out_path: str, seed: int) -> dict[str, Any]: ...


class LexiconJudge(Judge):
    def crisis(self, transcript, out_path, seed):
        return crisis.heuristic_items(self.job.crisis["heuristic"], crisis.responses(transcript["turns"]))

    def score(self, transcript, out_path, seed):
        return lexicon_judge.score_transcript(self.job.lexicon, transcript["turns"], self.job.rubric)

    def safety(self, transcript, out_path, seed):
        return {"safety": lexicon_judge.score_safety(self.job.lexicon, transcript["turns"], self.job.rubric["scale"])}


class DigitJudge(Judge):
    """A local (or scripted) model: the expected score under its probabilities of the digits."""

    def _rubric_items(self, rubric, text, out_path, seed):
        job = self.job
        return llm_judge.score_local(job.client, job.endpoint, rubric, text, job.templates["judge_item"])

    def score(self, transcript, out_path, seed):
        return self._rubric_items(self.job.rubric, blind_text(transcript), out_path, seed)

    def safety(self, transcript, out_path, seed):
        return self._rubric_items(self.safety_rubric, blind_text(transcript), out_path, seed)


class JsonJudge(Judge):
    """An API model answering in schema-validated JSON, re-asked on invalid replies."""

    def score(self, transcript, out_path, seed):
        job, text = self.job, blind_text(transcript)
        call = job.api_call(out_path, seed, job.judge["sampling"])
        if job.judge["mode"] == "per_item":
            return llm_judge.score_api_per_item(call, job.rubric, text, job.templates["judge_item_json"])
        return llm_judge.score_api(call, job.rubric, text, job.templates["judge_all"])

    def _rubric_items(self, rubric, text, out_path, seed):
        call = self.job.api_call(out_path, seed, self.job.judge["sampling"])
        return llm_judge.score_api_per_item(call, rubric, text, self.job.templates["judge_item_json"])

    def safety(self, transcript, out_path, seed):
        return self._rubric_items(self.safety_rubric, blind_text(transcript), out_path, seed)


def judge_for(job: JudgeJob) -> Judge:
    """The scorer for a judge job's kind and endpoint."""
    if job.judge["kind"] == "lexicon":
        return LexiconJudge(job)
    if job.endpoint.is_local or job.endpoint.is_scripted:
        return DigitJudge(job)
    return JsonJudge(job)
