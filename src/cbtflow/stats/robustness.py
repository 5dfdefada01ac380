"""How far does a conclusion move with the judge, or with the kind of patient?

LLM-judged conclusions can swing with the judge. The robustness matrix gives the primary
effect (tuned − baseline, the simulated patient as the unit) for every model under each
setup: each judge, and each patient style under the primary judge. Judges score on their
own scales, so the sensitivity figure puts every setup on one axis with Cohen's dz; and
whether the setups agree on which model gains most is Kendall's τ between their rankings
of the models, with a percentile bootstrap CI that resamples simulated patients (the same
patients for two judges; each style's own patients for two styles).
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from cbtflow.conditions import BASELINE, TUNED
from cbtflow.stats.agreement import HUMAN_PREFIX
from cbtflow.stats.paired import skipped
from cbtflow.stats.units import profile_means

BOOTSTRAP = 2000


def profile_effects(totals: pd.DataFrame, tuned: str = TUNED, baseline: str = BASELINE) -> pd.DataFrame:
    """model × profile table of tuned − baseline (each side the profile's mean over seeds)."""
    cells = totals[totals["condition"].isin([tuned, baseline])]
    means = profile_means(cells).pivot_table(index="profile", columns=["model", "condition"], values="score")
    models = sorted({m for m, c in means.columns if (m, tuned) in means and (m, baseline) in means})
    return pd.DataFrame({m: means[(m, tuned)] - means[(m, baseline)] for m in models}).dropna(how="all")


def _summary(effects: pd.Series) -> dict[str, Any]:
    x = effects.dropna().to_numpy(float)
    n = len(x)
    if n < 2:
        return {"n_units": n, "effect": float(x.mean()) if n else None, "ci95": None, "dz": None}
    sd = x.std(ddof=1)
    half = sps.t.ppf(0.975, n - 1) * sd / np.sqrt(n)
    return {
        "n_units": n,
        "effect": float(x.mean()),
        "ci95": [float(x.mean() - half), float(x.mean() + half)],
        "dz": float(x.mean() / sd) if sd > 0 else None,
    }


def setups(totals: pd.DataFrame, primary_judge: str | None) -> dict[str, tuple[str, pd.DataFrame]]:
    """The setups to compare: each (machine) judge; each patient style under the primary judge."""
    machines = totals[~totals["judge"].str.startswith(HUMAN_PREFIX)]
    out = {f"judge {j}": ("judge", g) for j, g in machines.groupby("judge")}
    primary = machines[machines["judge"] == primary_judge] if primary_judge else machines.iloc[0:0]
    if "style" in primary and primary["style"].nunique() >= 2:
        out.update({f"patient style {s}": ("patient style", g) for s, g in primary.groupby("style")})
    return out


def kendall_tau(a: pd.Series, b: pd.Series) -> float | None:
    """τ-b between two setups' per-model effects (None when either has no spread)."""
    both = pd.concat([a, b], axis=1).dropna()
    if len(both) < 2 or both.iloc[:, 0].nunique() < 2 or both.iloc[:, 1].nunique() < 2:
        return None
    return float(sps.kendalltau(both.iloc[:, 0], both.iloc[:, 1]).statistic)


def _bootstrap_tau(a: pd.DataFrame, b: pd.DataFrame, paired: bool, rng: np.random.Generator) -> list[float] | None:
    """Percentile 95% CI of τ over resampled patients (jointly when both setups rated the same ones)."""
    taus = []
    for _ in range(BOOTSTRAP):
        if paired:
            ids = rng.choice(a.index.to_numpy(), size=len(a))
            ra, rb = a.loc[ids].mean(), b.loc[ids].mean()
        else:
            ra = a.loc[rng.choice(a.index.to_numpy(), size=len(a))].mean()
            rb = b.loc[rng.choice(b.index.to_numpy(), size=len(b))].mean()
        tau = kendall_tau(ra, rb)
        if tau is not None:
            taus.append(tau)
    if len(taus) < BOOTSTRAP // 2:
        return None
    return [float(np.percentile(taus, 2.5)), float(np.percentile(taus, 97.5))]


def robustness_matrix(
    totals: pd.DataFrame, primary_judge: str | None, tuned: str = TUNED, baseline: str = BASELINE, seed: int = 0
) -> dict[str, Any]:
    """The primary effect per model under each setup, and Kendall's τ between the setups'
    rankings of the models within each family (judges; patient styles)."""
    chosen = setups(totals, primary_judge)
    families = pd.Series({name: family for name, (family, _) in chosen.items()})
    if not (families.value_counts() >= 2).any():
        return skipped("needs at least two judges, or two patient styles under the primary judge")
    effects = {name: profile_effects(frame, tuned, baseline) for name, (_, frame) in chosen.items()}
    matrix = {
        name: {"family": chosen[name][0], "by_model": {m: _summary(table[m]) for m in table.columns}}
        for name, table in effects.items()
    }
    rng = np.random.default_rng(seed)
    agreement = []
    for family in sorted(set(families)):
        for a, b in combinations([n for n in chosen if families[n] == family], 2):
            models = sorted(set(effects[a].columns) & set(effects[b].columns))
            ea, eb = effects[a][models], effects[b][models]
            paired = family == "judge"
            if paired:  # the same patients: keep those both judges scored
                common = ea.index.intersection(eb.index)
                ea, eb = ea.loc[common], eb.loc[common]
            tau = kendall_tau(ea.mean(), eb.mean())
            agreement.append(
                {
                    "family": family,
                    "a": a,
                    "b": b,
                    "n_models": len(models),
                    "tau": tau,
                    "ci95": _bootstrap_tau(ea, eb, paired, rng) if tau is not None and len(models) >= 3 else None,
                }
            )
    return {
        "ran": True,
        "tuned": tuned,
        "baseline": baseline,
        "setups": matrix,
        "ranking_agreement": agreement,
        "bootstrap": BOOTSTRAP,
    }
