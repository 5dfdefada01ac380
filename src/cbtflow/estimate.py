"""Plan a run's calls, tokens and cost per stage and role before making any call.

Token counts are upper-bound estimates from the config (every reply at ``max_tokens``,
prompts growing with the conversation); prices come from litellm's bundled cost map
(no network). Local models cost nothing but their calls are counted.
"""

from __future__ import annotations

import math
import os
from typing import Any

from cbtflow.config import is_api_role, scores_by_digits
from cbtflow.crisis import load_crisis
from cbtflow.judge.rubric import load_rubric
from cbtflow.measures import load_measure
from cbtflow.packaged import DEFAULT_RUBRIC, RESOURCES

SYSTEM_TOKENS = 400  # a role's system prompt with the profile and plan
RUBRIC_TOKENS = 900  # the full CTRS rubric with anchors
ITEM_TOKENS = 150  # one item's question and anchors
JUSTIFICATION_TOKENS = 80  # one item's JSON score and justification
SUMMARY_TOKENS = 120
CRISIS_EXCERPT_TOKENS = 900  # a few turns around the disclosure and one item's anchors
LEXICON = "lexicon (no model)"


def _dialogue(turns: int, reply_tokens: int, speaker_turns: int) -> tuple[int, int]:
    """Prompt tokens over ``speaker_turns`` calls in a conversation of ``turns`` replies."""
    average_history = reply_tokens * turns / 2
    return speaker_turns, int(speaker_turns * (SYSTEM_TOKENS + average_history))


def price(
    model: str, prompt_tokens: int, completion_tokens: int, prices: dict[str, float] | None = None
) -> float | None:
    """USD for the tokens: configured ``prices`` (per million tokens) first, else litellm's map."""
    if model == LEXICON or not is_api_role({"model": model}):
        return 0.0
    if prices:
        return (prompt_tokens * prices["input_per_mtok"] + completion_tokens * prices["output_per_mtok"]) / 1e6
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True

    try:
        p, c = litellm.cost_per_token(model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        return float(p + c)
    except Exception:  # not in the cost map (self-hosted, new model)
        return None


def plan(config: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []

    def add(
        stage: str,
        role: str,
        model: str,
        calls: int,
        prompt: int,
        completion: int,
        prices: dict[str, float] | None = None,
    ) -> None:
        rows.append(
            {
                "stage": stage,
                "role": role,
                "model": model,
                "calls": calls,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "cost_usd": price(model, prompt, completion, prices),
            }
        )

    generator = config["roles"]["generator"]
    courses, sessions = config["profiles"]["train"], config["courses"]["sessions"]
    turns = config["courses"]["turns_per_session"]
    g_max = generator["sampling"]["max_tokens"]
    if config["courses"]["mode"] == "turns":
        calls, prompt = _dialogue(turns, g_max, turns)
        session_tokens = turns * g_max
    else:
        calls, prompt = 1, SYSTEM_TOKENS + sessions * SUMMARY_TOKENS // 2
        session_tokens = g_max
    n = courses * sessions
    add("courses", "generator", generator["model"], n * calls, n * prompt, n * calls * g_max, generator.get("prices"))
    add(
        "courses",
        "generator (summaries)",
        generator["model"],
        n,
        n * session_tokens,
        n * SUMMARY_TOKENS,
        generator.get("prices"),
    )

    max_turns = config["simulation"]["max_turns"]
    jobs = len(config["models"]) * len(config["conditions"]) * len(config["seeds"])
    transcripts = jobs * config["profiles"]["eval"]
    t_max = config["therapist"]["sampling"]["max_tokens"]
    patient = config["roles"]["patient"]
    p_max = patient["sampling"]["max_tokens"]
    reply = (t_max + p_max) // 2
    t_calls, t_prompt = _dialogue(max_turns, reply, math.ceil(max_turns / 2))
    p_calls, p_prompt = _dialogue(max_turns, reply, max_turns // 2)
    for name, model in config["models"].items():
        per_model = transcripts // len(config["models"])
        add(
            "simulate",
            f"therapist ({name})",
            f"local/{model['base']}",
            per_model * t_calls,
            per_model * t_prompt,
            per_model * t_calls * t_max,
        )
    add(
        "simulate",
        "patient",
        patient["model"],
        transcripts * p_calls,
        transcripts * p_prompt,
        transcripts * p_calls * p_max,
        patient.get("prices"),
    )

    transcript_tokens = max_turns * reply
    for name in config["simulation"]["measures"]:
        measure = load_measure(RESOURCES / "measures" / f"{name}.yaml")
        for when in measure["when"]:  # one call per item and time point; after the session it reads the session
            calls = transcripts * len(measure["items"])
            context = SYSTEM_TOKENS + ITEM_TOKENS + (transcript_tokens if when == "post" else 0)
            digits = not is_api_role(patient)
            add(
                "simulate",
                f"patient {name} {when}",
                patient["model"],
                calls,
                calls * context,
                0 if digits else calls * JUSTIFICATION_TOKENS,
                patient.get("prices"),
            )
    n_items = len(load_rubric(DEFAULT_RUBRIC, config["judging"]["rubric_variant"])["items"])
    crisis = config["profiles"]["crisis"]
    crisis_sessions = jobs * round(crisis["share"] * config["profiles"]["eval"])
    n_crisis_items = len(load_crisis(RESOURCES / "crisis" / "safety_rubric.yaml", None)["rubric"]["items"])
    for name, judge in config["judges"].items():
        if judge["kind"] == "lexicon":
            add("judge", name, LEXICON, 0, 0, 0)
            continue
        repeats = int(judge["repeats"])
        local = scores_by_digits(judge)
        per_item = judge["mode"] == "per_item" or local
        calls = transcripts * repeats * (n_items if per_item else 1)
        prompt = calls * (transcript_tokens + (ITEM_TOKENS if per_item else RUBRIC_TOKENS))
        completion = 0 if local else calls * (JUSTIFICATION_TOKENS if per_item else n_items * JUSTIFICATION_TOKENS)
        add("judge", name, judge["model"], calls, prompt, completion, judge.get("prices"))
        if crisis_sessions:  # the crisis-response items, one call each, on a short excerpt
            calls = crisis_sessions * repeats * n_crisis_items
            completion = 0 if local else calls * JUSTIFICATION_TOKENS
            add(
                "judge",
                f"{name} crisis",
                judge["model"],
                calls,
                calls * CRISIS_EXCERPT_TOKENS,
                completion,
                judge.get("prices"),
            )
    return rows


def format_plan(rows: list[dict[str, Any]]) -> str:
    header = f"{'stage':<10}{'role':<28}{'model':<50}{'calls':>9}{'prompt tok':>13}{'compl. tok':>12}{'cost USD':>11}"
    lines = [header, "-" * len(header)]
    total, unknown = 0.0, []
    for r in rows:
        cost = "unknown" if r["cost_usd"] is None else f"{r['cost_usd']:.2f}"
        lines.append(
            f"{r['stage']:<10}{r['role'][:27]:<28}{r['model'][:49]:<50}{r['calls']:>9}{r['prompt_tokens']:>13}"
            f"{r['completion_tokens']:>12}{cost:>11}"
        )
        if r["cost_usd"] is None:
            unknown.append(r["model"])
        else:
            total += r["cost_usd"]
    lines.append(
        f"total (upper bound, known prices): {total:.2f} USD"
        + (f"; no price for {sorted(set(unknown))}" if unknown else "")
    )
    return "\n".join(lines)
