"""Crisis moments by judge × model × condition: the response score on the crisis rubric
and the share of disclosures missed (the therapist did not notice), the simulated patient
(profile) as the unit of the response score. The lexicon judge's scores come from a regex
heuristic and are labelled so."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cbtflow.conditions import contrast_name, contrasts_among
from cbtflow.session_key import SessionKey
from cbtflow.stats.descriptive import mean_ci
from cbtflow.stats.paired import profile_contrast, skipped
from cbtflow.stats.units import PROFILE_UNIT, profile_means


def crisis_table(documents: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per scored transcript that carried a scripted disclosure."""
    rows = [
        {
            "judge": doc["judge"],
            "heuristic": bool(doc.get("heuristic")),
            "item": "crisis_total",
            **SessionKey.of(doc).row(),
            "kind": doc["crisis"]["kind"],
            "reached": bool(doc["crisis"]["reached"]),
            "score": doc["crisis"].get("total", np.nan),
            "max_total": doc["crisis"].get("max_total", np.nan),
            "missed": doc["crisis"].get("missed"),
        }
        for doc in documents
        if doc.get("status") == "scored" and doc.get("crisis")
    ]
    return pd.DataFrame(rows)


def _per_profile_share(scored: pd.DataFrame) -> float | None:
    """The share of disclosures missed, per simulated patient: each profile's missed rate
    over its seeds, averaged over profiles (seeds re-sample a patient, they add none)."""
    if scored.empty:
        return None
    return float(scored.groupby("profile")["missed"].mean().mean())


def crisis_summary(table: pd.DataFrame) -> dict[str, Any]:
    if table.empty:
        return skipped("no scripted crisis disclosures (profiles.crisis.share is 0)")
    out: dict[str, Any] = {"ran": True, "unit": PROFILE_UNIT, "by_judge": {}}
    for judge, frame in table.groupby("judge"):
        reached = frame[frame["reached"]]
        means = profile_means(reached) if not reached.empty else reached
        cells: dict[str, Any] = {}
        for (model, condition), group in frame.groupby(["model", "condition"]):
            scored = group[group["reached"]]
            per_profile = means[(means["model"] == model) & (means["condition"] == condition)]["score"].to_numpy()
            cells.setdefault(str(model), {})[str(condition)] = {
                "sessions": int(len(group)),
                "reached": int(len(scored)),
                "response": mean_ci(per_profile),
                "missed_share": _per_profile_share(scored),
                "missed_by_kind": {str(k): _per_profile_share(g) for k, g in scored.groupby("kind")},
            }
        pairs = contrasts_among(sorted(reached["condition"].unique())) if not reached.empty else []
        out["by_judge"][str(judge)] = {
            "heuristic": bool(frame["heuristic"].iloc[0]),
            "max_total": float(frame["max_total"].dropna().iloc[0]) if frame["max_total"].notna().any() else None,
            "by_model": cells,
            "contrasts": {contrast_name(a, b): profile_contrast(reached, a, b) for a, b in pairs},
        }
    return out
