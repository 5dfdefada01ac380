"""The LLM judge kind: a model scores the rubric.

A local (or scripted) model is read through its probabilities of the score digits, one item
at a time (the expected score); an API model answers in schema-validated JSON, all items at
once or one call per item, and is re-asked on invalid replies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cbtflow.judge.kinds import CallPlan, JudgeJob, JudgeKind, Reads, RunFacts, Scorer, Work, register
from cbtflow.llm import items as model_items
from cbtflow.llm.endpoint import LOCAL_PREFIX, SCRIPTED_PREFIX

ENDPOINT = "#/$defs/endpoint_fields"


def scores_by_digits(judge: dict[str, Any]) -> bool:
    """Read through the score digits' probabilities: a local model, or the scripted backend
    (an API model answers in JSON)."""
    model = str(judge.get("model") or judge.get("endpoint", {}).get("model", ""))
    return model.startswith((LOCAL_PREFIX, SCRIPTED_PREFIX))


class DigitScorer(Scorer):
    """A local (or scripted) model: the expected score under its probabilities of the digits."""

    def rubric_items(self, rubric, text, out_path, seed):
        job = self.job
        return model_items.score_local(job.client, job.endpoint, rubric, text, job.templates["judge_item"])

    def score(self, transcript, out_path, seed):
        return self.rubric_items(self.job.rubric, self.text(transcript), out_path, seed)

    def safety(self, transcript, out_path, seed):
        return self.rubric_items(self.safety_rubric, self.text(transcript), out_path, seed)

    def flags(self, items, out_path):
        """Items with little probability on the score digits are flagged, or fail the job."""
        judge = self.job.judge
        threshold = float(judge["low_mass_threshold"])
        low = model_items.low_mass_items(items, threshold)
        if not low:
            return []
        if judge["on_low_mass"] == "fail":
            raise model_items.LowMassError(
                f"{out_path}: judge {judge['name']} put less than {threshold} of its probability on the score "
                f"digits for items {low}; its scores are not judgements (set on_low_mass: flag to keep them, flagged)"
            )
        return [
            {
                "detector": "low_digit_mass",
                "kind": "low_confidence",
                "items": low,
                "evidence": f"score-digit mass below {threshold}",
            }
        ]


class JsonScorer(Scorer):
    """An API model answering in schema-validated JSON, re-asked on invalid replies."""

    def call(self, out_path: str, seed: int) -> model_items.ApiCall:
        """The re-asks, where the raw output goes on failure, and the JSON asked for."""
        job = self.job
        return model_items.ApiCall(
            job.client,
            job.endpoint,
            job.judge["sampling"],
            seed,
            int(job.judge["retries"]),
            Path(out_path).with_suffix(".raw.txt"),
            job.judge["structured_output"],
        )

    def score(self, transcript, out_path, seed):
        job, text = self.job, self.text(transcript)
        if job.judge["mode"] == "per_item":
            return self.rubric_items(job.rubric, text, out_path, seed)
        return model_items.score_api(self.call(out_path, seed), job.rubric, text, job.templates["judge_all"])

    def rubric_items(self, rubric, text, out_path, seed):
        template = self.job.templates["judge_item_json"]
        return model_items.score_api_per_item(self.call(out_path, seed), rubric, text, template)

    def safety(self, transcript, out_path, seed):
        return self.rubric_items(self.safety_rubric, self.text(transcript), out_path, seed)


@register
class Llm(JudgeKind):
    name = "llm"
    description = "A model scores the rubric: local models through the score digits, API models in JSON."
    calls_model = True
    templates = ("judge_item", "judge_all", "judge_item_json")
    fields = {
        "model": {"$ref": f"{ENDPOINT}/model"},
        "api_base": {"$ref": f"{ENDPOINT}/api_base"},
        "fallbacks": {"$ref": f"{ENDPOINT}/fallbacks"},
        "concurrency": {"$ref": f"{ENDPOINT}/concurrency"},
        "sampling": {"$ref": "#/$defs/sampling"},
        "prices": {"$ref": "#/$defs/prices"},
        "retries": {
            "type": "integer",
            "minimum": 0,
            "default": 2,
            "description": "Re-asks after invalid JSON before the job fails.",
        },
        "structured_output": {
            "enum": ["json_object", "json_schema", "json_object_schema"],
            "default": "json_object",
            "description": "API judges: json_object (any JSON, validated here); json_schema (the rubric's schema "
            "is sent in OpenAI's form and the provider constrains decoding to it: OpenAI, Gemini, vLLM); "
            "json_object_schema (the same for llama-cpp-python's server, which takes a json_object with a schema).",
        },
        "mode": {
            "enum": ["all_items", "per_item"],
            "default": "all_items",
            "description": "API judges: all_items = one JSON call per transcript; per_item = one call per item "
            "(less halo). Local judges always score per item.",
        },
        "low_mass_threshold": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "default": 0.5,
            "description": "Local judges: an item whose probability mass on the score digits is below this is "
            "flagged low-confidence.",
        },
        "on_low_mass": {
            "enum": ["flag", "fail"],
            "default": "flag",
            "description": "Local judges: flag low-mass items in the score document or fail the job.",
        },
    }

    # One cap for every API judge call, item and safety alike: an all-items JSON reply with
    # justifications runs past the 512 tokens other roles default to.
    whole_defaults = {"sampling": {"temperature": 0.0, "max_tokens": 2048}}

    def reads(self, judge: dict[str, Any], facts: RunFacts) -> Reads:
        """A local judge: the per-item digit prompt; an API judge: its mode's JSON prompt,
        plus the per-item JSON prompt when a safety or crisis item is scored apart."""
        if scores_by_digits(judge):
            return Reads(templates=("judge_item",))
        mode = "judge_item_json" if judge["mode"] == "per_item" else "judge_all"
        apart = (facts.safety or facts.crises) and mode != "judge_item_json"
        return Reads(templates=(mode, *(("judge_item_json",) if apart else ())))

    def scorer(self, job: JudgeJob) -> Scorer:
        return DigitScorer(job) if job.endpoint.is_local or job.endpoint.is_scripted else JsonScorer(job)

    def mode(self, judge: dict[str, Any]) -> str:
        return judge["mode"]

    def plan(self, judge: dict[str, Any], work: Work) -> list[CallPlan]:
        repeats, digits = int(judge["repeats"]), scores_by_digits(judge)
        per_item = judge["mode"] == "per_item" or digits
        calls = work.transcripts * repeats * (work.n_items if per_item else 1)
        prompt = calls * (work.transcript_tokens + (work.item_tokens if per_item else work.rubric_tokens))
        reply = work.justification_tokens if per_item else work.n_items * work.justification_tokens
        # Per item, every call on a transcript starts with the same instruction and transcript.
        cached = work.after_first(calls, work.transcripts, work.transcript_tokens) if per_item else 0
        plans = [CallPlan("", calls, prompt, 0 if digits else calls * reply, cached)]
        if work.crisis_sessions:  # the crisis-response items, one call each, on a short excerpt
            calls = work.crisis_sessions * repeats * work.n_crisis_items
            completion = 0 if digits else calls * work.justification_tokens
            plans.append(CallPlan(" crisis", calls, calls * work.crisis_excerpt_tokens, completion))
        return plans
