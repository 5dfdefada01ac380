"""Paired contrasts (tuned − baseline) on profile means, conditional on the adapters trained,
and the study's own analysis; Holm within declared families.

The paired t on profile means gives each simulated patient one difference (the mean over
seeds of its tuned scores minus the mean over seeds of its baseline scores), so n =
profiles. It accounts for between-patient variation in the effect and for sampling noise
within a patient, but a training run's shift is common to all patients, so it answers
whether *these* adapters helped: it is reported under ``conditional_on_adapters``. The
headline, which also generalises over training runs, is ``cbtflow.stats.generalising``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from cbtflow.conditions import BASELINE, TUNED, contrast_name
from cbtflow.stats.units import PROFILE_UNIT, STUDY_UNIT, profile_means

PRIMARY_METHOD = "paired t on profile means (tuned − baseline), 95% CI of the mean difference"


def skipped(reason: str, **extra: Any) -> dict[str, Any]:
    return {"ran": False, "reason": reason, **extra}


def paired_t(diff: np.ndarray) -> dict[str, np.ndarray]:
    """Paired t on the last axis of ``diff``, vectorised so calibration runs thousands of
    simulated studies in one call: mean, sd, t, two-sided p, 95% CI of the mean."""
    diff = np.asarray(diff, float)
    n = diff.shape[-1]
    mean, sd = diff.mean(-1), diff.std(-1, ddof=1)
    se = sd / math.sqrt(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean / se
    half = float(sps.t.ppf(0.975, n - 1)) * se
    return {
        "n": np.asarray(n),
        "mean": mean,
        "sd": sd,
        "t": t,
        "p": 2 * sps.t.sf(np.abs(t), n - 1),
        "ci_low": mean - half,
        "ci_high": mean + half,
    }


def _noncentrality_bounds(cdf, statistic: float, level: float = 0.95) -> tuple[float, float]:
    """Noncentrality values whose distributions put ``statistic`` at the (1+level)/2 and
    (1−level)/2 quantiles: the inverted-test CI of Steiger & Fouladi (1997)."""

    def safe(nc: float) -> float:
        """scipy's noncentral CDFs return NaN far in a tail; there the CDF is 0 or 1."""
        value = float(cdf(statistic, nc))
        return value if not math.isnan(value) else (0.0 if nc > statistic else 1.0)

    def root(target: float) -> float:
        lo, hi = statistic - 5.0, statistic + 5.0
        while safe(lo) < target:
            lo -= 5.0 + abs(lo)
        while safe(hi) > target:
            hi += 5.0 + abs(hi)
        return float(optimize.brentq(lambda nc: safe(nc) - target, lo, hi, xtol=1e-12))

    return root((1 + level) / 2), root((1 - level) / 2)


def cohens_dz_ci(t: float, n: int, level: float = 0.95) -> list[float]:
    """95% CI of Cohen's dz (= t / √n) from the noncentral t distribution."""
    lo, hi = _noncentrality_bounds(lambda x, nc: sps.nct.cdf(x, n - 1, nc), float(t), level)
    return [lo / math.sqrt(n), hi / math.sqrt(n)]


def partial_eta_squared_ci(f: float, df1: float, df2: float, level: float = 0.95) -> list[float] | None:
    """95% CI of partial η² from the noncentral F (λ / (λ + df1 + df2 + 1), Steiger 2004);
    a bound whose λ would be negative is 0."""
    if f is None or not np.isfinite(f):
        return None

    def cdf(x: float, nc: float) -> float:
        return float(sps.ncf.cdf(x, df1, df2, max(nc, 0.0))) if nc > 0 else float(sps.f.cdf(x, df1, df2))

    lam = []
    for target in ((1 + level) / 2, (1 - level) / 2):
        if cdf(f, 0.0) < target:
            lam.append(0.0)
            continue
        hi = max(10.0, f * df1 * 2)
        while cdf(f, hi) > target:
            hi *= 2
        lam.append(float(optimize.brentq(lambda nc, q=target: cdf(f, nc) - q, 0.0, hi, xtol=1e-10)))
    return [x / (x + df1 + df2 + 1) for x in lam]


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm-adjusted p (statsmodels' multipletests); None and NaN stay None and are not counted."""
    keep = [i for i, p in enumerate(pvalues) if p is not None and not math.isnan(p)]
    adjusted: list[float | None] = [None] * len(pvalues)
    if keep:
        corrected = multipletests([pvalues[i] for i in keep], method="holm")[1]
        for i, p in zip(keep, corrected):
            adjusted[i] = float(p)
    return adjusted


def paired_test(tuned: np.ndarray, baseline: np.ndarray) -> dict[str, Any]:
    """Paired t (tuned − baseline) with the 95% CI of the mean difference, Cohen's dz with
    its noncentral-t CI, and the Wilcoxon signed-rank test beside it."""
    tuned, baseline = np.asarray(tuned, float), np.asarray(baseline, float)
    diff = tuned - baseline
    n = len(diff)
    if n < 2:
        return skipped(f"needs at least 2 pairs, has {n}", n=n)
    res = paired_t(diff)
    mean, sd = float(res["mean"]), float(res["sd"])
    out: dict[str, Any] = {
        "ran": True,
        "n": n,
        "mean_tuned": float(tuned.mean()),
        "mean_baseline": float(baseline.mean()),
        "mean_difference": mean,
        "sd_difference": sd,
    }
    if sd == 0:
        out.update(
            t=None,
            df=n - 1,
            p=None,
            ci95=[mean, mean],
            cohens_dz=None,
            cohens_dz_ci95=None,
            note="all differences are equal; t is undefined",
        )
    else:
        t = float(res["t"])
        out.update(
            t=t,
            df=n - 1,
            p=float(res["p"]),
            ci95=[float(res["ci_low"]), float(res["ci_high"])],
            cohens_dz=mean / sd,
            cohens_dz_ci95=cohens_dz_ci(t, n),
        )
    if np.any(diff != 0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = sps.wilcoxon(tuned, baseline)
        out["wilcoxon"] = {"W": float(w.statistic), "p": float(w.pvalue), "n_nonzero": int(np.sum(diff != 0))}
    else:
        out["wilcoxon"] = skipped("all differences are zero", n=n)
    return out


def _as_block(result: dict[str, Any], tuned: str, baseline: str, unit: str, method: str) -> dict[str, Any]:
    """The stable shape tools read: estimate, ci95, p, n_units, unit, method (+ details)."""
    block = {"tuned": tuned, "baseline": baseline, "unit": unit, "method": method, "n_units": result.get("n", 0)}
    if not result.get("ran"):
        return {**block, **result, "estimate": None, "ci95": None, "p": None, "p_holm": None}
    return {**block, **result, "estimate": result["mean_difference"], "p_holm": None}


def _wide(frame: pd.DataFrame, index: list[str]) -> pd.DataFrame:
    return frame.pivot_table(index=index, columns="condition", values="score", aggfunc="mean")


def profile_contrast(totals: pd.DataFrame, tuned: str, baseline: str) -> dict[str, Any]:
    """Per model and pooled, ``tuned`` − ``baseline`` with the profile as the unit,
    conditional on the adapters that were trained.

    Pooled: per profile, each model's own difference (its tuned mean minus *its own*
    baseline mean, a baseline transcript it shares with another model counted once within
    it), averaged over the models that have the profile. Never one model's tuned mean
    against another's baseline: models that differ in their baselines do not leak into it.
    """
    pairs = totals[totals["condition"].isin([tuned, baseline])]
    out: dict[str, Any] = {}
    wide = _wide(profile_means(pairs), ["model", "profile"])
    if tuned not in wide or baseline not in wide:
        return {
            "_pooled": _as_block(
                skipped(f"needs both conditions '{tuned}' and '{baseline}'"),
                tuned,
                baseline,
                PROFILE_UNIT,
                PRIMARY_METHOD,
            )
        }
    for model, group in wide.groupby(level="model"):
        out[str(model)] = _as_block(
            paired_test(*_columns(group, tuned, baseline)), tuned, baseline, PROFILE_UNIT, PRIMARY_METHOD
        )
    per_profile = wide.dropna(subset=[tuned, baseline]).groupby(level="profile")[[tuned, baseline]].mean()
    out["_pooled"] = _as_block(
        paired_test(per_profile[tuned].to_numpy(), per_profile[baseline].to_numpy()),
        tuned,
        baseline,
        PROFILE_UNIT,
        PRIMARY_METHOD + "; pooled: per profile, the mean over models of each model's own difference",
    )
    return out


def study_contrast(totals: pd.DataFrame, tuned: str, baseline: str) -> dict[str, Any]:
    """The study's analysis: pairs are (profile, seed), pooled over models. Kept for
    comparison with the paper; its p-values overstate the evidence (pseudo-replication)."""
    wide = _wide(totals[totals["condition"].isin([tuned, baseline])], ["model", "profile", "seed"])
    if tuned not in wide or baseline not in wide:
        return {"_pooled": skipped(f"needs both conditions '{tuned}' and '{baseline}'")}
    method = "paired t on (profile, seed) pairs"
    out = {
        str(m): _as_block(paired_test(*_columns(g, tuned, baseline)), tuned, baseline, STUDY_UNIT, method)
        for m, g in wide.groupby(level="model")
    }
    out["_pooled"] = _as_block(
        paired_test(*_columns(wide, tuned, baseline)),
        tuned,
        baseline,
        STUDY_UNIT,
        method + ", every model's pairs pooled",
    )
    return out


def _columns(wide: pd.DataFrame, tuned: str, baseline: str) -> tuple[np.ndarray, np.ndarray]:
    """The complete pairs of a wide table (none when a condition is absent)."""
    if tuned not in wide or baseline not in wide:
        return np.array([]), np.array([])
    complete = wide.dropna(subset=[tuned, baseline])
    return complete[tuned].to_numpy(), complete[baseline].to_numpy()


PRIMARY_FAMILY = "primary"
POOLED_NOTE = "a summary across models, not a member of any Holm family"


def default_families(contrasts: list[str]) -> dict[str, list[str]]:
    """The primary family is the study's question (cbt vs instruct, per model); every other
    contrast is a secondary family of its own."""
    primary = contrast_name(TUNED, BASELINE)
    families = {PRIMARY_FAMILY: [primary]} if primary in contrasts else {}
    families.update({f"secondary: {c}": [c] for c in contrasts if c != primary})
    return families


def resolve_families(contrasts: list[str], override: dict[str, list[str]] | None) -> dict[str, list[str]]:
    """The declared families: ``report.multiplicity_families`` when set (a contrast it does
    not name keeps its default family), else ``default_families``."""
    if not override:
        return default_families(contrasts)
    seen: dict[str, str] = {}
    for family, members in override.items():
        for contrast in members:
            if contrast in seen:
                raise ValueError(
                    f"report.multiplicity_families: contrast '{contrast}' is in both '{seen[contrast]}' and "
                    f"'{family}'; a contrast belongs to one family"
                )
            seen[contrast] = family
    families = {f: [c for c in members if c in contrasts] for f, members in override.items()}
    for family, members in default_families(contrasts).items():
        rest = [c for c in members if c not in seen]
        if rest:
            families.setdefault(family, []).extend(rest)
    return {f: members for f, members in families.items() if members}


def adjust_families(contrasts: dict[str, dict[str, Any]], families: dict[str, list[str]]) -> dict[str, Any]:
    """Holm within each declared family of per-model tests, written into each block as
    ``p_holm`` and ``family``; pooled rows are summaries, not members. Returns the families."""
    described: dict[str, Any] = {}
    for per in contrasts.values():
        for block in per.values():
            block.setdefault("p_holm", None)
            block.setdefault("family", None)
    for family, names in families.items():
        members = [
            (c, m)
            for c in names
            for m, block in contrasts.get(c, {}).items()
            if m != "_pooled" and block.get("p") is not None
        ]
        for (c, m), p in zip(members, holm([contrasts[c][m]["p"] for c, m in members])):
            contrasts[c][m]["p_holm"] = p
        for c in names:
            for m, block in contrasts.get(c, {}).items():
                block["family"] = None if m == "_pooled" else family
        described[family] = {"contrasts": names, "members": [f"{c}.{m}" for c, m in members]}
    for per in contrasts.values():
        if "_pooled" in per:
            per["_pooled"].update(p_holm=None, family=None, family_note=POOLED_NOTE)
    return {"method": "holm", "families": described, "pooled_rows": POOLED_NOTE}
