"""False-positive rate and power of the headline against the test conditional on the adapters.

Simulates studies with every variance source the headline generalises over
(``cbtflow.stats.calibration``: patients with their own response to tuning, sd 3; adapter
training runs that shift all their patients, sd ``run``; sampling noise, sd 2; 33 eval
profiles), for 2, 3 and 5 seeds, under the null and at a known effect, and applies both
tests through the library (the headline's vectorised closed form, its fallback included,
and the paired t on profile means); 'nct' is the noncentral-t power at the closed form's
expected df, which ignores the fallback. Prints a table and ends with
`headline_null_rejection_rate: N` for the issue's design (3 seeds, run sd 1.5).

    python bench/calibration.py [--studies 4000] [--effect 3.0]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import stats as sps

from cbtflow.stats.calibration import Design, studies
from cbtflow.stats.generalising import closed_form
from cbtflow.stats.paired import paired_t
from cbtflow.stats.power import VarianceAssumptions, noncentral_t_power


def differences(rng: np.random.Generator, n: int, effect: float, design: Design) -> np.ndarray:
    """studies × profiles × seeds table of cbt − instruct, paired by seed."""
    totals = studies(rng, n, effect, design)
    wide = totals.pivot_table(index=["model", "profile", "seed"], columns="condition", values="score")
    # Sorted by study, then profile, then seed: each study is one contiguous profiles × seeds block.
    return (wide["cbt"] - wide["instruct"]).to_numpy().reshape(n, design.n_profiles, design.seeds)


def rejection(d: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float]:
    """Headline and conditional rejection rates, and the headline's fallback share."""
    fit = closed_form(d)
    p = 2 * sps.t.sf(np.abs(fit["estimate"] / np.sqrt(fit["variance"])), fit["df"])
    conditional = paired_t(d.mean(-1))["p"]
    return float(np.mean(p < alpha)), float(np.mean(conditional < alpha)), float(np.mean(fit["fallback"] > 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=4000)
    parser.add_argument("--effect", type=float, default=3.0)
    args = parser.parse_args()
    rng = np.random.default_rng(20261202)
    print(
        f"{args.studies} simulated studies per row; 33 profiles, patient × tuning sd 3, noise sd 2; "
        f"power at cbt − instruct = {args.effect:g}"
    )
    print(
        f"{'seeds':>5} {'run sd':>6} | {'null: headline':>14} {'conditional':>11} {'fallback':>8} | "
        f"{'power: headline':>15} {'nct':>7} {'conditional':>11}"
    )
    headline_null = None
    for seeds in (2, 3, 5):
        for run_sd in (0.0, 1.5, 3.0):
            design = Design(seeds=seeds, run_sd=run_sd)
            null_h, null_c, fallback = rejection(differences(rng, args.studies, 0.0, design))
            power_h, power_c, _ = rejection(differences(rng, args.studies, args.effect, design))
            sds = VarianceAssumptions(design.patient_sd, design.response_sd, run_sd, design.noise_sd, "bench")
            planned = noncentral_t_power(args.effect, design.n_profiles, seeds, sds)
            print(
                f"{seeds:>5} {run_sd:>6.1f} | {null_h:>14.3f} {null_c:>11.3f} {fallback:>8.3f} | "
                f"{power_h:>15.3f} {planned:>7.3f} {power_c:>11.3f}"
            )
            if seeds == 3 and run_sd == 1.5:
                headline_null = null_h
    print(f"headline_null_rejection_rate: {headline_null:.4f}")


if __name__ == "__main__":
    main()
