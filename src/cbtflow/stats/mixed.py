"""The model-based analysis: a linear mixed model with crossed random effects (statsmodels).

    score ~ 0 + C(baseline_group) + C(model):tuned
            + (1 | profile) + (0 + tuned | profile) + (0 + tuned | adapter run)

Why this form:
- Fixed effects: one intercept per *baseline group* (models whose baseline transcripts are
  identical, i.e. one base model) and one tuning effect per model, coded so that the
  coefficient is tuned − baseline (instruct is the reference; positive = tuning helps). A
  shared baseline transcript therefore enters once, not once per model.
- ``(1 | profile)``: patients differ in how well any therapist does with them.
- ``(0 + tuned | profile)``: patients differ in how much tuning helps them (the source of
  the pseudo-replication the patient-level tests guard against). Fitted only when a profile
  has more than one tuned observation; otherwise it is the residual.
- ``(0 + tuned | adapter run)``: each model × seed trains its own adapter; a run that came
  out better or worse shifts all its patients together. This is the variance the paired
  tests on profile means condition on, and the reason the mixed model's CI for the tuning
  effect is the one that generalises to re-training. Fitted when there are ≥ 2 runs.
Profile and adapter run are crossed, so the model is fitted as one group with variance
components (statsmodels' documented form for crossed effects). A component that cannot
be estimated is dropped and the drop is reported, never silently.
Its tests use Satterthwaite's df with t-based CIs (``cbtflow.stats.satterthwaite``), not
statsmodels' Wald z, which is too liberal with few adapter runs.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from cbtflow.conditions import BASELINE, TUNED
from cbtflow.stats.paired import skipped
from cbtflow.stats.satterthwaite import VarianceModel, contrast, gls_beta, polish
from cbtflow.stats.units import baseline_groups, unique_transcripts

COMPONENTS = {
    "profile": "0 + C(profile)",
    "profile_x_tuned": "0 + C(profile):tuned",
    "adapter_run_x_tuned": "0 + C(adapter_run):tuned",
}


def _design(totals: pd.DataFrame, tuned: str, baseline: str) -> pd.DataFrame:
    data = totals[totals["condition"].isin([tuned, baseline])]
    groups = baseline_groups(data, baseline)
    data = unique_transcripts(data)
    return data.assign(
        tuned=(data["condition"] == tuned).astype(float),
        baseline_group=data["model"].map(groups),
        adapter_run=data["model"].astype(str) + "|seed" + data["seed"].astype(str),
        one=1,
    ).reset_index(drop=True)


def _components(data: pd.DataFrame) -> tuple[dict[str, str], dict[str, str]]:
    """The random effects the data can identify, and why the others are left out."""
    use, dropped = {"profile": COMPONENTS["profile"]}, {}
    tuned_rows = data[data["tuned"] == 1]
    if tuned_rows.groupby("profile").size().max() > 1:
        use["profile_x_tuned"] = COMPONENTS["profile_x_tuned"]
    else:
        dropped["profile_x_tuned"] = "one tuned observation per profile: not separable from the residual"
    if tuned_rows["adapter_run"].nunique() >= 2:
        use["adapter_run_x_tuned"] = COMPONENTS["adapter_run_x_tuned"]
    else:
        dropped["adapter_run_x_tuned"] = "fewer than 2 adapter runs"
    return use, dropped


OPTIMIZERS = ("lbfgs", "powell", "nm")
# The crossed fit builds a dense design of one column per profile and adapter run; past
# this many columns (a table of hundreds of models) it would take minutes and gigabytes,
# so it is skipped with that reason. The paper's design has about 75.
MAX_RANDOM_COLUMNS = 600


def best_fit(model: Any) -> Any:
    """REML fits from several optimizers, keeping the converged one with the highest
    likelihood: variance components near zero (common with few seeds) stall gradient
    methods on the boundary, where Powell and Nelder-Mead still reach the optimum."""
    fits = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for method in OPTIMIZERS:
            try:
                fit = model.fit(reml=True, method=method)
            except (ValueError, np.linalg.LinAlgError):
                continue
            fit.method = method
            fits.append((fit, fit.llf if np.isfinite(fit.llf) else -np.inf))
    if not fits:
        raise ValueError(f"no optimizer of {OPTIMIZERS} could fit the model")
    converged = [f for f in fits if f[0].converged] or fits
    return max(converged, key=lambda f: f[1])[0]


def satterthwaite_inputs(fit: Any) -> tuple[VarianceModel, np.ndarray, np.ndarray]:
    """A one-group statsmodels fit as the dense model the Satterthwaite df needs, with its
    REML components polished to the optimum."""
    spec = fit.model.exog_vc
    model = VarianceModel(
        y=np.asarray(fit.model.endog, float),
        X=np.asarray(fit.model.exog, float),
        Z=tuple(np.asarray(mats[0], float) for mats in spec.mats),
        names=tuple(spec.names),
    )
    theta, free = polish(model, np.array([*np.atleast_1d(fit.vcomp), fit.scale], float))
    return model, theta, free


def mixed_model(totals: pd.DataFrame, tuned: str = TUNED, baseline: str = BASELINE) -> dict[str, Any]:
    """Fit the model above; tuning effect per model and averaged over models, with 95% CIs."""
    import statsmodels.formula.api as smf

    if totals["profile"].nunique() < 3:
        return skipped("needs at least 3 profiles for a profile random effect")
    data = _design(totals, tuned, baseline)
    if data["tuned"].nunique() < 2:
        return skipped(f"needs both conditions '{tuned}' and '{baseline}'")
    columns = 2 * data["profile"].nunique() + data.loc[data["tuned"] == 1, "adapter_run"].nunique()
    if columns > MAX_RANDOM_COLUMNS:
        return skipped(
            f"{columns} random-effect columns (profiles and adapter runs) exceed the {MAX_RANDOM_COLUMNS} "
            "this crossed fit handles in reasonable time; fit it on a subset of models"
        )
    formula = "score ~ 0 + C(baseline_group) + C(model):tuned"
    components, dropped = _components(data)
    fit = None
    while fit is None:
        try:
            fit = best_fit(smf.mixedlm(formula, data, groups="one", re_formula="0", vc_formula=components))
        except (ValueError, np.linalg.LinAlgError) as err:
            optional = [c for c in components if c != "profile"]
            if not optional:
                return skipped(f"mixed model failed to fit: {err}")
            dropped[optional[0]] = f"fit failed with it ({err})"
            del components[optional[0]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _summarise(fit, data, formula, components, dropped, tuned, baseline)


def _summarise(
    fit: Any,
    data: pd.DataFrame,
    formula: str,
    components: dict[str, str],
    dropped: dict[str, str],
    tuned: str,
    baseline: str,
) -> dict[str, Any]:
    if not np.all(np.isfinite(np.asarray(fit.bse_fe))) or not fit.scale > 1e-12:
        return skipped(
            "mixed model is degenerate (no residual variance, e.g. identical scores within cells); see the paired tests"
        )
    names = [n for n in fit.fe_params.index if n.endswith(":tuned")]
    model, theta, free = satterthwaite_inputs(fit)
    beta = gls_beta(model, theta)
    index = list(fit.fe_params.index)

    def effect(weights: np.ndarray) -> dict[str, Any]:
        c = contrast(model, theta, free, weights, beta)
        return {"estimate": c.estimate, "se": c.se, "df": c.df, "t": c.t, "p": c.p, "ci95": list(c.ci95)}

    try:
        effects = {}
        for name in names:
            weights = np.array([1.0 if n == name else 0.0 for n in index])
            effects[name.split("[", 1)[1].split("]", 1)[0]] = effect(weights)
        average = effect(np.array([1 / len(names) if n in names else 0.0 for n in index]))
    except ValueError as err:
        return skipped(f"mixed model is degenerate: {err}; see the primary and the paired tests")
    variances = dict(zip(model.names, theta[:-1]))
    return {
        "ran": True,
        "formula": formula
        + " + "
        + " + ".join(
            {
                "profile": "(1 | profile)",
                "profile_x_tuned": "(0 + tuned | profile)",
                "adapter_run_x_tuned": "(0 + tuned | adapter run)",
            }[c]
            for c in components
        ),
        "contrast": f"{tuned} − {baseline}",
        "n_observations": int(fit.nobs),
        "n_profiles": int(data["profile"].nunique()),
        "n_adapter_runs": int(data.loc[data["tuned"] == 1, "adapter_run"].nunique()),
        "converged": bool(fit.converged),
        "optimizer": fit.method,
        "tuning_effect": effects,
        "tuning_effect_mean_over_models": average,
        "variance_components": {**{k: float(v) for k, v in variances.items()}, "residual": float(theta[-1])},
        "components_dropped": dropped,
        "inference": "Satterthwaite df, t-based CIs and p (as lmerTest); components at zero held fixed",
        "note": "A joint fit: the variance components are shared by all models. The headline fits each model apart.",
    }
