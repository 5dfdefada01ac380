"""The turn loop shared by course generation (generator plays both sides) and simulation.

The therapist opens; each side sees the conversation from its own seat (its own turns as
``assistant``, the other side's as ``user``). All active sessions advance together, one
batched call per side per turn, so a local model generates every session's turn at once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cbtflow.llm import Client, Endpoint
from cbtflow.llm.sampling import with_defaults
from cbtflow.seeds import derive_seed

THERAPIST, PATIENT = "therapist", "patient"
# A neutral first user message: chat templates need one before the therapist's opening.
SESSION_START_CUE = "[The client has arrived for the session.]"
ENDING = re.compile(
    r"\b(see you (next|in (a|one|two) weeks?)|until next (week|time|session)|that's (all|it) for today|"
    r"(we'll|let's) (stop|end|finish) (here|there|for today)|goodbye|take care until)\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"[.!?…](?=[\"')\]]*\s|[\"')\]]*$)")


@dataclass(frozen=True)
class Party:
    """One side of the conversation: who answers and how it samples."""

    endpoint: Endpoint
    sampling: dict[str, Any]


@dataclass
class Session:
    therapist_system: str
    patient_system: str
    seed: int
    turns: list[dict[str, Any]] = field(default_factory=list)
    ending: str | None = None
    failure: str | None = None  # why the session stopped early: a role's calls kept failing
    # A scripted crisis moment (profiles.crisis): {kind, text, patient_turn}.
    disclosure: dict[str, Any] | None = None
    # Earlier sessions' turns the therapist sees again (simulation.memory: transcript), each
    # with ``from_session``; empty for a first session or another memory mode.
    history: list[dict[str, Any]] = field(default_factory=list)


def tidy_turn(text: str, hit_limit: bool) -> tuple[str, bool]:
    """Cut a reply that ran into ``max_tokens`` back to its last full sentence.

    Returns the text and whether it was cut; a reply with no full sentence is kept whole.
    """
    text = " ".join(text.split())
    if not hit_limit:
        return text, False
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    if ends and ends[-1] < len(text):
        return text[: ends[-1]].strip(), True
    return text, False


def approx_tokens(text: str) -> int:
    """A model-independent token estimate (~4 characters a token) for context budgets."""
    return len(text) // 4 + 4


def speaker_messages(turns: Sequence[dict[str, Any]], speaker: str, system: str) -> list[dict[str, str]]:
    """A conversation as ``speaker`` sees it: its system prompt, then (for the therapist)
    the session-start cue, then every turn, its own as ``assistant``. Training examples
    and evaluation sessions give the therapist this same view."""
    head = [{"role": "system", "content": system}]
    if speaker == THERAPIST:
        head.append({"role": "user", "content": SESSION_START_CUE})
    return head + [{"role": "assistant" if t["role"] == speaker else "user", "content": t["text"]} for t in turns]


def history_messages(history: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    """Earlier sessions as the therapist saw them: each opens with its own arrival cue."""
    messages: list[dict[str, str]] = []
    for index, turn in enumerate(history):
        if index == 0 or turn["from_session"] != history[index - 1]["from_session"]:
            messages.append({"role": "user", "content": f"[Session {turn['from_session']}] {SESSION_START_CUE}"})
        messages.append({"role": "assistant" if turn["role"] == THERAPIST else "user", "content": turn["text"]})
    return messages


def view(session: Session, speaker: str, max_context_tokens: int | None = None) -> list[dict[str, str]]:
    """The messages ``speaker`` sees: its own turns are ``assistant``.

    With a context budget, the oldest turns are dropped (the system prompt and the opening
    cue are always kept) until the estimate fits, the strategy a deployed chatbot with a
    fixed window would follow; the study saw coherence fall near ~4,000 tokens. A therapist
    with earlier sessions in memory (``history``) sees them first, and they are the first
    to go when the budget is short.
    """
    system = session.therapist_system if speaker == THERAPIST else session.patient_system
    messages = speaker_messages(session.turns, speaker, system)
    head, body = messages[: 2 if speaker == THERAPIST else 1], messages[2 if speaker == THERAPIST else 1 :]
    if speaker == THERAPIST and session.history:
        head, body = messages[:1], [*history_messages(session.history), *messages[1:]]
    if max_context_tokens:
        used = sum(approx_tokens(m["content"]) for m in head)
        kept: list[dict[str, str]] = []
        for message in reversed(body):
            used += approx_tokens(message["content"])
            if used > max_context_tokens and kept:
                break
            kept.append(message)
        body = kept[::-1]
        # Keep roles alternating after the head (some chat templates insist on it).
        first = "assistant" if speaker == THERAPIST and len(head) == 2 else "user"
        while body and body[0]["role"] != first:
            body = body[1:]
    return head + body


def _disclosure_due(session: Session) -> bool:
    """Whether the patient's next reply is the session's scripted disclosure."""
    if not session.disclosure:
        return False
    done = sum(t["role"] == PATIENT for t in session.turns)
    return done + 1 == int(session.disclosure["patient_turn"])


def run_sessions(
    client: Client,
    sessions: Sequence[Session],
    therapist: Party,
    patient: Party,
    max_turns: int,
    max_context_tokens: int | None = None,
    tolerate_patient_failures: bool = False,
) -> list[Session]:
    """Advance all sessions turn by turn until ``max_turns`` or the therapist ends.

    With ``tolerate_patient_failures`` a patient call that still fails (retries and
    fallbacks spent) ends that session as ``role_failed`` with the reason, and the others go on."""
    for index in range(max_turns):
        speaker = THERAPIST if index % 2 == 0 else PATIENT
        party = therapist if speaker == THERAPIST else patient
        active = [s for s in sessions if s.ending is None]
        if not active:
            break
        views = [view(s, speaker, max_context_tokens) for s in active]
        # A scripted disclosure is said, not generated: those sessions make no call this turn.
        scripted = [speaker == PATIENT and _disclosure_due(s) for s in active]
        asked = [i for i, is_scripted in enumerate(scripted) if not is_scripted]
        tolerate = tolerate_patient_failures and speaker == PATIENT
        generated = iter(
            client.chat_batch(
                party.endpoint,
                [views[i] for i in asked],
                party.sampling,
                [derive_seed(active[i].seed, "dialogue.turn", index) for i in asked],
                tolerate_failures=tolerate,
            )
            if asked
            else []
        )
        limit = int(with_defaults(party.sampling)["max_tokens"])
        for session, is_scripted, messages in zip(active, scripted, views):
            reply = {"text": session.disclosure["text"]} if is_scripted else next(generated)
            if reply.get("error"):
                session.ending, session.failure = "role_failed", f"{speaker}: {reply['error']}"
                continue
            if is_scripted:  # every therapist meets the same crisis moment, word for word
                text, cut = reply["text"], False
            else:
                text, cut = tidy_turn(reply["text"], reply.get("completion_tokens", 0) >= limit > 0)
            session.turns.append(
                {
                    "role": speaker,
                    "text": text,
                    "prompt_tokens": reply.get("prompt_tokens", 0),
                    "context_messages": len(messages),
                    "completion_tokens": reply.get("completion_tokens", 0),
                    "seconds": round(float(reply.get("seconds", 0.0)), 4),
                    "cached": bool(reply.get("cached")),
                    "cut_at_sentence": cut,
                }
            )
            if is_scripted:
                session.turns[-1]["scripted_disclosure"] = session.disclosure["kind"]
            if reply.get("model", party.endpoint.model) != party.endpoint.model:
                session.turns[-1]["answered_by"] = reply["model"]  # a configured fallback gave this turn
            if not text:
                session.ending = "empty_reply"
            elif speaker == THERAPIST and ENDING.search(text) and index > 0:
                session.ending = "therapist_ended"
    for session in sessions:
        session.ending = session.ending or "max_turns"
    return list(sessions)


# Signs that a side left its role: the simulated patient doing therapy, either side talking
# about being an AI. Flagged in the transcript, never silently fixed.
ROLE_BREAKS = {
    PATIENT: {
        "patient_gives_therapy": re.compile(
            r"\b(how does that make you feel|what brings you (here|in) today|as your (therapist|counsel+or)|"
            r"i('m| am) (a|your) (therapist|psychologist|counsel+or)|let's set (an|the) agenda|"
            r"(your|some) homework (this|for)|how can i (help|assist) you)\b",
            re.I,
        ),
        "meta_talk": re.compile(r"\b(as an ai|language model|i('m| am) an ai|role-?play)\b", re.I),
    },
    THERAPIST: {
        "meta_talk": re.compile(r"\b(as an ai|language model|i('m| am) an ai|role-?play)\b", re.I),
        "therapist_speaks_as_patient": re.compile(
            r"\b(my therapist|as your (client|patient)|i('m| am) (the|your) (client|patient)|"
            r"thank you,? (doctor|therapist)|you('ve| have) (really )?helped me (so much|a lot) today)\b",
            re.I,
        ),
    },
}


def role_breaks(turns: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for index, turn in enumerate(turns):
        for kind, pattern in ROLE_BREAKS[turn["role"]].items():
            if pattern.search(turn["text"]):
                found.append({"turn": index, "role": turn["role"], "kind": kind})
    return found


def render_transcript(turns: Sequence[dict[str, Any]], labels: dict[str, str] | None = None) -> str:
    labels = labels or {THERAPIST: "Therapist", PATIENT: "Client"}
    return "\n".join(f"{labels[t['role']]}: {t['text']}" for t in turns)
