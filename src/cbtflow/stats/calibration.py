"""Simulated studies with every variance source the headline claims to generalise over.

A test is calibrated only on nulls that hold all of those sources: simulated patients
with their own response to tuning, adapter training runs (model × seed) that shift all
their patients together, and sampling noise. The suite and ``bench/calibration.py`` read
their false-positive rates and power from here, so both simulate the same design.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Design:
    n_profiles: int = 33
    seeds: int = 3
    patient_sd: float = 5.0  # how well any therapist does with a patient (cancels in the paired difference)
    response_sd: float = 3.0  # patients differ in how much tuning helps them
    run_sd: float = 1.5  # each adapter training run shifts all its patients together
    noise_sd: float = 2.0  # one transcript's score around its patient × condition mean


def studies(rng: np.random.Generator, n_studies: int, effect: float, design: Design = Design()) -> pd.DataFrame:
    """One long totals table; each study is one 'model', so one call analyses them all."""
    shape = (n_studies, design.n_profiles)
    level = rng.normal(30, design.patient_sd, size=shape)[..., None]
    response = rng.normal(0, design.response_sd, size=shape)[..., None]
    runs = rng.normal(0, design.run_sd, size=(n_studies, 1, design.seeds))
    instruct = level + rng.normal(0, design.noise_sd, size=(*shape, design.seeds))
    cbt = level + effect + response + runs + rng.normal(0, design.noise_sd, size=(*shape, design.seeds))
    study, profile, seed = np.meshgrid(
        np.arange(n_studies), np.arange(design.n_profiles), np.arange(design.seeds), indexing="ij"
    )
    base = {
        "judge": "j",
        "item": "total",
        "model": study.ravel().astype(str),
        "profile": profile.ravel().astype(str),
        "seed": seed.ravel(),
    }
    return pd.concat(
        [
            pd.DataFrame({**base, "condition": "instruct", "score": instruct.ravel()}),
            pd.DataFrame({**base, "condition": "cbt", "score": cbt.ravel()}),
        ],
        ignore_index=True,
    )


def shared_baseline_study(
    rng: np.random.Generator, effect: float = 0.0, base_gap: float = 10.0, design: Design = Design()
) -> pd.DataFrame:
    """Three models as in config.yaml's layout: two on one base share their instruct
    transcripts (same hash), the third's base scores ``base_gap`` points lower. Every model
    has the same true tuning effect ``effect``."""
    rows = []
    level = rng.normal(30, design.patient_sd, design.n_profiles)
    shared = level[:, None] + rng.normal(0, design.noise_sd, (design.n_profiles, design.seeds))
    for model, base in (("a", "one"), ("b", "one"), ("c", "two")):
        response = rng.normal(0, design.response_sd, design.n_profiles)
        runs = rng.normal(0, design.run_sd, design.seeds)
        offset = -base_gap if base == "two" else 0.0
        instruct = (
            shared
            if base == "one"
            else level[:, None] + offset + rng.normal(0, design.noise_sd, (design.n_profiles, design.seeds))
        )
        for p in range(design.n_profiles):
            for s in range(design.seeds):
                cbt = level[p] + offset + effect + response[p] + runs[s] + rng.normal(0, design.noise_sd)
                common = {"judge": "j", "item": "total", "model": model, "profile": f"p{p}", "seed": s}
                rows.append(
                    {**common, "condition": "instruct", "score": instruct[p, s], "transcript": f"{base}|{p}|{s}"}
                )
                rows.append({**common, "condition": "cbt", "score": cbt, "transcript": f"{model}|cbt|{p}|{s}"})
    return pd.DataFrame(rows)
