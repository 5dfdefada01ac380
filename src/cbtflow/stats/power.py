"""Power for sizing a study before paying for it: eval profiles × seeds.

The headline generalises over patients and training runs (``cbtflow.stats.generalising``),
so its power depends on four standard deviations, not one:

- patient: how well any therapist does with a patient (it cancels in the paired difference);
- patient × tuning: how much patients differ in what tuning does for them;
- adapter run: how much one training run (model × seed) shifts all its patients;
- residual: one transcript's score around its patient × condition mean.

A further profile shrinks the patient × tuning and residual parts; only a further seed
shrinks the adapter-run part, and only seeds add df to it. ``headline_power`` simulates
the power of the test as it runs; ``from_pilot`` reads the sds from a pilot's
stats.json. The paired power is written from the noncentral t distribution (not by calling
statsmodels) so that the tests can check it against statsmodels' power module; the
headline's is simulated through the analysis' own closed form, fallback included.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats


def paired_power(n: int, dz: float, alpha: float = 0.05) -> float:
    """Two-sided power of a paired t-test with ``n`` pairs and standardised effect ``dz``."""
    if n < 2:
        raise ValueError("a paired t-test needs at least 2 pairs")
    df = n - 1
    critical = stats.t.ppf(1 - alpha / 2, df)
    noncentrality = dz * math.sqrt(n)
    return float(1 - stats.nct.cdf(critical, df, noncentrality) + stats.nct.cdf(-critical, df, noncentrality))


def paired_sample_size(dz: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Smallest number of pairs that reaches ``power`` for effect ``dz``."""
    if dz <= 0:
        raise ValueError("the effect size must be positive")
    n = 2
    while paired_power(n, dz, alpha) < power:
        n += 1
    return n


def difference_sd(sd: float, correlation: float) -> float:
    """SD of a paired difference when both conditions have SD ``sd`` and correlate at ``correlation``."""
    return math.sqrt(2 * sd**2 * (1 - correlation))


def eval_profiles_needed(
    difference: float, sd: float, correlation: float = 0.5, alpha: float = 0.05, power: float = 0.8
) -> dict[str, float]:
    """Eval profiles needed to detect ``difference`` CTRS points (the computation in experiments/paper.yaml)."""
    sd_diff = difference_sd(sd, correlation)
    dz = difference / sd_diff
    n = paired_sample_size(dz, alpha, power)
    return {
        "difference": difference,
        "sd": sd,
        "correlation": correlation,
        "sd_difference": sd_diff,
        "dz": dz,
        "alpha": alpha,
        "power": power,
        "pairs": n,
        "achieved_power": paired_power(n, dz, alpha),
    }


@dataclass(frozen=True)
class VarianceAssumptions:
    """Standard deviations on the rubric's total scale, and where they come from."""

    patient: float
    patient_x_tuning: float
    adapter_run: float
    residual: float
    source: str


# Assumptions, not measurements: a total SD of about 7-10 points per condition (the study's
# reported SDs, 7.2-9.8) split into patient 5, residual 4 and patient × tuning 3; an adapter
# run sd of 1.5 points. Replace them with a pilot's (cbtflow estimate --pilot stats.json).
DEFAULT_SDS = VarianceAssumptions(
    patient=5.0,
    patient_x_tuning=3.0,
    adapter_run=1.5,
    residual=4.0,
    source="documented defaults (cbtflow.stats.power.DEFAULT_SDS; not measured)",
)


def headline_variance_df(n_profiles: int, n_runs: int, sds: VarianceAssumptions) -> tuple[float, float]:
    """Var(τ̂) and the Satterthwaite df the headline's closed form expects for a design:
    expected mean squares of the (profile, seed) differences."""
    if n_profiles < 2 or n_runs < 2:
        raise ValueError("the generalising headline needs at least 2 profiles and 2 seeds")
    P, S = n_profiles, n_runs
    noise = 2 * sds.residual**2  # a difference of two transcripts' scores
    ms_p, ms_s = noise + S * sds.patient_x_tuning**2, noise + P * sds.adapter_run**2
    combined = ms_p + ms_s - noise
    df = combined**2 / (ms_p**2 / (P - 1) + ms_s**2 / (S - 1) + noise**2 / ((P - 1) * (S - 1)))
    return combined / (P * S), float(df)


def headline_power(
    effect: float,
    n_profiles: int,
    n_runs: int,
    sds: VarianceAssumptions,
    alpha: float = 0.05,
    draws: int = 20000,
    seed: int = 0,
) -> dict[str, float]:
    """Two-sided power of the headline as the analysis runs it: simulated (profile, seed)
    differences through its closed form, the conservative fallback included (a design whose
    run variance is small often falls back, and the noncentral t would overstate its power).
    Also the df and SE the closed form expects. With one seed, the paired t on profile
    means, which generalises over patients only."""
    if n_runs < 2:
        sd = math.sqrt(sds.patient_x_tuning**2 + 2 * sds.residual**2)
        se = sd / math.sqrt(n_profiles)
        return {
            "power": paired_power(n_profiles, effect / sd, alpha),
            "df": n_profiles - 1.0,
            "se": se,
            "fallback": 0.0,
        }
    from cbtflow.stats.generalising import closed_form

    rng = np.random.default_rng(seed)
    d = (
        effect
        + rng.normal(0, sds.patient_x_tuning, (draws, n_profiles, 1))
        + rng.normal(0, sds.adapter_run, (draws, 1, n_runs))
        + rng.normal(0, math.sqrt(2) * sds.residual, (draws, n_profiles, n_runs))
    )
    fit = closed_form(d)
    p = 2 * stats.t.sf(np.abs(fit["estimate"] / np.sqrt(fit["variance"])), fit["df"])
    variance, df = headline_variance_df(n_profiles, n_runs, sds)
    return {
        "power": float(np.mean(p < alpha)),
        "df": df,
        "se": math.sqrt(variance),
        "fallback": float(np.mean(fit["fallback"] > 0)),
    }


def noncentral_t_power(
    effect: float, n_profiles: int, n_runs: int, sds: VarianceAssumptions, alpha: float = 0.05
) -> float:
    """The noncentral-t approximation at the expected df (no fallback): a cross-check."""
    variance, df = headline_variance_df(n_profiles, n_runs, sds)
    critical = stats.t.ppf(1 - alpha / 2, df)
    nc = effect / math.sqrt(variance)
    return float(stats.nct.sf(critical, df, nc) + stats.nct.cdf(-critical, df, nc))


def from_pilot(path: str | Path, judge: str | None = None) -> VarianceAssumptions:
    """The sds a pilot measured: the headline's variance components (the mean over models of
    cbt vs instruct, a negative moment estimate counted as 0) and the mixed model's patient
    component. Fails naming the file and key when the pilot has none."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"--pilot {path}: cannot read a stats.json ({err})") from err
    judges = document.get("judges") or {}
    judge = judge or document.get("primary_judge") or next(iter(judges), None)
    if judge not in judges:
        raise ValueError(f"--pilot {path}: no judge {judge!r} under 'judges' (has {sorted(judges)})")
    blocks = [
        block["variance_components"]
        for model, block in (judges[judge].get("primary", {}).get("cbt_vs_instruct") or {}).items()
        if model != "_pooled" and block.get("variance_components")
    ]
    if not blocks:
        raise ValueError(
            f"--pilot {path}: judges.{judge}.primary.cbt_vs_instruct has no variance_components "
            "(the pilot needs two or more seeds and cbt and instruct)"
        )

    def sd(name: str, scale: float = 1.0) -> float:
        return math.sqrt(max(0.0, sum(b.get(name, 0.0) for b in blocks) / len(blocks)) * scale)

    patient = (judges[judge].get("mixed_model") or {}).get("variance_components", {}).get("profile")
    return VarianceAssumptions(
        patient=math.sqrt(max(0.0, patient)) if patient is not None else DEFAULT_SDS.patient,
        patient_x_tuning=sd("patient_x_tuning"),
        adapter_run=sd("adapter_run"),
        residual=sd("residual", 0.5),  # the differences' residual holds two transcripts' noise
        source=f"pilot {path} (judge {judge}, {len(blocks)} model(s))",
    )


def planning_rows(
    n_profiles: int, n_runs: int, sds: VarianceAssumptions, effect: float, alpha: float = 0.05
) -> list[dict[str, Any]]:
    """The configured design, and what one more seed buys against one (or five) more profiles."""
    designs = [
        ("configured", n_profiles, n_runs),
        ("+1 seed", n_profiles, n_runs + 1),
        ("+1 profile", n_profiles + 1, n_runs),
        ("+5 profiles", n_profiles + 5, n_runs),
        ("+2 seeds", n_profiles, n_runs + 2),
    ]
    rows = []
    for label, p, s in designs:
        result = headline_power(effect, p, s, sds, alpha)
        generalises = "patients, training runs" if s >= 2 else "patients only (one seed)"
        rows.append({"design": label, "profiles": p, "seeds": s, **result, "generalises_over": generalises})
    return rows


def format_planning(rows: list[dict[str, Any]], sds: VarianceAssumptions, effect: float) -> str:
    lines = [
        f"Power of the headline (cbt − instruct = {effect:g} points, two-sided alpha 0.05) from sds: "
        f"patient {sds.patient:.2f} (cancels in the paired difference), patient x tuning {sds.patient_x_tuning:.2f}, "
        f"adapter run {sds.adapter_run:.2f}, residual {sds.residual:.2f}; source: {sds.source}.",
        "Power is simulated through the analysis' own test (20,000 studies; 'fallback' is the share that use the "
        "conservative fallback); SE and df are what the closed form expects.",
        "",
        f"{'design':<12} {'profiles':>8} {'seeds':>5} {'SE':>7} {'df':>7} {'power':>6} {'fallback':>8}  "
        "generalises over",
    ]
    for r in rows:
        lines.append(
            f"{r['design']:<12} {r['profiles']:>8} {r['seeds']:>5} {r['se']:>7.3f} {r['df']:>7.1f} "
            f"{r['power']:>6.3f} {r['fallback']:>8.2f}  {r['generalises_over']}"
        )
    return "\n".join(lines)
