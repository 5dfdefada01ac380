"""Synthetic multi-session CBT courses, generated session by session per training profile.

Each session follows a phase plan (assessment → behavioural activation → automatic
thoughts → core beliefs → relapse prevention) and sees a running summary of the sessions
before it. Two generation modes produce the same course format:

- ``session``: one generator call writes a whole session (as the study did with a 405B
  model); the text is parsed strictly into speaker turns.
- ``turns``: the generator plays therapist (with the session plan) and client (with the
  profile) turn by turn through the shared dialogue loop. Small models cannot keep a
  multi-speaker format in one call (SmolLM2-135M degenerated into repeated labels in one
  of two samples), so the offline default uses this mode.

All profiles of a job advance together, so a local generator runs them as one batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cbtflow import prompts
from cbtflow.data import quality
from cbtflow.dialogue import Party, Session, render_transcript, run_sessions
from cbtflow.llm import Client, Endpoint
from cbtflow.seeds import derive_seed

log = logging.getLogger(__name__)


class CourseError(RuntimeError):
    pass


def plan_course(phases: Sequence[dict[str, Any]], sessions: int) -> list[dict[str, Any]]:
    """Map K sessions onto the phases: first and last phase fixed, the rest spread in order."""
    if sessions < 1:
        raise ValueError("courses.sessions must be at least 1")
    if sessions == 1:
        indices = [0]
    else:
        last = len(phases) - 1
        indices = [round(k * last / (sessions - 1)) for k in range(sessions)]
    plan = []
    for number, index in enumerate(indices, start=1):
        phase = phases[index]
        plan.append(
            {
                "number": number,
                "phase": phase["name"],
                "agenda": list(phase["agenda"]),
                "homework_review": plan[-1]["homework_set"] if plan else None,
                "homework_set": phase["homework"],
            }
        )
    return plan


def load_phases(path: str | Path) -> list[dict[str, Any]]:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class SessionStep:
    """One session of every course: its plan entry, the course length, each course's running
    summary so far, the prompt templates and the course settings."""

    plan: dict
    total: int
    summaries: dict[str, str]
    templates: dict[str, str]
    settings: dict


def _turns_mode(client: Client, generator: Party, profiles: Sequence[dict], step: SessionStep, seeds: Sequence[int]):
    sessions = [
        Session(
            therapist_system=prompts.render(
                step.templates["course_therapist"],
                p=p,
                session=step.plan,
                total=step.total,
                summary=step.summaries[p["id"]],
            ),
            patient_system=prompts.render(step.templates["patient_system"], p=p, summary=step.summaries[p["id"]]),
            seed=seed,
        )
        for p, seed in zip(profiles, seeds)
    ]
    run_sessions(client, sessions, generator, generator, step.settings["turns_per_session"])
    return [[{"role": t["role"], "text": t["text"]} for t in s.turns] for s in sessions], [
        sum(t["completion_tokens"] for t in s.turns) for s in sessions
    ]


def _session_mode(client: Client, generator: Party, profiles: Sequence[dict], step: SessionStep, seeds: Sequence[int]):
    conversations = [
        [
            {
                "role": "user",
                "content": prompts.render(
                    step.templates["course_session"],
                    p=p,
                    session=step.plan,
                    total=step.total,
                    summary=step.summaries[p["id"]],
                    turns=step.settings["turns_per_session"],
                ),
            }
        ]
        for p in profiles
    ]
    replies = client.chat_batch(generator.endpoint, conversations, generator.sampling, list(seeds))
    return [quality.parse_transcript(r["text"]) for r in replies], [r.get("completion_tokens", 0) for r in replies]


MODES = {"turns": _turns_mode, "session": _session_mode}


def generate_courses(
    client: Client,
    generator: Party,
    profiles: Sequence[dict[str, Any]],
    phases: Sequence[dict[str, Any]],
    settings: dict[str, Any],
    templates: dict[str, str],
    seed: int,
    detectors: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Generate every profile's course; returns ``{profile_id: course}``.

    A session failing a quality gate (structure, role breaks, and the heuristic content
    detectors when ``detectors`` is given) is regenerated with the next sub-seed, up to
    ``max_attempts``; a session that never passes fails the job with its reasons, or,
    with ``on_exhausted: drop``, is left out of the course and listed in
    ``dropped_sessions`` (counted in the dataset statistics).

    With ``parallel_attempts: k`` each round generates the next k attempts of every pending
    session in one batch and keeps the first that passes, in attempt order: the session an
    attempt-by-attempt run would keep from the same candidates, in fewer rounds of turns
    (a local batch of 8 costs little more per step than one of 4), for the price of the
    candidates past the kept one.
    """
    total = int(settings["sessions"])
    plan = plan_course(phases, total)
    mode = MODES[settings["mode"]]
    courses = {p["id"]: {"profile_id": p["id"], "profile_hash": p["hash"], "sessions": []} for p in profiles}
    summaries = {p["id"]: "" for p in profiles}
    all_names = {p["id"]: p["name"] for p in profiles}
    max_attempts, width = int(settings["max_attempts"]), int(settings["parallel_attempts"])
    for plan_k in plan:
        pending = list(profiles)
        tried = 0  # attempts made so far at this session, for every pending profile
        rejections: dict[str, list[str]] = {p["id"]: [] for p in profiles}
        while pending:
            attempts = list(range(tried + 1, min(tried + width, max_attempts) + 1))
            tried = attempts[-1]
            candidates = [(p, a) for p in pending for a in attempts]
            seeds = [derive_seed(seed, "course.session", plan_k["number"], a) for _, a in candidates]
            step = SessionStep(plan_k, total, summaries, templates, settings)
            turn_lists, tokens = mode(client, generator, [p for p, _ in candidates], step, seeds)
            by_profile: dict[str, list[tuple[int, int, list, int]]] = {p["id"]: [] for p in pending}
            for (p, attempt), sub_seed, turns, n_tokens in zip(candidates, seeds, turn_lists, tokens):
                by_profile[p["id"]].append((attempt, sub_seed, turns, n_tokens))  # in attempt order
            still = []
            for p in pending:
                foreign = sorted({n for pid, n in all_names.items() if pid != p["id"] and n != p["name"]})
                limits = {
                    "min_turns": settings["min_turns"],
                    "max_turns": settings["turns_per_session"] + 2,
                    "foreign_names": foreign,
                    "detectors": detectors,
                }
                kept = None
                for candidate in by_profile[p["id"]]:
                    reason = quality.check(candidate[2], limits)
                    if not reason:
                        kept = candidate
                        break
                    rejections[p["id"]].append(reason)
                if kept:
                    attempt, sub_seed, turns, n_tokens = kept
                    courses[p["id"]]["sessions"].append(
                        {
                            **plan_k,
                            "turns": turns,
                            "attempts": attempt,
                            "rejections": rejections[p["id"]],
                            "sub_seed": sub_seed,
                            "completion_tokens": n_tokens,
                        }
                    )
                elif tried < max_attempts:
                    still.append(p)
                elif settings["on_exhausted"] == "drop":
                    courses[p["id"]].setdefault("dropped_sessions", []).append(
                        {"number": plan_k["number"], "rejections": rejections[p["id"]]}
                    )
                else:
                    raise CourseError(
                        f"course {p['id']}, session {plan_k['number']}: rejected {tried} times "
                        f"({', '.join(rejections[p['id']])}); raise courses.max_attempts or use a "
                        "stronger generator"
                    )
            pending = still
        # The running summary carries each course forward into its next session.
        done = [
            p
            for p in profiles
            if courses[p["id"]]["sessions"] and courses[p["id"]]["sessions"][-1]["number"] == plan_k["number"]
        ]
        summary_prompts = [
            [
                {
                    "role": "user",
                    "content": prompts.render(
                        templates["course_summary"],
                        transcript=render_transcript(courses[p["id"]]["sessions"][-1]["turns"]),
                    ),
                }
            ]
            for p in done
        ]
        summary_seeds = [derive_seed(seed, "course.summary", plan_k["number"]) for _ in done]
        replies = client.chat_batch(generator.endpoint, summary_prompts, generator.sampling, summary_seeds)
        for p, reply in zip(done, replies):
            courses[p["id"]]["sessions"][-1]["summary"] = reply["text"]
            summaries[p["id"]] = (summaries[p["id"]] + f" Session {plan_k['number']}: {reply['text']}").strip()
        log.info("session %d/%d done for %d courses", plan_k["number"], total, len(profiles))
    return courses


def course_document(
    course: dict[str, Any], generator: Endpoint, settings: dict[str, Any], template_hashes: dict[str, str]
) -> dict[str, Any]:
    return {
        "kind": "course",
        "generator": generator.identity(),
        "mode": settings["mode"],
        "template_hashes": template_hashes,
        **course,
    }
