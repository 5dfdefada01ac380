"""LLM judges: G-Eval-style expected scores from a local model, validated JSON from an API.

A local judge reads the next-token probabilities of the digits 0..6 and reports their
expectation, so even a tiny model always yields a valid score. An API judge must return
JSON that pydantic validates against the rubric (every item, integer in range, a
justification); invalid output is retried with the validation error, then the job fails
with the raw output saved beside the target. A score is never invented.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, create_model

from cbtflow import prompts
from cbtflow.io import write_text_atomic
from cbtflow.llm import Client, Endpoint
from cbtflow.seeds import derive_seed

# Prefilled start of the local judge's answer: with it SmolLM2-135M puts ~70% of its
# next-token mass on the digits (measured 0.70-0.75 over three items; without it, 0.06-0.12).
LOCAL_ANSWER_PREFIX = "Score: "


class JudgeOutputError(RuntimeError):
    """The judge's reply stayed invalid after the re-asks; ``raw_path`` holds what it said."""

    def __init__(self, message: str, raw_path: str | Path | None = None):
        super().__init__(message)
        self.raw_path = str(raw_path) if raw_path else None


class LowMassError(RuntimeError):
    """A local judge put too little probability on the score digits (``on_low_mass: fail``)."""


def geval_expectation(probs: Sequence[float], scores: Sequence[int]) -> float:
    """Expected score under the (renormalised) probabilities of the score tokens."""
    total = float(sum(probs))
    if total <= 0:
        raise ValueError("score probabilities sum to zero")
    return sum(p * s for p, s in zip(probs, scores)) / total


def score_local(
    client: Client, endpoint: Endpoint, rubric: dict[str, Any], transcript: str, template: str
) -> dict[str, Any]:
    lo, hi = int(rubric["scale"]["min"]), int(rubric["scale"]["max"])
    scores = list(range(lo, hi + 1))
    conversations = [
        [
            {
                "role": "user",
                "content": prompts.render(
                    template, transcript=transcript, item=item, scale=rubric["scale"], rubric=rubric
                ),
            }
        ]
        for item in rubric["items"]
    ]
    results = client.score(endpoint, conversations, [str(s) for s in scores], LOCAL_ANSWER_PREFIX)
    return {
        item["id"]: {
            "score": round(geval_expectation(r["probs"], scores), 4),
            "probs": [round(p, 5) for p in r["probs"]],
            "score_token_mass": round(r["mass"], 4),
            "answered_by": endpoint.model,
        }
        for item, r in zip(rubric["items"], results)
    }


def low_mass_items(items: dict[str, Any], threshold: float) -> list[str]:
    """Items whose score came from a distribution with little mass on the score digits:
    renormalising 5% of the mass still gives a number, but not a judgement."""
    return [k for k, v in items.items() if v.get("score_token_mass") is not None and v["score_token_mass"] < threshold]


def _item_model(lo: int, hi: int) -> type[BaseModel]:
    """One item's reply. The score's schema lists its allowed values as an ``enum``: grammar
    engines (llama.cpp, vLLM's guided decoding) enforce an enum, while they ignored the
    integer range (a llama.cpp server returned 25 and 30). A bounded justification also
    bounds a grammar-constrained reply."""
    allowed = list(range(lo, hi + 1))
    return create_model(
        "ItemScore",
        score=(int, Field(ge=lo, le=hi, strict=True, json_schema_extra={"enum": allowed})),
        justification=(str, Field(min_length=1, max_length=600)),
    )


def response_model(rubric: dict[str, Any]) -> type[BaseModel]:
    """A pydantic model of the judge's JSON: every rubric item, integer in range."""
    item = _item_model(int(rubric["scale"]["min"]), int(rubric["scale"]["max"]))
    items = create_model("Items", **{i["id"]: (item, ...) for i in rubric["items"]}, __config__={"extra": "forbid"})
    return create_model("JudgeReply", items=(items, ...))


def extract_json(text: str) -> Any:
    """The first JSON object in ``text`` (models like to wrap JSON in code fences)."""
    match = re.search(r"\{.*\}", text, re.S)
    if not match:
        raise ValueError("no JSON object in the reply")
    return json.loads(match.group(0))


def response_format(model: type[BaseModel], structured_output: str) -> dict[str, Any]:
    """What the provider is asked for: any JSON object (``json_object``: DeepSeek and most
    providers), or JSON that matches our schema, which the server enforces while decoding so
    invalid replies and their paid re-asks disappear: ``json_schema`` (OpenAI's form: OpenAI,
    Gemini, vLLM) or ``json_object_schema`` (llama-cpp-python's server: a json_object with
    a ``schema``)."""
    schema = model.model_json_schema()
    if structured_output == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": model.__name__, "schema": schema}}
    if structured_output == "json_object_schema":
        return {"type": "json_object", "schema": schema}
    return {"type": "json_object"}


def _validated_call(
    client: Client,
    endpoint: Endpoint,
    prompt: str,
    model: type[BaseModel],
    sampling: dict[str, Any],
    seed: int,
    retries: int,
    raw_path: str | Path,
    structured_output: str = "json_object",
) -> tuple[BaseModel, str]:
    """Ask, validate, re-ask with the validation error; after ``retries`` fail loudly.
    Returns the parsed reply and the model that gave it (a fallback, or the endpoint)."""
    messages = [{"role": "user", "content": prompt}]
    sampling = {**sampling, "response_format": response_format(model, structured_output)}
    raw_outputs = []
    for attempt in range(retries + 1):
        reply = client.chat(endpoint, messages, sampling, derive_seed(seed, "judge.reask", attempt))
        raw_outputs.append(reply["text"])
        try:
            return model.model_validate(extract_json(reply["text"])), reply.get("model", endpoint.model)
        except (ValueError, ValidationError) as err:
            messages = messages[:1] + [
                {"role": "assistant", "content": reply["text"]},
                {
                    "role": "user",
                    "content": f"Your reply was invalid: {err}. Reply again with JSON only, integer scores.",
                },
            ]
    write_text_atomic(raw_path, "\n\n---- next attempt ----\n\n".join(raw_outputs))
    raise JudgeOutputError(
        f"judge {endpoint.model} gave invalid JSON {retries + 1} times; raw output saved to {raw_path}", raw_path
    )


@dataclass(frozen=True)
class ApiCall:
    """How an API judge asks: client, endpoint, sampling, seed, re-asks, where raw output
    goes on failure, and the JSON form it requests."""

    client: Client
    endpoint: Endpoint
    sampling: dict[str, Any]
    seed: int
    retries: int
    raw_path: str | Path
    structured_output: str = "json_object"

    def ask(self, prompt: str, model: type[BaseModel], raw_path: str | Path | None = None) -> tuple[BaseModel, str]:
        return _validated_call(
            self.client,
            self.endpoint,
            prompt,
            model,
            self.sampling,
            self.seed,
            self.retries,
            raw_path or self.raw_path,
            self.structured_output,
        )


def score_api(call: ApiCall, rubric: dict[str, Any], transcript: str, template: str) -> dict[str, Any]:
    """``all_items`` mode: one JSON call scores every item (cheaper, more halo)."""
    parsed, answered_by = call.ask(
        prompts.render(template, transcript=transcript, rubric=rubric), response_model(rubric)
    )
    return {
        k: {"score": v.score, "justification": v.justification, "answered_by": answered_by}
        for k, v in parsed.items.__dict__.items()
    }


def score_api_per_item(call: ApiCall, rubric: dict[str, Any], transcript: str, template: str) -> dict[str, Any]:
    """``per_item`` mode (CACTUS-style): one call per item, so items cannot colour each other."""
    model = _item_model(int(rubric["scale"]["min"]), int(rubric["scale"]["max"]))
    out = {}
    for item in rubric["items"]:
        prompt = prompts.render(template, transcript=transcript, item=item, rubric=rubric)
        item_raw = Path(str(call.raw_path).replace(".raw.txt", f".{item['id']}.raw.txt"))
        parsed, answered_by = call.ask(prompt, model, item_raw)
        out[item["id"]] = {"score": parsed.score, "justification": parsed.justification, "answered_by": answered_by}
    return out
