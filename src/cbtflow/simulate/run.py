"""Simulated therapy sessions: a therapist model (instruct or CBT-tuned) and a patient LLM.

One job handles all eval profiles of one (model, condition, seed): the therapist loads
once and every session's turn is generated in the same batch. Conditions: ``instruct``
(base, short neutral prompt, as in the study), ``cbt`` (base + our adapter, same prompt),
``prompted`` (base with a detailed CBT prompt: the strong baseline the study lacked) and
``external`` (a given checkpoint, e.g. the study's released model, same short prompt).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cbtflow import prompts
from cbtflow.dialogue import Party, Session, role_breaks, run_sessions
from cbtflow.llm import Client
from cbtflow.llm.usage import runs_as_labels
from cbtflow.seeds import derive_seed
from cbtflow.session_key import SessionKey
from cbtflow.simulate.course import PatientState, continuity


def simulate(
    client: Client,
    profiles: Sequence[dict[str, Any]],
    therapist: Party,
    patient: Party,
    therapist_template: str,
    patient_template: str,
    max_turns: int,
    seed: int,
    max_context_tokens: int | None = None,
    tolerate_patient_failures: bool = False,
    sessions: Sequence[Session] | None = None,
) -> list[Session]:
    """Every profile's session, batched. A first session is built from the templates; a
    later session of a course comes ready, with its memory and patient state
    (``cbtflow.simulate.course.course_sessions``)."""
    if sessions is not None:
        return run_sessions(
            client, sessions, therapist, patient, max_turns, max_context_tokens, tolerate_patient_failures
        )
    system = prompts.render(therapist_template)
    sessions = [
        Session(
            therapist_system=system,
            patient_system=prompts.render(patient_template, p=p, summary=""),
            seed=derive_seed(seed, "simulate.session", index),
            disclosure=p.get("crisis"),
        )
        for index, p in enumerate(profiles)
    ]
    return run_sessions(client, sessions, therapist, patient, max_turns, max_context_tokens, tolerate_patient_failures)


def transcript_document(
    profile: dict[str, Any],
    session: Session,
    *,
    model: str,
    condition: str,
    seed: int,
    therapist: Party,
    patient: Party,
    template_hashes: dict[str, str],
    measures: dict[str, Any] | None = None,
    course: dict[str, Any] | None = None,
    runs_as: Mapping[str, Mapping[str, int]] | None = None,
) -> dict[str, Any]:
    """The transcript file. ``course`` (sessions of a course after the first): the session
    number, the memory the therapist was given, the patient's state and the continuity
    detector's reading, all recorded beside the turns (``course_record``). ``runs_as`` (the
    job's ``UsageLog.runs_as``): how each local party's replies were computed, beside the
    declared precision in its identity."""
    session_number = int((course or {}).get("session", 1))

    def party(p: Party) -> dict[str, Any]:
        ran = runs_as_labels(runs_as or {}, p.endpoint.model)
        return {**p.endpoint.identity(), "sampling": p.sampling, **({"runs_as": ran} if ran else {})}

    return {
        "kind": "transcript",
        "profile_hash": profile["hash"],
        "risk_level": profile["risk_level"],
        "eval_split": profile.get("eval_split"),
        "style": profile.get("style"),
        "crisis_kind": (profile.get("crisis") or {}).get("kind"),
        **SessionKey(model, condition, seed, profile["id"], session_number).fields(),
        "therapist": party(therapist),
        "patient": party(patient),
        "template_hashes": template_hashes,
        "ending": session.ending,
        "turns": session.turns,
        "role_breaks": role_breaks(session.turns),
        "failure": session.failure,
        "n_tokens": sum(t["completion_tokens"] for t in session.turns),
        # Simulated self-reports in character (cbtflow.simulate.measures), when configured.
        **({"measures": measures} if measures is not None else {}),
        **({k: v for k, v in course.items() if k != "session"} if course else {}),
    }


def course_record(
    session: Session, state: PatientState, mode: str, memory: str | None, written_after: int
) -> dict[str, Any]:
    """What a later session of a course records: its number, the therapist's memory (mode,
    text, the session it was written after; the earlier turns it re-read, counted), the
    patient's state and the continuity detector's reading of the therapist's opening."""
    return {
        "session": state.session,
        "therapist_system": session.therapist_system,
        "memory": {
            "mode": mode,
            "written_after_session": written_after,
            "text": memory,
            "history_turns": len(session.history),
        },
        "patient_state": state.as_document(),
        "continuity": continuity(state.agreed, session.turns),
    }
