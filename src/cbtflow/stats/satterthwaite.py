"""Small-sample inference for a linear mixed model fitted by REML: Satterthwaite's df.

statsmodels fits variance-component models by REML but tests fixed effects with Wald z,
which is too liberal with few training runs (9-11 df, not infinity, in the study's
design). This module takes a fit's variance components and computes, for a contrast
``L β``, its variance ``L C L'`` (C = (X'V⁻¹X)⁻¹), the Satterthwaite df

    df = 2 (L C L')² / (g' A g),   g = ∂(L C L')/∂θ,   A = Var(θ̂) = (observed REML information)⁻¹

and a t-based CI and p, as R's lmerTest does (Kuznetsova et al. 2017). The variance
parameters θ are the components themselves (σ²_k and the residual σ²); at the REML
optimum the df does not depend on that choice. Components estimated at zero are held
fixed there (they carry no information about their own sampling variance); callers that
need to be conservative in that case say so and fall back (``cbtflow.stats.generalising``).

Dense matrices: the designs here have at most a few hundred observations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

BOUNDARY = 1e-7  # a component below this share of the total variance is on the boundary


@dataclass(frozen=True)
class VarianceModel:
    """y = Xβ + Σ_k Z_k u_k + e, with u_k ~ N(0, θ_k I) and e ~ N(0, θ_e I)."""

    y: np.ndarray
    X: np.ndarray
    Z: tuple[np.ndarray, ...]  # one design matrix per random component
    names: tuple[str, ...]  # the components' names, in the order of Z

    def covariances(self) -> list[np.ndarray]:
        """∂V/∂θ for each component and then the residual."""
        return [z @ z.T for z in self.Z] + [np.eye(len(self.y))]


@dataclass(frozen=True)
class Contrast:
    estimate: float
    se: float
    df: float
    t: float
    p: float
    ci95: tuple[float, float]


def _pieces(model: VarianceModel, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    parts = model.covariances()
    V = sum(t * a for t, a in zip(theta, parts))
    Vi = np.linalg.inv(V)
    C = np.linalg.inv(model.X.T @ Vi @ model.X)
    P = Vi - Vi @ model.X @ C @ model.X.T @ Vi
    return Vi, C, P, parts


def reml_information(model: VarianceModel, theta: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Observed information (−∂² REML log-likelihood) over the free components."""
    _, _, P, parts = _pieces(model, theta)
    Py = P @ model.y
    PA = [P @ parts[k] for k in np.flatnonzero(free)]
    APy = [parts[k] @ Py for k in np.flatnonzero(free)]
    n = len(PA)
    info = np.empty((n, n))
    for i in range(n):
        for j in range(i, n):
            value = APy[i] @ P @ APy[j] - 0.5 * np.trace(PA[i] @ PA[j])
            info[i, j] = info[j, i] = value
    return info


def reml_score(model: VarianceModel, theta: np.ndarray, free: np.ndarray) -> np.ndarray:
    """∂ REML log-likelihood over the free components."""
    _, _, P, parts = _pieces(model, theta)
    Py = P @ model.y
    return np.array([0.5 * (Py @ parts[k] @ Py - np.trace(P @ parts[k])) for k in np.flatnonzero(free)])


def polish(model: VarianceModel, theta: np.ndarray, steps: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """A few Newton steps on the REML score from an optimizer's estimate, so that the df is
    computed at the optimum (statsmodels stops at a looser tolerance). Components at the
    boundary stay at zero. Returns the estimates and which components are free."""
    theta = np.asarray(theta, float).copy()
    free = theta > BOUNDARY * max(theta.sum(), 1e-300)
    free[-1] = True  # the residual is always estimated
    theta[~free] = 0.0
    for _ in range(steps):
        score = reml_score(model, theta, free)
        try:
            step = np.linalg.solve(reml_information(model, theta, free), score)
        except np.linalg.LinAlgError:
            break
        proposal = theta.copy()
        proposal[free] += step
        shrink = 0
        while np.any(proposal[free] <= 0) and shrink < 30:
            step /= 2
            proposal[free] = theta[free] + step
            shrink += 1
        if np.any(proposal[free] <= 0):
            break
        theta = proposal
        if np.max(np.abs(step) / np.maximum(theta[free], 1e-12)) < 1e-12:
            break
    return theta, free


def contrast(
    model: VarianceModel, theta: np.ndarray, free: np.ndarray, weights: np.ndarray, beta: np.ndarray
) -> Contrast:
    """GLS estimate of ``L β`` (L = ``weights``) with its Satterthwaite df, t-based 95% CI and
    two-sided p. Raises ValueError when the fit is too degenerate for a df (callers fall back)."""
    Vi, C, _, parts = _pieces(model, theta)
    L = np.asarray(weights, float).ravel()
    variance = float(L @ C @ L)
    left = C @ L
    gradient = np.array([left @ model.X.T @ Vi @ parts[k] @ Vi @ model.X @ left for k in np.flatnonzero(free)])
    info = reml_information(model, theta, free)
    try:
        spread = float(gradient @ np.linalg.solve(info, gradient))
    except np.linalg.LinAlgError as err:
        raise ValueError(f"the REML information matrix is singular ({err}); no Satterthwaite df") from err
    if not (math.isfinite(spread) and math.isfinite(variance)) or spread <= 0 or variance <= 0:
        raise ValueError("the variance components give no finite Satterthwaite df (a degenerate fit)")
    df = 2 * variance**2 / spread
    return t_inference(float(L @ beta), variance, df)


def gls_beta(model: VarianceModel, theta: np.ndarray) -> np.ndarray:
    Vi, C, _, _ = _pieces(model, theta)
    return C @ model.X.T @ Vi @ model.y


def t_inference(estimate: float, variance: float, df: float) -> Contrast:
    """t statistic, two-sided p and 95% CI from an estimate, its variance and its df."""
    se = math.sqrt(variance)
    t = estimate / se if se > 0 else math.nan
    quantile = float(sps.t.ppf(0.975, df))
    return Contrast(
        estimate=estimate,
        se=se,
        df=float(df),
        t=t,
        p=float(2 * sps.t.sf(abs(t), df)) if se > 0 else math.nan,
        ci95=(estimate - quantile * se, estimate + quantile * se),
    )
