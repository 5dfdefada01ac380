"""The whole ``stats.json`` in one place: the report rule and ``cbtflow stats`` both write
what this builds, so the two files cannot drift apart."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from cbtflow.judge.scores import failures
from cbtflow.stats import analyse, json_safe
from cbtflow.stats.course import course_transcripts
from cbtflow.stats.outcomes import outcome_table, outcomes
from cbtflow.stats.paired import skipped
from cbtflow.stats.safety import crisis_summary, crisis_table


def stats_document(
    scores: pl.DataFrame,
    *,
    threshold: float | None,
    item_order: list[str] | None,
    documents: Sequence[dict[str, Any]] | None,
    transcripts: Sequence[dict[str, Any]] | None,
    measures: dict[str, dict[str, Any]],
    primary_judge: str | None = None,
    families: dict[str, list[str]] | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """Every analysis of the scores, then what only the run's documents hold: the crisis
    responses and failure records (score documents) and the patients' self-reports
    (transcripts), and for a course the continuity, homework and context readings by session
    (``cbtflow.stats.course``). Where those documents are not given, their sections say so instead of
    reporting nothing as if it were an answer."""
    stats = analyse(scores, threshold=threshold, item_order=item_order, primary_judge=primary_judge, families=families)
    if documents is None:
        stats["crisis"] = skipped("the run's score documents were not given (cbtflow stats --results DIR)")
    else:
        stats["crisis"] = crisis_summary(crisis_table(documents))
        stats["failures"] = failures(documents)
    if transcripts is None:
        stats["outcomes"] = skipped("the run's transcripts were not given (cbtflow stats --results DIR)")
        stats["course"] = skipped("the run's transcripts were not given (cbtflow stats --results DIR)")
    else:
        reports = outcome_table(transcripts, measures)
        stats["outcomes"] = outcomes(reports)
        judge = primary_judge or (sorted(stats["judges"]) or [None])[0]
        frame = scores.to_pandas()
        totals = frame[(frame["judge"] == judge) & (frame["item"] == "total") & frame["repeat"].isna()]
        stats["course"] = json_safe(course_transcripts(transcripts, totals, reports))
    if primary_judge:
        stats["primary_judge"] = primary_judge
    return {"kind": "stats", **({"source": source} if source else {}), **stats}
