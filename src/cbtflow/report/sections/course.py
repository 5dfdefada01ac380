"""The course: score by session, the effect per session, the trajectory model, course
items and what only the transcripts show (continuity, homework, context). Only for runs
with ``simulation.sessions`` > 1."""

from __future__ import annotations

from typing import Any

from cbtflow.report.format import ci, fmt, fmt_df
from cbtflow.report.inputs import ReportInputs
from cbtflow.report.sections.tests_tables import mean_ci_text, model_label
from cbtflow.report.tables import markdown_table


def _by_session_table(by_session: dict[str, Any], sessions: list[int]) -> list[str]:
    rows = [
        [model, condition, *[mean_ci_text(cells[str(s)]) if str(s) in cells else "—" for s in sessions]]
        for model, per in by_session.items()
        for condition, cells in per.items()
    ]
    return markdown_table(["model", "condition", *[f"session {s}" for s in sessions]], rows) + [""]


def _effects(block: dict[str, Any], sessions: list[int]) -> list[str]:
    models = sorted({m for per in block.values() for m in per}, key=lambda m: (m == "_pooled", m))
    rows = []
    for model in models:
        cells = []
        for s in sessions:
            e = block.get(str(s), {}).get(model) or {}
            cells.append(f"{fmt(e.get('estimate'))} {ci(e.get('ci95'))}" if e.get("estimate") is not None else "—")
        rows.append([model_label(model), *cells])
    return markdown_table(["model", *[f"session {s}" for s in sessions]], rows) + [""]


def _trajectory(block: dict[str, Any]) -> list[str]:
    if not isinstance(block, dict) or block.get("ran") is False:
        return [f"Trajectory model not run: {block.get('reason', '')}", ""]
    rows = []
    for model, fit in block.items():
        if not fit.get("ran"):
            rows.append([model, "not run: " + fit.get("reason", ""), "", ""])
            continue
        mean, trend = fit["mean_over_sessions"], fit["trend_per_session"]
        rows.append(
            [
                model,
                f"{fmt(mean['estimate'])} {ci(mean['ci95'])}, df {fmt_df(mean['df'])}, p {fmt(mean['p'])}",
                f"{fmt(trend['estimate'])} {ci(trend['ci95'])}, df {fmt_df(trend['df'])}, p {fmt(trend['p'])}",
                fit["formula"],
            ]
        )
    return markdown_table(["model", "mean over sessions [95% CI]", "trend per session [95% CI]", "model"], rows) + [""]


def _shares(block: dict[str, Any], sessions: list[int]) -> list[str]:
    rows = [
        [
            model,
            condition,
            *[
                f"{fmt(cells[str(s)]['share'], 2)} (n {cells[str(s)]['n']})" if str(s) in cells else "—"
                for s in sessions
            ],
        ]
        for model, per in block.items()
        for condition, cells in per.items()
    ]
    return markdown_table(["model", "condition", *[f"session {s}" for s in sessions]], rows) + [""]


def section(inputs: ReportInputs) -> list[str]:
    judge = inputs.stats["judges"].get(inputs.primary_judge) or {}
    course = judge.get("course") or {}
    if not course.get("ran"):
        return []
    sessions = course["sessions"]
    later = [s for s in sessions if s > 1]
    lines = [
        "## The course: sessions per patient",
        "",
        f"Each simulated patient met each therapist for {len(sessions)} sessions. The course-level primary, used "
        f"for the headline above, is {course['primary']}. Judge: {inputs.primary_judge}; unit: {course['unit']}.",
        "",
        "### Score by session",
        "",
        *_by_session_table(course["by_session"], sessions),
        "### cbt − instruct by session",
        "",
        "Each session's estimate [95% CI], computed as the headline (per model, and pooled over each model's "
        "own difference).",
        "",
    ]
    effects = course["effect_by_session"]
    lines += _effects(effects, sessions) if effects.get("ran") is not False else [f"Not run: {effects['reason']}", ""]
    lines += [
        "### Trajectory model",
        "",
        "Each model's (patient, seed, session) differences with session as a fixed effect and the headline's "
        "variance sources (patients, adapter runs) plus the course; REML, Satterthwaite df.",
        "",
        *_trajectory(course["trajectory"]),
        "### Course items",
        "",
        f"Rule: {course['course_items']['rule']}.",
        "",
        *markdown_table(
            ["session", "items scored", "items not applicable"],
            [
                [
                    s,
                    course["course_items"]["scored_by_session"].get(str(s), 0),
                    course["course_items"]["not_applicable_by_session"].get(str(s), 0),
                ]
                for s in sessions
            ],
        ),
        "",
    ]
    for item, by_session in course["course_items"]["by_item"].items():
        lines += [
            f"**{item}** (from session {min(later) if later else '—'})",
            "",
            *_by_session_table(by_session, later),
        ]
    readings = inputs.stats.get("course") or {}
    if readings.get("ran"):
        lines += [
            "### Continuity, homework and context",
            "",
            f"*{readings['continuity']['label']}.* Share of later sessions whose therapist opening refers back "
            "to the last session:",
            "",
            *_shares(readings["continuity"]["refers_back"], later),
            "Share of later sessions after agreed homework whose opening reuses the homework's words:",
            "",
            *_shares(readings["continuity"]["refers_to_homework"], later),
            "Share of agreed homework the simulated patient did (drawn from the profile's seeded adherence trait):",
            "",
            *_shares(readings["homework_done"], later),
            *markdown_table(
                ["session", "therapist context tokens, mean [95% CI]"],
                [[s, mean_ci_text(c)] for s, c in readings["context_tokens_by_session"].items()],
            ),
            "",
        ]
        relation = readings.get("score_vs_context_tokens") or {}
        if relation.get("ran", True) and "spearman" in relation:
            lines += [
                f"Score against the therapist's context across the course: Spearman ρ = {fmt(relation['spearman'])} "
                f"over {relation['n']} transcripts (descriptive; transcripts of one patient are not independent).",
                "",
            ]
        for measure, by_session in (readings.get("self_reports_by_session") or {}).items():
            lines += [f"**Simulated self-report {measure} by session** (not a patient outcome)", ""]
            lines += _by_session_table(by_session, sessions)
    return lines
