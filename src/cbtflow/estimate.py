"""Plan a run's calls, tokens and cost per stage and role before making any call.

Token counts are upper-bound estimates from the config (every reply at ``max_tokens``,
prompts growing with the conversation); prices come from litellm's bundled cost map
(no network). Local models cost nothing but their calls are counted.
"""

from __future__ import annotations

import math
import os
from typing import Any

from cbtflow.config import instrument, is_api_role
from cbtflow.judge.crisis import load_crisis
from cbtflow.judge.kinds import Work, kind_of
from cbtflow.llm.usage import token_cost
from cbtflow.packaged import RESOURCES
from cbtflow.simulate.measures import load_measure

SYSTEM_TOKENS = 400  # a role's system prompt with the profile and plan
RUBRIC_TOKENS = 900  # the full CTRS rubric with anchors
ITEM_TOKENS = 150  # one item's question and anchors
JUSTIFICATION_TOKENS = 80  # one item's JSON score and justification
SUMMARY_TOKENS = 120
CRISIS_EXCERPT_TOKENS = 900  # a few turns around the disclosure and one item's anchors


def _dialogue(turns: int, reply_tokens: int, speaker_turns: int) -> tuple[int, int, int]:
    """Calls, prompt tokens and reusable prompt tokens over ``speaker_turns`` calls of one
    side in a conversation of ``turns`` replies.

    Each call after a side's first starts with that side's previous prompt and reply; only
    the other side's newest reply is new. Those prefixes are what the local backend's KV
    reuse, vLLM's prefix cache and the providers' prompt caches can serve."""
    average_history = reply_tokens * turns / 2
    prompt = int(speaker_turns * (SYSTEM_TOKENS + average_history))
    fresh = SYSTEM_TOKENS + speaker_turns * reply_tokens  # the first prompt, then one new reply a call
    return speaker_turns, prompt, max(0, prompt - fresh)


def price(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    prices: dict[str, float] | None = None,
    cached_prompt_tokens: int = 0,
    paid: bool = True,
) -> float | None:
    """USD for the tokens: configured ``prices`` (per million tokens) first, else litellm's
    map; ``cached_prompt_tokens`` (part of the prompt) at the cached price where there is one.
    Nothing for a local or scripted model, or a role that calls none (``paid`` False)."""
    if not paid or not is_api_role({"model": model}):
        return 0.0
    if prices:
        return token_cost(prices, prompt_tokens, completion_tokens, cached_prompt_tokens)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True

    try:
        p, c = litellm.cost_per_token(
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cache_read_input_tokens=cached_prompt_tokens,
        )
        return float(p + c)
    except Exception:  # not in the cost map (self-hosted, new model)
        return None


def judge_card_transcripts(config: dict[str, Any]) -> int:
    """Sessions a judge card scores: every reference session and each perturbation of the
    better ones, and the sample of the run's own transcripts with each of its perturbations
    (an upper bound: a perturbation that changes nothing is not scored)."""
    from cbtflow.validation.card import better_half, sessions_of
    from cbtflow.validation.perturb import load_perturbations

    lowers = instrument(config)[1].get("perturbations")
    n_perturbations = len(load_perturbations(names=config["validation"].get("perturbations"), lowers=lowers))
    sets = sum(len(s) + n_perturbations * len(better_half(s, kind)) for s, kind in sessions_of(config).values())
    return sets + config["validation"]["run_transcripts"] * (1 + n_perturbations)


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
        cached: int = 0,
        paid: bool = True,
    ) -> None:
        rows.append(
            {
                "stage": stage,
                "role": role,
                "model": model,
                "calls": calls,
                "prompt_tokens": prompt,
                "cached_prompt_tokens": cached,
                "completion_tokens": completion,
                "cost_usd": price(model, prompt, completion, prices, paid=paid),
                "cost_usd_with_prompt_cache": price(model, prompt, completion, prices, cached, paid),
            }
        )

    generator = config["roles"]["generator"]
    courses, sessions = config["profiles"]["train"], config["courses"]["sessions"]
    turns = config["courses"]["turns_per_session"]
    g_max = generator["sampling"]["max_tokens"]
    if config["courses"]["mode"] == "turns":
        # The generator plays both sides, each seeing the conversation from its own seat.
        sides = (_dialogue(turns, g_max, math.ceil(turns / 2)), _dialogue(turns, g_max, turns // 2))
        calls, prompt, cached = (sum(column) for column in zip(*sides))
        session_tokens = turns * g_max
    else:
        calls, prompt, cached = 1, SYSTEM_TOKENS + sessions * SUMMARY_TOKENS // 2, 0
        session_tokens = g_max
    n = courses * sessions
    add(
        "courses",
        "generator",
        generator["model"],
        n * calls,
        n * prompt,
        n * calls * g_max,
        generator.get("prices"),
        n * cached,
    )
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
    # A course (simulation.sessions: K) is K sessions per eval patient, each simulated and judged.
    course_length = int(config["simulation"]["sessions"])
    transcripts = jobs * config["profiles"]["eval"] * course_length
    t_max = config["therapist"]["sampling"]["max_tokens"]
    patient = config["roles"]["patient"]
    p_max = patient["sampling"]["max_tokens"]
    reply = (t_max + p_max) // 2
    t_calls, t_prompt, t_cached = _dialogue(max_turns, reply, math.ceil(max_turns / 2))
    p_calls, p_prompt, p_cached = _dialogue(max_turns, reply, max_turns // 2)
    for name, model in config["models"].items():
        per_model = transcripts // len(config["models"])
        add(
            "simulate",
            f"therapist ({name})",
            f"local/{model['base']}",
            per_model * t_calls,
            per_model * t_prompt,
            per_model * t_calls * t_max,
            cached=per_model * t_cached,
        )
    add(
        "simulate",
        "patient",
        patient["model"],
        transcripts * p_calls,
        transcripts * p_prompt,
        transcripts * p_calls * p_max,
        patient.get("prices"),
        transcripts * p_cached,
    )

    transcript_tokens = max_turns * reply
    memory = config["simulation"]["memory"]
    if course_length > 1 and memory in ("notes", "summary"):
        later = transcripts // course_length * (course_length - 1)  # one call per later session, from the last
        for name, model in config["models"].items():
            per_model = later // len(config["models"])
            add(
                "simulate",
                f"therapist {memory} ({name})",
                f"local/{model['base']}",
                per_model,
                per_model * (SYSTEM_TOKENS + transcript_tokens),
                per_model * t_max,
            )
    if course_length > 1 and memory == "transcript":
        # Session n re-sends sessions 1..n-1 to the therapist (within max_context_tokens): the
        # first turn of a session encodes them, its later turns continue from that KV state.
        cap = config["simulation"].get("max_context_tokens") or math.inf
        history = sum(int(min((n - 1) * transcript_tokens, cap)) for n in range(2, course_length + 1))
        for name, model in config["models"].items():
            courses_of_model = transcripts // course_length // len(config["models"])
            add(
                "simulate",
                f"therapist earlier sessions ({name})",
                f"local/{model['base']}",
                0,  # no call of its own: the tokens the therapist rows' prompts gain
                courses_of_model * t_calls * history,
                0,
                cached=courses_of_model * (t_calls - 1) * history,
            )
    for name in config["simulation"]["measures"]:
        measure = load_measure(RESOURCES / "measures" / f"{name}.yaml")
        for when in measure["when"]:  # one call per item and time point; after the session it reads the session
            calls = transcripts * len(measure["items"])
            shared = SYSTEM_TOKENS + (transcript_tokens if when == "post" else 0)  # before the item's own text
            digits = not is_api_role(patient)
            add(
                "simulate",
                f"patient {name} {when}",
                patient["model"],
                calls,
                calls * (shared + ITEM_TOKENS),
                0 if digits else calls * JUSTIFICATION_TOKENS,
                patient.get("prices"),
                Work.after_first(calls, transcripts, shared),
            )
    n_items = len(instrument(config)[1]["items"])
    crisis = config["profiles"]["crisis"]
    crisis_sessions = jobs * round(crisis["share"] * config["profiles"]["eval"])
    n_crisis_items = len(load_crisis(RESOURCES / "crisis" / "safety_rubric.yaml", None)["rubric"]["items"])
    card_transcripts = judge_card_transcripts(config)
    sizes = {
        "n_items": n_items,
        "transcript_tokens": transcript_tokens,
        "n_crisis_items": n_crisis_items,
        "item_tokens": ITEM_TOKENS,
        "rubric_tokens": RUBRIC_TOKENS,
        "justification_tokens": JUSTIFICATION_TOKENS,
        "crisis_excerpt_tokens": CRISIS_EXCERPT_TOKENS,
    }
    for name, judge in config["judges"].items():
        kind = kind_of(judge)  # each kind plans its own calls (cbtflow.judge.kinds)
        for stage, scored, crises in (("judge", transcripts, crisis_sessions), ("judge_card", card_transcripts, 0)):
            for part in kind.plan(judge, Work(transcripts=scored, crisis_sessions=crises, **sizes)):
                add(
                    stage,
                    name + part.label,
                    kind.model_label(judge),
                    part.calls,
                    part.prompt,
                    part.completion,
                    judge.get("prices"),
                    part.cached,
                    paid=kind.calls_model,
                )
    return rows


def format_plan(rows: list[dict[str, Any]]) -> str:
    """The plan as a table. ``cost USD`` prices every prompt token in full (the upper bound
    that budgets are checked against); ``w/ cache`` prices the reusable prefix at the
    provider's cached-input price, what a run whose provider caches every prefix would pay."""
    header = (
        f"{'stage':<12}{'role':<28}{'model':<50}{'calls':>9}{'prompt tok':>13}{'reusable':>11}{'compl. tok':>12}"
        f"{'cost USD':>11}{'w/ cache':>10}"
    )
    lines = [header, "-" * len(header)]
    total, cached_total, unknown = 0.0, 0.0, []
    for r in rows:
        cost, cached = (
            "unknown" if r[key] is None else f"{r[key]:.2f}" for key in ("cost_usd", "cost_usd_with_prompt_cache")
        )
        lines.append(
            f"{r['stage']:<12}{r['role'][:27]:<28}{r['model'][:49]:<50}{r['calls']:>9}{r['prompt_tokens']:>13}"
            f"{r['cached_prompt_tokens']:>11}{r['completion_tokens']:>12}{cost:>11}{cached:>10}"
        )
        if r["cost_usd"] is None:
            unknown.append(r["model"])
        else:
            total += r["cost_usd"]
            cached_total += r["cost_usd_with_prompt_cache"]
    lines.append(
        f"total (upper bound, known prices): {total:.2f} USD; with every reusable prefix read from the "
        f"provider's prompt cache: {cached_total:.2f} USD"
        + (f"; no price for {sorted(set(unknown))}" if unknown else "")
    )
    return "\n".join(lines)
