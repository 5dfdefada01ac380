"""Evaluation as a course: what carries from one simulated session to the next.

``simulation.sessions: K`` gives every eval patient K sessions with each therapist. Session n
of one (model, condition, seed) is its own job; it reads the documents of the sessions
before it and carries two things forward, as a deployed service and a real client would:

- **The therapist's memory** (``simulation.memory``):
  ``notes``: the therapist writes its own notes on the last session (one call, its own
  model and adapter, seeing the session from its seat) and reads them at the next;
  ``summary``: a neutral two-sentence summary of the last session (the service's
  summariser: the same model, the course generator's summary prompt);
  ``transcript``: the earlier sessions' turns, re-sent within ``max_context_tokens``
  (oldest dropped first);
  ``none``: every session starts cold.
  The memory of session n − 1 is written in session n's job, so session n − 1 does not
  depend on K: raising K reruns only the new sessions.
- **The patient's state** (``PatientState``): what was agreed at the end of the last
  session (a transparent detector: the therapist's closing sentence that sets homework),
  whether the homework was done (a Bernoulli draw from a per-profile adherence trait,
  seeded), the mood's drift (a seeded walk, nudged up by homework done) and a life event
  from the profile's own triggers. The patient's system prompt states it.

Nothing here depends on the model or the condition: every therapist meets the same patient
week by week, so conditions stay paired within a patient and session.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from cbtflow import prompts
from cbtflow.dialogue import THERAPIST, Party, Session, render_transcript, speaker_messages, tidy_turn
from cbtflow.llm import Client
from cbtflow.llm.sampling import with_defaults
from cbtflow.seeds import derive_seed

MEMORY_MODES = ("notes", "summary", "transcript", "none")
# The prompt (resources/prompts/<name>.j2) that writes each mode's memory; the others call nothing.
MEMORY_PROMPTS = {"notes": "therapist_notes", "summary": "course_summary"}
MOOD_WORDS = {-2: "much worse", -1: "a bit worse", 0: "about the same", 1: "a bit better", 2: "noticeably better"}
# A therapist sentence that sets homework or a plan for the week (the patient's "what was agreed").
AGREEMENT = re.compile(
    r"\b(homework|before (we|our) (meet|next)|between (now and )?(the )?next (session|week|time)|this (coming )?week|"
    r"over the (next|coming) (few days|week)|(would|could) you (try|keep|write|notice|practi[cs]e)|"
    r"i'?d like you to|try to|keep a|write down)\b",
    re.IGNORECASE,
)
# The therapist referring back to the last session or its homework (the continuity detector).
BACK_REFERENCE = re.compile(
    r"\b(last (time|session|week)|since (we last|our last|last)|you mentioned|we (talked|spoke|discussed|agreed)|"
    r"how did (the|your) (homework|diary|record|practice|plan|task|exercise)|did you (get a chance|manage|try)|"
    r"picking up (where|from)|the (homework|task|exercise|plan) (we|you))\b",
    re.IGNORECASE,
)
DETECTOR = "heuristic: back-reference phrases and reuse of the agreed homework's words (cbtflow.simulate.course)"
_WORD = re.compile(r"[a-z]{5,}")
_COMMON = frozenset(
    "about after again before could every going maybe might other really should session sessions something "
    "their there these thing things think those today would week weeks where which while write".split()
)


def profile_number(profile: dict[str, Any]) -> int:
    """A profile's seed index: from its content hash, so it does not move with list order."""
    return int(str(profile["hash"])[:8], 16)


def adherence_trait(profile: dict[str, Any]) -> float:
    """The patient's chance of doing an agreed homework, in [0.2, 0.9]: a trait of the
    profile, the same under every therapist and seed."""
    return round(random.Random(derive_seed(0, "course.adherence", profile_number(profile))).uniform(0.2, 0.9), 4)


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]


def agreed_homework(turns: Sequence[dict[str, Any]]) -> str | None:
    """What the therapist asked the client to do before next time: the last therapist
    sentence that sets homework or a plan (a heuristic detector, resources-free and
    transparent), or None when the session set none."""
    for turn in reversed([t for t in turns if t["role"] == THERAPIST]):
        for sentence in reversed(_sentences(turn["text"])):
            if AGREEMENT.search(sentence):
                return sentence
    return None


@dataclass(frozen=True)
class PatientState:
    """The simulated patient arriving at session ``session``."""

    session: int
    adherence: float
    agreed: str | None  # what the last session agreed (None: no homework was set)
    homework_done: bool | None  # None when nothing was agreed
    mood_level: int  # cumulative drift since session 1, -2..2
    life_event: str | None

    def as_document(self) -> dict[str, Any]:
        return {**asdict(self), "mood": MOOD_WORDS[self.mood_level]}


def next_state(profile: dict[str, Any], previous: dict[str, Any] | None, session: int, seed: int) -> PatientState:
    """The patient's state at ``session`` (≥ 2), from the previous session's document.

    One seeded draw per (seed, profile, session) decides the week: homework done with the
    profile's adherence probability, a mood step (−1, 0 or +1, more often up after homework
    done) and, half the time, one of the profile's triggers as the week's life event."""
    rng = random.Random(derive_seed(seed, "course.week", profile_number(profile), session))
    adherence = adherence_trait(profile)
    before = (previous or {}).get("patient_state") or {}
    agreed = agreed_homework((previous or {}).get("turns", []))
    done = None if agreed is None else rng.random() < adherence
    up = 0.45 if done else 0.25  # relative weights of a better, a same and a worse week
    step = rng.choices([1, 0, -1], weights=[up, 0.5, 0.75 - up])[0]
    mood = max(-2, min(2, int(before.get("mood_level", 0)) + step))
    triggers = list(profile.get("triggers") or [])
    event = rng.choice(triggers) if triggers and rng.random() < 0.5 else None
    return PatientState(session, adherence, agreed, done, mood, event)


def patient_brief(state: PatientState) -> str:
    """What the patient knows about the course, for its system prompt (``summary`` slot)."""
    lines = [f"This is session {state.session} of your therapy."]
    if state.agreed is None:
        lines.append("Last session ended without any homework agreed.")
    else:
        lines.append(f'At the end of last session your therapist said: "{state.agreed}"')
        lines.append(
            "You did the homework, and can say how it went."
            if state.homework_done
            else "You did not get round to the homework this week, and feel a little awkward about it."
        )
    lines.append(f"Since last session your mood has been {MOOD_WORDS[state.mood_level]}.")
    if state.life_event:
        lines.append(f"This week something hard happened: {state.life_event}.")
    return " ".join(lines)


def therapist_memory_prompt(mode: str, memory: str | None, previous_session: int) -> str:
    """The block the therapist's system prompt gains at a later session (notes, summary)."""
    if mode in ("none", "transcript") or not memory:
        return ""
    what = "Your own notes" if mode == "notes" else "A summary"
    return f"\n\n{what} from session {previous_session} with this client:\n{memory}"


def write_memory(
    client: Client,
    therapist: Party,
    mode: str,
    previous: Sequence[dict[str, Any]],
    therapist_system: str,
    template: str | None,
    seeds: Sequence[int],
) -> list[str | None]:
    """The memory each course takes from its last session: one batched call for ``notes``
    (the therapist's own view of the session, then the request in ``template``,
    resources/prompts/therapist_notes.j2) or ``summary`` (``template`` is the course
    generator's summary prompt, on the neutral transcript); nothing for the other modes.
    A session lost in simulation leaves no memory."""
    if mode not in ("notes", "summary"):
        return [None] * len(previous)
    live = [i for i, doc in enumerate(previous) if not doc.get("failure")]
    if mode == "notes":
        requests = [
            speaker_messages(previous[i]["turns"], THERAPIST, previous[i].get("therapist_system", therapist_system))
            + [{"role": "user", "content": prompts.render(template)}]
            for i in live
        ]
    else:
        requests = [
            [{"role": "user", "content": prompts.render(template, transcript=render_transcript(previous[i]["turns"]))}]
            for i in live
        ]
    replies = (
        client.chat_batch(therapist.endpoint, requests, therapist.sampling, [seeds[i] for i in live]) if live else []
    )
    out: list[str | None] = [None] * len(previous)
    limit = int(with_defaults(therapist.sampling)["max_tokens"])
    for i, reply in zip(live, replies):  # a note cut by max_tokens ends at its last full sentence
        text, _ = tidy_turn(str(reply.get("text", "")), reply.get("completion_tokens", 0) >= limit > 0)
        out[i] = text or None
    return out


def history_turns(earlier: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The earlier sessions' turns, in order, for the ``transcript`` memory: each marked with
    the session it came from, so the view and the viewer can tell them apart."""
    turns = []
    for doc in earlier:
        number = int(doc.get("session", 1))
        turns.extend({"role": t["role"], "text": t["text"], "from_session": number} for t in doc["turns"])
    return turns


def continuity(agreed: str | None, turns: Sequence[dict[str, Any]], opening: int = 3) -> dict[str, Any]:
    """A transparent continuity detector (a heuristic, named as one): whether the therapist's
    first ``opening`` turns refer back to the last session, and which content words of the
    agreed homework they reuse."""
    opening_text = " ".join([t["text"] for t in turns if t["role"] == THERAPIST][:opening])
    words = sorted(set(_WORD.findall((agreed or "").lower())) - _COMMON)
    reused = [w for w in words if re.search(rf"\b{w}", opening_text, re.IGNORECASE)]
    return {
        "detector": DETECTOR,
        "refers_back": bool(BACK_REFERENCE.search(opening_text)),
        "homework_words": words,
        "homework_words_reused": reused,
        "refers_to_homework": bool(reused),
    }


def course_sessions(
    profiles: Sequence[dict[str, Any]],
    earlier: Sequence[Sequence[dict[str, Any]]],
    therapist_system: str,
    patient_template: str,
    mode: str,
    memories: Sequence[str | None],
    session: int,
    seed: int,
) -> tuple[list[Session], list[PatientState]]:
    """Session ``session`` of every profile's course: the therapist's system prompt with its
    memory, the patient's with its state, and (``transcript`` memory) the earlier turns.
    ``earlier[i]`` holds profile i's sessions 1..n−1 in order."""
    sessions, states = [], []
    for index, (profile, docs, memory) in enumerate(zip(profiles, earlier, memories)):
        state = next_state(profile, docs[-1] if docs else None, session, seed)
        history = history_turns(docs) if mode == "transcript" else []
        sessions.append(
            Session(
                therapist_system=therapist_system + therapist_memory_prompt(mode, memory, session - 1),
                patient_system=prompts.render(patient_template, p=profile, summary=patient_brief(state)),
                seed=derive_seed(seed, "simulate.session", index, session),
                history=history,
            )
        )
        states.append(state)
    return sessions, states
