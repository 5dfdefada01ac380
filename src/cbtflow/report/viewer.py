"""The transcript viewer: one static HTML page that opens from disk, with no server and
no network (``results/report/viewer/index.html``).

Researchers decide whether to trust a score by reading the sessions behind it. The page
embeds the transcripts and every judge's score documents, the same files the report rule
reads, as one JSON block; its script (``resources/viewer/viewer.js``, plain JavaScript)
filters them, shows per-item scores with their justifications and each flag next to the
turns it names, and puts the conditions for one patient and seed side by side; a course
(``simulation.sessions`` > 1) shows as a timeline, session by session, with the memory the
therapist carried and the patient's week. Its state
is the URL hash, so report.md links to a filtered list or a pair (``viewer_link``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from cbtflow.conditions import ORDER
from cbtflow.io import inline_page, write_text_atomic
from cbtflow.packaged import PAGE_SCRIPTS, RESOURCES
from cbtflow.session_key import SessionKey

VIEWER_DIR = RESOURCES / "viewer"
# Where the page sits relative to report.md (both under results/report/).
VIEWER_FROM_REPORT = "viewer/index.html"


def session_id(doc: dict[str, Any]) -> str:
    """A transcript's id in the page: model/condition/seed/profile (unique in a run)."""
    return SessionKey.of(doc).path()


def _session(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": session_id(doc),
        **SessionKey.of(doc).row(),
        "style": doc.get("style") or "plain",
        "ending": doc.get("ending"),
        "failure": doc.get("failure"),
        # What computed each local party's replies (int4 on cpu), beside the declared precision.
        "runs_as": {r: ", ".join(doc[r]["runs_as"]) for r in ("therapist", "patient") if doc.get(r, {}).get("runs_as")},
        "turns": [
            {"role": t["role"], "text": t["text"], "scripted": t.get("scripted_disclosure")} for t in doc["turns"]
        ],
        "role_breaks": doc.get("role_breaks", []),
        "scores": {},
        # A later session of a course: what the therapist remembered and the patient's week.
        **{k: doc[k] for k in ("memory", "patient_state", "continuity") if doc.get(k)},
    }


def _scores(doc: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of a score document: totals, item scores with their reasons, flags."""
    items = {
        item: {
            k: v[k]
            for k in ("score", "justification", "evidence", "features", "score_token_mass")
            if v.get(k) is not None
        }
        for item, v in (doc.get("items") or {}).items()
    }
    return {
        "status": doc.get("status"),
        "total": doc.get("total"),
        "percent": doc.get("percent"),
        "heuristic": bool(doc.get("heuristic")),
        "items": items,
        "flags": doc.get("flags", []),
        "crisis": doc.get("crisis"),
        "course_items": {
            k: {"score": v["score"], "features": v.get("features")} for k, v in (doc.get("course_items") or {}).items()
        },
        "not_applicable": doc.get("not_applicable") or [],
    }


def viewer_data(
    transcripts: Sequence[dict[str, Any]],
    score_docs: Sequence[dict[str, Any]],
    rubric: dict[str, Any],
    title: str,
    primary_judge: str | None = None,
    cards: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The page's data. Every score document must meet a transcript: one that does not is
    an error naming it, never a silently missing row. ``cards``: the judge cards, shown
    without their per-transcript scores."""
    sessions = {session_id(doc): _session(doc) for doc in transcripts}
    for doc in score_docs:
        key = session_id(doc)
        if key not in sessions:
            raise ValueError(
                f"score document of judge {doc.get('judge')} for {key} has no transcript in the viewer's inputs"
            )
        sessions[key]["scores"][doc["judge"]] = _scores(doc)
    conditions = sorted({s["condition"] for s in sessions.values()}, key=lambda c: ORDER.index(c) if c in ORDER else 99)
    return {
        "title": title,
        "primary_judge": primary_judge,
        "judges": sorted({doc["judge"] for doc in score_docs}),
        "conditions": conditions,
        "items": [{"id": item["id"], "name": item.get("name", item["id"])} for item in rubric["items"]],
        "course_items": [
            {"id": i["id"], "name": i.get("name", i["id"]), "from": i["applies_from_session"]}
            for i in rubric.get("course_items") or []
        ],
        "scale": rubric["scale"],
        "sessions": sorted(sessions.values(), key=lambda s: s["id"]),
        "cards": {card["judge"]: _card(card) for card in cards},
    }


def _card(card: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of a judge card: its summaries and verdicts."""
    return {k: card[k] for k in ("passed", "heuristic", "reference_sets", "perturbations", "verdicts")}


def render_page(data: dict[str, Any]) -> str:
    """The HTML page with its style, script and data inlined (a file:// page can fetch nothing)."""
    return inline_page(VIEWER_DIR, data, data["title"], PAGE_SCRIPTS)


def write_viewer(path: str | Path, data: dict[str, Any]) -> None:
    write_text_atomic(path, render_page(data))


def viewer_link(**state: Any) -> str:
    """A link from report.md into the viewer with the given filters (model, condition, seed,
    profile, style, judge) or a pair (compare="model|seed|profile")."""
    return f"{VIEWER_FROM_REPORT}#{urlencode({k: v for k, v in state.items() if v is not None})}"
