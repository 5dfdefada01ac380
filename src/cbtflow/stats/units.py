"""What counts as independent: the simulated patient (eval profile), not profile × seed.

Seeds re-sample the same simulated patient (and, under ``cbt``, re-train the adapter), so
scores of one profile across seeds are correlated; treating them as separate patients
inflates n and the false-positive rate (13-17% at α = .05 on simulated null data with
profile-varying responses, 3-5% on profile means). Every test reads its rows through the
helpers here, so the unit is decided in one place.
"""

from __future__ import annotations

import pandas as pd

PROFILE_UNIT = "profile (simulated patient); seeds averaged within each profile"
STUDY_UNIT = "profile × seed (as in the study: profile × seed treated as independent)"


def unique_transcripts(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of identical transcripts once (same judge, item, repeat and transcript hash).

    Models on one base share their instruct transcripts (same base, same calls, answered by
    the call cache); pooled analyses, the mixed model and the ICCs must not count them twice.
    A table without the ``transcript`` column (a rater's sheet) is returned unchanged.
    """
    if "transcript" not in frame or frame["transcript"].isna().all():
        return frame
    keyed = frame[frame["transcript"].notna()]
    keys = ["judge", "item", "condition", "transcript"] + (["repeat"] if "repeat" in frame else [])
    deduped = keyed.drop_duplicates(subset=keys, keep="first")
    return pd.concat([deduped, frame[frame["transcript"].isna()]], ignore_index=True)


def baseline_groups(frame: pd.DataFrame, baseline: str) -> dict[str, str]:
    """Model → the model whose ``baseline`` transcripts it shares (itself when it shares none).

    Two models share a baseline when every baseline transcript hash of one equals the other's
    for the same profile and seed; without hashes each model is its own group.
    """
    rows = frame[frame["condition"] == baseline]
    models = sorted(frame["model"].unique())
    if "transcript" not in rows or rows["transcript"].isna().any() or rows.empty:
        return {m: m for m in models}
    signature = {m: tuple(sorted(zip(g["profile"], g["seed"], g["transcript"]))) for m, g in rows.groupby("model")}
    groups: dict[str, str] = {}
    for model in models:
        groups[model] = next(
            (
                other
                for other in models
                if other in signature and model in signature and signature[other] == signature[model]
            ),
            model,
        )
    return groups


def profile_means(frame: pd.DataFrame, by: tuple[str, ...] = ("model", "condition")) -> pd.DataFrame:
    """One score per profile and cell: the mean over seeds (and repeats already averaged)."""
    return frame.groupby([*by, "profile"], as_index=False)["score"].mean()


def subjects(frame: pd.DataFrame, unit: str) -> pd.DataFrame:
    """Rows with a ``subject`` column for repeated-measures tests at the chosen unit.

    ``profile``: seeds averaged, subject = profile. ``profile_seed``: the study's analysis,
    subject = profile × seed.
    """
    if unit == "profile":
        return profile_means(frame).assign(subject=lambda d: d["profile"].astype(str))
    if unit == "profile_seed":
        return frame.assign(subject=frame["profile"].astype(str) + "|s" + frame["seed"].astype(str))
    raise ValueError(f"unknown unit {unit!r} (profile | profile_seed)")
