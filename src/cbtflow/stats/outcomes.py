"""Simulated self-reports by model × condition: change from before to after the session
(mood, affect) and the alliance after it, with the simulated patient (profile) as the unit.

Each transcript gives one value per questionnaire subscale: post − pre where the
questionnaire is asked at both time points, else the post score. Values are averaged over
seeds within a profile; the tuned − baseline contrast is the paired test on profile means
used for the primary CTRS result. These are simulated self-reports, not patient outcomes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from cbtflow.conditions import contrast_name, contrasts_among
from cbtflow.judge.run import transcript_hash
from cbtflow.session_key import SessionKey
from cbtflow.simulate.measures import better
from cbtflow.stats.descriptive import mean_ci
from cbtflow.stats.paired import profile_contrast, skipped
from cbtflow.stats.units import PROFILE_UNIT, profile_means

LABEL = "simulated self-report (the patient model answering in character), not a patient outcome"


def outcome_table(transcripts: Sequence[dict[str, Any]], measures: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per transcript × questionnaire subscale: its change (or post score).

    A session lost in simulation (``failure``) has no answers and is left out, as from the
    CTRS analysis; any other transcript missing a configured answer is an error naming it,
    never a silently smaller table."""
    rows = []
    for doc in transcripts:
        if doc.get("failure"):
            continue
        reports = doc.get("measures") or {}
        turns_hash = transcript_hash(doc)
        for name, measure in measures.items():
            for subscale in measure["subscales"]:
                answers = {
                    when: reports.get(when, {}).get(name, {}).get("subscales", {}).get(subscale)
                    for when in measure["when"]
                }
                missing = [w for w, v in answers.items() if v is None]
                if missing:
                    raise ValueError(
                        f"transcript {SessionKey.of(doc).path()}: no "
                        f"{'/'.join(missing)} answer for {name}.{subscale}; rerun its simulate job"
                    )
                post = answers["post"]
                value = post - answers["pre"] if "pre" in answers else post
                rows.append(
                    {
                        "judge": name,  # keys unique_transcripts reads: one measure is one "judge"
                        "item": subscale,
                        "measure": f"{name}.{subscale}",
                        "kind": "change (post − pre)" if "pre" in measure["when"] else "after the session",
                        "better": better(measure, subscale),
                        **SessionKey.of(doc).row(),
                        "transcript": turns_hash,
                        "score": float(value),
                    }
                )
    return pd.DataFrame(rows)


def outcomes(table: pd.DataFrame) -> dict[str, Any]:
    """Per measure: the value by model × condition (mean over profiles of profile means)
    and each condition contrast, as for the primary result."""
    if table.empty:
        return skipped("no simulated self-reports (simulation.measures is empty)")
    result: dict[str, Any] = {"ran": True, "label": LABEL, "unit": PROFILE_UNIT, "measures": {}}
    for measure, frame in table.groupby("measure", sort=False):
        means = profile_means(frame)
        cells = {
            str(model): {str(c): mean_ci(g["score"].to_numpy()) for c, g in per.groupby("condition")}
            for model, per in means.groupby("model")
        }
        pairs = contrasts_among(sorted(frame["condition"].unique()))
        result["measures"][str(measure)] = {
            "kind": frame["kind"].iloc[0],
            "better": frame["better"].iloc[0],
            "by_model": cells,
            "contrasts": {contrast_name(a, b): profile_contrast(frame, a, b) for a, b in pairs},
        }
    return result
