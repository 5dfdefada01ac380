"""Power of the paired t-test, for sizing an eval set before paying for it.

Written from the noncentral t distribution (not by calling statsmodels) so that the tests
can check it against statsmodels' power module independently.
"""

from __future__ import annotations

import math

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
