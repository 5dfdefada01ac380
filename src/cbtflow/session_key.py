"""One simulated session's identity, the unit every stage keys its files and rows by.

A session is one eval patient (profile) meeting one therapist: a model in one condition,
for one seed, at one session of the course (``simulation.sessions``; 1 when there is one).
Transcripts, score documents, failure records, human ratings, the analysis tables, the
crisis and outcome tables and the viewer all carry it; this type is the one place that says
which fields it has and how each of them spells it.
"""

from __future__ import annotations

from typing import Any, NamedTuple


def session_dir(session: int) -> str:
    """Where a session's files sit below ``seed<seed>/``: nothing for session 1 (where a
    one-session run keeps it), ``session<n>/`` for a later session of a course."""
    return f"session{int(session)}/" if int(session) > 1 else ""


class SessionKey(NamedTuple):
    model: str
    condition: str
    seed: int
    profile_id: str
    session: int = 1

    @classmethod
    def of(cls, document: dict[str, Any]) -> SessionKey:
        """The key of a transcript, score document, failure record or rating."""
        return cls(
            document["model"],
            document["condition"],
            int(document["seed"]),
            document["profile_id"],
            int(document.get("session") or 1),
        )

    def fields(self) -> dict[str, Any]:
        """As documents record it (transcripts, score documents, ratings); ``session`` only
        from session 2, so a one-session run's documents are what they were before courses."""
        fields = {"model": self.model, "condition": self.condition, "seed": self.seed, "profile_id": self.profile_id}
        return {**fields, "session": self.session} if self.session > 1 else fields

    def row(self) -> dict[str, Any]:
        """As analysis tables name the columns (the profile is the unit: ``profile``)."""
        return {
            "model": self.model,
            "condition": self.condition,
            "seed": self.seed,
            "profile": self.profile_id,
            "session": self.session,
        }

    def path(self) -> str:
        """``model/condition/seed<seed>/[session<n>/]profile``: unique in a run, as the results
        tree nests it (a first session at the place a one-session run keeps it)."""
        return f"{self.model}/{self.condition}/seed{self.seed}/{session_dir(self.session)}{self.profile_id}"
