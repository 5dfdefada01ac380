"""``report.md`` from the statistics and the run logs, section by section (report/sections).

Every number in the report comes from ``stats.json``; the report only formats it. A
heuristic judge is labelled a heuristic wherever it appears.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cbtflow.io import write_text_atomic
from cbtflow.report.inputs import ReportInputs
from cbtflow.report.sections import SECTIONS


def write_report(
    path: str | Path,
    *,
    stats: dict[str, Any],
    primary_judge: str,
    figures: dict[str, str],
    usage: dict[str, dict[str, Any]],
    train_logs: dict[str, dict[str, Any]],
    config_summary: str,
    cards: dict[str, dict[str, Any]] | None = None,
    run_perturbations: dict[str, dict[str, Any]] | None = None,
) -> None:
    """``cards``: the judge cards by judge; a failed primary card is the report's first line.
    ``run_perturbations``: each judge's perturbations on this run's transcripts."""
    inputs = ReportInputs(
        stats, primary_judge, figures, usage, train_logs, config_summary, cards or {}, run_perturbations or {}
    )
    write_text_atomic(path, "\n".join(line for section in SECTIONS for line in section.section(inputs)))
