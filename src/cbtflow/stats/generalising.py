"""The headline: tuned − baseline that generalises over simulated patients *and* training runs.

The study asks whether a fine-tuning *recipe* helps, so its answer must hold for an
adapter trained again the same way, not only for the adapters that were trained. Each
model's differences per simulated patient and seed,

    d[p, s] = tuned[p, s] − baseline[p, s]        (paired by seed; see ``differences``)

follow the crossed random-effects model

    d = τ + b_p + r_s + ε

with b_p the patient's own response to tuning, r_s the shift that seed s's training run
(model × seed) gives all its patients, and ε sampling noise. In lme4's terms it is
``lmer(d ~ 1 + (1 | profile) + (1 | seed))``; on complete tables it is also the condition
× profile × seed mixed ANOVA (profile and seed random, fully crossed), as long as no
component of that larger model is estimated at zero.

- Balanced (every profile has every seed): the exact closed form from the ANOVA mean
  squares, Var(τ̂) = (MS_P + MS_S − MS_E) / (P S), with Satterthwaite's df (what REML and
  lmerTest give when no component is on the boundary).
- Unbalanced: REML (statsmodels) with Satterthwaite's df (``cbtflow.stats.satterthwaite``).
- A component that cannot be estimated (estimated at or below zero) or a fit that fails
  falls back to a more conservative interval, never a narrower one: the variance is the
  larger of MS_P + MS_S (an upward-biased sum) and what the boundary fit gives, and the df
  is the smaller of P − 1 and S − 1. So it is never narrower than the boundary fit it
  replaces, nor than the paired t on profile means (which ignores training runs). Not the
  Satterthwaite df of that sum: when the run stratum (S − 1 df) happens to come out small,
  that df is large exactly when it should not be (with 2 seeds and a true run sd of 1.5 it
  rejected 9.7% of null studies; with S − 1, 2.0%). The block names the component.
- One seed: training-run variance cannot be estimated; the result is the paired t on
  profile means and says that it holds for the one adapter trained per model.
- A contrast in which neither condition loads an adapter (prompted vs instruct) has no
  training run to generalise over: its headline is the paired t on profile means.

Pooled over models: each model's own difference, then the mean over models per (profile,
seed), analysed the same way (so its inference generalises the same way).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from cbtflow.conditions import TABLE
from cbtflow.stats.satterthwaite import contrast, gls_beta, t_inference

BOTH_SOURCES = ["patients", "training runs"]
PATIENTS_ONLY = ["patients"]
CLOSED_FORM = (
    "crossed random effects (profile × tuning, adapter run) on (profile, seed) differences: "
    "closed form from the ANOVA mean squares (balanced design), Satterthwaite df, t-based 95% CI"
)
REML = (
    "crossed random effects (profile × tuning, adapter run) on (profile, seed) differences: "
    "REML (statsmodels), Satterthwaite df, t-based 95% CI"
)
FALLBACK = (
    "conservative fallback: variance max(MS_profile + MS_run, boundary fit), df min(profiles − 1, runs − 1), "
    "t-based 95% CI"
)


def involves_training(tuned: str, baseline: str) -> bool:
    """Whether either condition loads the model's adapter (so training runs vary)."""
    return any(TABLE[c].adapter for c in (tuned, baseline) if c in TABLE)


def differences(totals: pd.DataFrame, tuned: str, baseline: str) -> dict[str, tuple[pd.DataFrame, str]]:
    """Per model: its (profile, seed) differences against its *own* baseline, and how they pair.

    Paired by seed when every tuned (profile, seed) has a baseline of the same seed (seeds
    share the patient's sampling streams); otherwise each tuned score minus the profile's
    mean baseline. A baseline transcript that several models share counts once per model.
    """
    out: dict[str, tuple[pd.DataFrame, str]] = {}
    cells = totals[totals["condition"].isin([tuned, baseline])]
    cells = cells.groupby(["model", "condition", "profile", "seed"], as_index=False)["score"].mean()
    for model, rows in cells.groupby("model"):
        t = rows[rows["condition"] == tuned].set_index(["profile", "seed"])["score"]
        b = rows[rows["condition"] == baseline].set_index(["profile", "seed"])["score"]
        if t.empty or b.empty:
            continue
        if t.index.isin(b.index).all():
            d, pairing = t - b.reindex(t.index), "by seed"
        else:
            profile_baseline = b.groupby(level="profile").mean()
            d = t - profile_baseline.reindex(t.index.get_level_values("profile")).to_numpy()
            pairing = "against the profile's mean baseline (seeds differ between conditions)"
        frame = d.dropna().rename("d").reset_index()
        if len(frame):
            out[str(model)] = (frame, pairing)
    return out


def pooled_differences(per_model: dict[str, tuple[pd.DataFrame, str]]) -> pd.DataFrame:
    """Per (profile, seed), the mean over models of each model's own difference."""
    stacked = pd.concat([frame for frame, _ in per_model.values()], ignore_index=True)
    return stacked.groupby(["profile", "seed"], as_index=False)["d"].mean()


def closed_form(d: np.ndarray) -> dict[str, np.ndarray]:
    """The crossed model on a complete profile × seed table, vectorised over leading axes
    (the calibration tests run thousands of studies in one call). Returns the estimate,
    its variance and df (fallback applied), the component estimates, and a fallback code
    (0 none, 1 adapter run, 2 profile × tuning, 3 both)."""
    d = np.asarray(d, float)
    P, S = d.shape[-2:]
    grand = d.mean(axis=(-2, -1))
    by_profile, by_seed = d.mean(axis=-1), d.mean(axis=-2)
    ss_p = S * ((by_profile - grand[..., None]) ** 2).sum(-1)
    ss_s = P * ((by_seed - grand[..., None]) ** 2).sum(-1)
    resid = d - by_profile[..., None] - by_seed[..., None, :] + grand[..., None, None]
    ss_e = (resid**2).sum(axis=(-2, -1))
    df_p, df_s, df_e = P - 1, S - 1, (P - 1) * (S - 1)
    ms_p, ms_s, ms_e = ss_p / df_p, ss_s / df_s, ss_e / df_e
    combined = ms_p + ms_s - ms_e
    with np.errstate(divide="ignore", invalid="ignore"):
        df = combined**2 / (ms_p**2 / df_p + ms_s**2 / df_s + ms_e**2 / df_e)
    run_boundary, profile_boundary = ms_s <= ms_e, ms_p <= ms_e
    code = run_boundary.astype(int) + 2 * profile_boundary.astype(int)
    pooled_ms = (ss_p + ss_s + ss_e) / (P * S - 1)
    fallback_variance = np.maximum(ms_p + ms_s, pooled_ms) / (P * S)
    fallback = code > 0
    return {
        "estimate": grand,
        "variance": np.where(fallback, fallback_variance, combined / (P * S)),
        "df": np.where(fallback, float(min(df_p, df_s)), df),
        "fallback": code,
        "patient_x_tuning": (ms_p - ms_e) / S,
        "adapter_run": (ms_s - ms_e) / P,
        "residual": ms_e,
    }


FALLBACK_REASONS = {
    1: "the adapter-run variance is estimated at or below zero (runs vary no more than noise)",
    2: "the profile × tuning variance is estimated at or below zero",
    3: "both the adapter-run and the profile × tuning variances are estimated at or below zero",
}


def _conservative(frame: pd.DataFrame) -> tuple[float, float]:
    """var(profile means)/P + var(seed means)/S: upward-biased by the noise, never below
    either source alone; df min(P − 1, S − 1)."""
    by_profile = frame.groupby("profile")["d"].mean()
    by_seed = frame.groupby("seed")["d"].mean()
    variance = by_profile.var(ddof=1) / len(by_profile) + by_seed.var(ddof=1) / len(by_seed)
    return float(variance), float(min(len(by_profile), len(by_seed)) - 1)


def _reml(frame: pd.DataFrame) -> dict[str, Any]:
    """The crossed model by REML on an incomplete table."""
    import statsmodels.formula.api as smf

    from cbtflow.stats.mixed import best_fit, satterthwaite_inputs

    data = frame.assign(one=1, profile=frame["profile"].astype(str), seed=frame["seed"].astype(str))
    vc = {"patient_x_tuning": "0 + C(profile)", "adapter_run": "0 + C(seed)"}
    fit = best_fit(smf.mixedlm("d ~ 1", data, groups="one", re_formula="0", vc_formula=vc))
    model, theta, free = satterthwaite_inputs(fit)
    result = contrast(model, theta, free, np.array([1.0]), gls_beta(model, theta))
    components = dict(zip([*model.names, "residual"], map(float, theta)))
    boundary = [name for name, is_free in zip(model.names, free[:-1]) if not is_free]
    return {"result": result, "components": components, "boundary": boundary}


def crossed(frame: pd.DataFrame) -> dict[str, Any]:
    """The crossed model on one (profile, seed, d) table: closed form when complete, REML
    otherwise; the fallback when a component cannot be estimated or the fit fails."""
    P, S = frame["profile"].nunique(), frame["seed"].nunique()
    complete = len(frame) == P * S and not frame.duplicated(["profile", "seed"]).any()
    if complete:
        table = frame.pivot(index="profile", columns="seed", values="d").to_numpy(float)
        cf = {k: float(np.asarray(v)) for k, v in closed_form(table).items()}
        code = int(cf.pop("fallback"))
        inference = t_inference(cf.pop("estimate"), cf.pop("variance"), cf.pop("df"))
        return {
            "inference": inference,
            "method": FALLBACK if code else CLOSED_FORM,
            "variance_components": cf,
            "variance_components_method": "ANOVA (moment) estimates; a negative one means 'cannot be estimated'",
            "fallback": {"reason": FALLBACK_REASONS[code], "replaces": CLOSED_FORM} if code else None,
        }
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = _reml(frame)
    except (ValueError, np.linalg.LinAlgError) as err:
        fit = {"error": str(err)}
    if "error" not in fit and not fit["boundary"]:
        return {
            "inference": fit["result"],
            "method": REML,
            "variance_components": fit["components"],
            "variance_components_method": "REML",
            "fallback": None,
        }
    variance, df = _conservative(frame)
    if "error" in fit:
        reason = f"the REML fit failed ({fit['error']})"
        estimate = float(frame.groupby("profile")["d"].mean().mean())
        components: dict[str, float] = {}
    else:
        reason = f"{' and '.join(fit['boundary'])} variance estimated at zero (REML boundary)"
        boundary: Any = fit["result"]
        estimate = boundary.estimate
        variance, df = max(variance, boundary.se**2), min(df, boundary.df)
        components = fit["components"]
    return {
        "inference": t_inference(estimate, variance, df),
        "method": FALLBACK,
        "variance_components": components,
        "variance_components_method": "REML",
        "fallback": {"reason": reason, "replaces": REML},
    }


def _block(frame: pd.DataFrame, pairing: str, tuned: str, baseline: str) -> dict[str, Any]:
    n_profiles, n_runs = int(frame["profile"].nunique()), int(frame["seed"].nunique())
    base = {
        "tuned": tuned,
        "baseline": baseline,
        "n_units": n_profiles,
        "n_profiles": n_profiles,
        "n_adapter_runs": n_runs,
        "n_differences": int(len(frame)),
        "pairing": pairing,
        "generalises_over": BOTH_SOURCES,
        "unit": "profile (simulated patient) and adapter run (model × seed), crossed",
    }
    not_run = {"ran": False, "estimate": None, "ci95": None, "p": None, "df": None, "method": "not run"}
    if n_profiles < 2:
        return {**base, **not_run, "reason": f"needs at least 2 profiles, has {n_profiles}"}
    fit = crossed(frame)
    inference = fit.pop("inference")
    if not math.isfinite(inference.se) or inference.se == 0:
        return {**base, **not_run, "reason": "all differences are equal; no interval can be formed"}
    return {
        **base,
        "ran": True,
        "estimate": inference.estimate,
        "se": inference.se,
        "t": inference.t,
        "df": inference.df,
        "p": inference.p,
        "ci95": list(inference.ci95),
        **fit,
    }


ONE_SEED = (
    "one seed: training-run variance cannot be estimated; this holds for the one adapter trained per model, "
    "not for the recipe"
)
NO_TRAINING = "neither condition loads an adapter: there is no training run to generalise over"


def _conditional_as_headline(block: dict[str, Any], why: str) -> dict[str, Any]:
    return {"df": None, **block, "generalises_over": PATIENTS_ONLY, "scope_note": why}


def headline_contrast(
    totals: pd.DataFrame, tuned: str, baseline: str, conditional: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per model and pooled: the generalising estimate (see the module docstring). Models
    with one seed, and contrasts without an adapter, get their conditional block, stated."""
    if not involves_training(tuned, baseline):
        return {m: _conditional_as_headline(b, NO_TRAINING) for m, b in conditional.items()}
    per_model = differences(totals, tuned, baseline)
    out: dict[str, dict[str, Any]] = {}
    for model, block in conditional.items():
        if model == "_pooled" or model not in per_model:
            continue
        frame, pairing = per_model[model]
        if frame["seed"].nunique() < 2:
            out[model] = _conditional_as_headline(block, ONE_SEED)
            continue
        out[model] = {**_block(frame, pairing, tuned, baseline), **_means(block)}
    for model, block in conditional.items():  # models the difference table could not pair
        if model not in out and model != "_pooled":
            out[model] = _conditional_as_headline(block, "no (profile, seed) pair of both conditions")
    if "_pooled" in conditional and not per_model:
        out["_pooled"] = _conditional_as_headline(conditional["_pooled"], "no (profile, seed) pair of both conditions")
    if per_model and "_pooled" in conditional:
        pooled = pooled_differences(per_model)
        pooled_block = conditional["_pooled"]
        if pooled["seed"].nunique() < 2:
            out["_pooled"] = _conditional_as_headline(pooled_block, ONE_SEED)
        else:
            pairings = sorted({p for _, p in per_model.values()})
            out["_pooled"] = {
                **_block(pooled, "; ".join(pairings), tuned, baseline),
                **_means(pooled_block),
                "pooled": "mean over models of each model's own difference, per (profile, seed)",
                "n_models": len(per_model),
            }
    return {m: out[m] for m in [*[k for k in conditional if k != "_pooled"], "_pooled"] if m in out}


def _means(conditional: dict[str, Any]) -> dict[str, Any]:
    """The descriptive means the report shows beside the estimate (from the conditional block)."""
    return {k: conditional[k] for k in ("mean_tuned", "mean_baseline") if k in conditional}
