"""Judge kinds: each kind is one module in this package that declares what it is.

A kind declares its name, its config fields (a JSON Schema fragment, defaults included),
the files its jobs read, whether it is a heuristic, whether it calls a model, and how its
calls are estimated. Config validation, the rule inputs, ``cbtflow estimate``, scoring and
the report all read those declarations, so adding a kind is adding one module: every module
in this package is imported on first use, and an installed package can add its own under the
``cbtflow.judge_kinds`` entry point (README: Extending cbtflow).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from cbtflow.dialogue import render_transcript
from cbtflow.instrument import framing
from cbtflow.llm import Client, Endpoint
from cbtflow.registry import Registry

ENTRY_POINT_GROUP = "cbtflow.judge_kinds"

# How a heuristic judge's scale is named wherever its scores appear (stats, tables, figures).
HEURISTIC_SCALE = "CBT vocabulary (heuristic)"

# Fields every kind takes, whatever it scores with.
COMMON_FIELDS: dict[str, Any] = {
    "kind": {"type": "string"},
    "repeats": {
        "type": "integer",
        "minimum": 1,
        "default": 1,
        "description": "Samples per transcript; the analysis uses their mean and the report gives ICC across repeats.",
    },
    "max_failures": {
        "type": "number",
        "minimum": 0,
        "default": 0,
        "description": "Transcripts whose judging may still fail after the re-asks and retries, as a count "
        "(1, 2, ...) or a fraction of this judge's transcripts (below 1); each becomes a failure record, left out "
        "of the analysis and listed in the report. 0: the first failure fails the job.",
    },
}


@dataclass(frozen=True)
class RunFacts:
    """What a judge's inputs depend on beyond its own settings (file paths as the workflow
    sees them, from the project root: ``resources/...`` for packaged files)."""

    crises: bool  # crisis moments are scripted (profiles.crisis.share > 0)
    safety: bool  # risk profiles get a safety item (profiles.eval_risk)
    instrument: str = "resources/ctrs/ctrs.yaml"  # the rubric judged (judging.instrument)
    lexicon: str | None = "resources/ctrs/lexicon.yaml"  # the instrument's lexicon, if it has one


@dataclass(frozen=True)
class Reads:
    """The files a judge job reads: prompt templates by name (``resources/prompts/<name>.j2``)
    and the kind's own data files by input name (paths as in ``RunFacts``)."""

    templates: tuple[str, ...] = ()
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Work:
    """What ``cbtflow estimate`` knows about one judge stage, for a kind's call plan."""

    transcripts: int
    n_items: int
    transcript_tokens: int
    crisis_sessions: int
    n_crisis_items: int
    item_tokens: int
    rubric_tokens: int
    justification_tokens: int
    crisis_excerpt_tokens: int

    @staticmethod
    def after_first(calls: int, groups: int, shared_tokens: int) -> int:
        """Reusable prompt tokens when ``calls`` fall into ``groups`` that each repeat a
        prefix of ``shared_tokens`` (one transcript's items): every call after a group's first."""
        return max(0, calls - groups) * shared_tokens


@dataclass(frozen=True)
class CallPlan:
    """One row of a judge's estimate: its calls and tokens (``label`` names the part)."""

    label: str
    calls: int
    prompt: int
    completion: int
    cached: int = 0


@dataclass(frozen=True)
class JudgeJob:
    """What every scoring call of one judge job shares."""

    client: Client | None
    judge: dict[str, Any]
    rubric: dict[str, Any]
    templates: dict[str, str]
    data: dict[str, Any]  # the kind's own loaded data files (JudgeKind.load)
    endpoint: Endpoint | None  # None for a kind that calls no model; parsed once per job
    crisis: dict[str, Any] | None = None  # crisis-response rubric and heuristic (judge.crisis)
    detectors: dict[str, Any] | None = None  # degenerate and harmful turns (data.detectors); None: none


class Scorer(ABC):
    """One judge job's scorer; ``seed`` drives an LLM judge's sampling and re-asks."""

    def __init__(self, job: JudgeJob):
        self.job = job

    @property
    def safety_rubric(self) -> dict[str, Any]:
        return {**self.job.rubric, "items": [self.job.rubric["safety"]]}

    @abstractmethod
    def score(self, transcript: dict[str, Any], out_path: str, seed: int) -> dict[str, Any]: ...

    @abstractmethod
    def safety(self, transcript: dict[str, Any], out_path: str, seed: int) -> dict[str, Any]: ...

    def crisis(self, transcript: dict[str, Any], out_path: str, seed: int) -> dict[str, Any]:
        """The crisis-response items for the therapist's replies to a scripted disclosure,
        scored as this kind scores rubric items, asked in the instrument's own framing."""
        from cbtflow.judge import crisis

        text = crisis.excerpt(transcript["turns"])
        rubric = {**framing(self.job.rubric), **self.job.crisis["rubric"]}
        return self.rubric_items(rubric, text, out_path.replace(".json", ".crisis.json"), seed)

    def course_items(
        self, transcript: dict[str, Any], items: list[dict[str, Any]], out_path: str, seed: int
    ) -> dict[str, Any]:
        """The course items that apply at this session, scored as this kind scores rubric items."""
        rubric = {**self.job.rubric, "items": items}
        return self.rubric_items(rubric, self.text(transcript), out_path.replace(".json", ".course.json"), seed)

    def rubric_items(self, rubric: dict[str, Any], text: str, out_path: str, seed: int) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__} scores no free-standing rubric")

    def flags(self, items: dict[str, Any], out_path: str) -> list[dict[str, Any]]:
        """Flags about the judge's own confidence in ``items`` (none by default)."""
        return []

    @staticmethod
    def text(transcript: dict[str, Any]) -> str:
        """What a judge sees: the turns with neutral labels, nothing about their origin."""
        return render_transcript(transcript["turns"])


class JudgeKind(ABC):
    """A kind of judge, declared once. Subclass, set the class variables and decorate the
    class with ``@register``."""

    name: ClassVar[str]
    description: ClassVar[str]
    heuristic: ClassVar[bool] = False  # scores surface features; named as a heuristic everywhere
    calls_model: ClassVar[bool] = False  # its settings name a model (local, scripted or API)
    fields: ClassVar[dict[str, Any]] = {}  # its config fields beyond COMMON_FIELDS (JSON Schema)
    # Defaults set as a whole, their own fields left unfilled: a judge's settings (its jobs'
    # params, and the call-cache keys built from its sampling) stay as they always were.
    whole_defaults: ClassVar[dict[str, Any]] = {}
    templates: ClassVar[tuple[str, ...]] = ()  # every prompt template it may read

    @abstractmethod
    def reads(self, judge: dict[str, Any], facts: RunFacts) -> Reads:
        """The files a job of this judge reads (only these: editing another reruns nothing).
        Raises ValueError, naming what is missing, when the run cannot give it what it needs."""

    @abstractmethod
    def scorer(self, job: JudgeJob) -> Scorer: ...

    @abstractmethod
    def plan(self, judge: dict[str, Any], work: Work) -> list[CallPlan]:
        """The calls and tokens ``cbtflow estimate`` counts for one stage of this judge."""

    def load(self, files: dict[str, str | Path]) -> dict[str, Any]:
        """Its data files (``Reads.data``) loaded, by input name."""
        return {}

    def mode(self, judge: dict[str, Any]) -> str:
        """How it scored, as the score document records it."""
        return self.name

    def model_label(self, judge: dict[str, Any]) -> str:
        return judge["model"] if self.calls_model else f"{self.name} (no model)"


KINDS: Registry[JudgeKind] = Registry(__name__, ENTRY_POINT_GROUP, "judge kind")
register = KINDS.register


@cache
def _instance(cls: type[JudgeKind]) -> JudgeKind:
    return cls()


def discover() -> dict[str, JudgeKind]:
    """Every kind, by name (one instance each)."""
    return {name: _instance(cls) for name, cls in KINDS.classes().items()}


def kind_of(judge: dict[str, Any]) -> JudgeKind:
    """The kind a judge's settings name; a clear error for an unknown one."""
    kinds = discover()
    name = judge.get("kind")
    if name not in kinds:
        raise ValueError(
            f"judge kind {name!r} is not registered (kinds: {sorted(kinds)}); see README: Extending cbtflow"
        )
    return kinds[name]


def judge_schema() -> dict[str, Any]:
    """The JSON Schema of one ``judges.<name>`` entry: ``kind`` one of the registered kinds,
    then that kind's own fields (and their defaults) and no others."""
    kinds = discover()
    return {
        "type": "object",
        "required": ["kind"],
        "properties": {"kind": {"enum": sorted(kinds)}},
        "allOf": [
            branch
            for name, kind in sorted(kinds.items())
            for branch in (
                {
                    "if": {"properties": {"kind": {"const": name}}, "required": ["kind"]},
                    "then": {"properties": {**COMMON_FIELDS, **kind.fields}, "additionalProperties": False},
                },
                {
                    "if": {"properties": {"kind": {"const": name}}, "required": ["kind"]},
                    "then": {"properties": {k: {"default": v} for k, v in kind.whole_defaults.items()}},
                },
            )
        ],
    }
