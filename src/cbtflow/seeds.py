"""How every sampling seed in a run is derived from the configured ones: one function.

A call's seed is a hash of its stream name, the configured seed it descends from and its
indices (session number, attempt, turn, repeat ...). Hashing, rather than arithmetic such
as ``seed * 7 + number``, keeps streams apart: with arithmetic, seed 1's eighth summary and
seed 2's first drew the same seed. Nothing about a model enters a seed, so an instruct
session is the same for every model that shares its base (the analysis counts such shared
transcripts once, by hash).
"""

from __future__ import annotations

import hashlib

# The streams, by the stage that draws from them; a new stream is a new name here.
STREAMS = (
    "course.session",  # a course session's generation: (session number, attempt)
    "course.summary",  # the summary of a finished course session: (session number,)
    "simulate.session",  # an evaluation session: (profile index,) for session 1, (profile index, session) after
    "course.adherence",  # an eval patient's homework-adherence trait: (profile number,)
    "course.memory",  # the therapist's notes or summary of one eval session: (profile index, session)
    "course.week",  # the week between two eval sessions (homework, mood, life event): (profile number, session)
    "dialogue.turn",  # one turn of a session, from the session's seed: (turn index,)
    "judge.repeat",  # one judging sample of a transcript: (repeat,)
    "judge.reask",  # an API judge's re-ask after an invalid reply: (attempt,)
    "measure.answer",  # a simulated self-report, from the session's seed: (time point, measure)
)


def derive_seed(seed: int, stream: str, *indices: int) -> int:
    """The seed for one draw of ``stream`` below ``seed``: an integer in [0, 2**31) that
    every backend accepts (torch, llama.cpp and the API providers)."""
    if stream not in STREAMS:
        raise ValueError(f"unknown seed stream {stream!r} (known: {', '.join(STREAMS)})")
    key = ":".join([stream, str(int(seed)), *(str(int(i)) for i in indices)])
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") >> 1
