import pytest
from statsmodels.stats.power import TTestPower
from workspace import ROOT

from cbtflow.stats.power import difference_sd, eval_profiles_needed, paired_power, paired_sample_size


@pytest.mark.parametrize("n, dz, alpha", [(10, 0.5, 0.05), (33, 0.511, 0.05), (50, 0.2, 0.01), (8, 1.2, 0.1)])
def test_power_matches_statsmodels(n, dz, alpha):
    assert paired_power(n, dz, alpha) == pytest.approx(
        TTestPower().power(dz, n, alpha, alternative="two-sided"), abs=1e-9
    )


@pytest.mark.parametrize("dz", [0.3, 0.511, 0.8])
def test_sample_size_is_the_smallest_n_statsmodels_agrees_on(dz):
    n = paired_sample_size(dz)
    assert n == pytest.approx(TTestPower().solve_power(dz, alpha=0.05, power=0.8), abs=1)
    assert paired_power(n, dz) >= 0.8 > paired_power(n - 1, dz)


def test_paper_eval_set_size():
    plan = eval_profiles_needed(difference=5, sd=9.79, correlation=0.5)
    assert plan["sd_difference"] == pytest.approx(9.79) and plan["dz"] == pytest.approx(0.5107, abs=1e-4)
    assert plan["pairs"] == 33

    import yaml

    paper = yaml.safe_load((ROOT / "experiments/paper.yaml").read_text())
    assert paper["profiles"]["eval"] == plan["pairs"]
    assert difference_sd(10, 0.0) == pytest.approx(10 * 2**0.5)
    with pytest.raises(ValueError):
        paired_sample_size(0)


def test_headline_power_matches_simulated_studies():
    """The planned power of the generalising headline against its rejection rate on
    simulated studies with every variance source (closed form, fallback included)."""
    import numpy as np
    from scipy import stats as sps

    from cbtflow.stats.calibration import Design, studies
    from cbtflow.stats.generalising import closed_form
    from cbtflow.stats.power import VarianceAssumptions, headline_power, noncentral_t_power

    design = Design(n_profiles=33, seeds=4, response_sd=3.0, run_sd=1.5, noise_sd=2.0)
    sds = VarianceAssumptions(5.0, 3.0, 1.5, 2.0, "test")
    planned = headline_power(2.5, 33, 4, sds)["power"]
    totals = studies(np.random.default_rng(31), 3000, effect=2.5, design=design)
    wide = totals.pivot_table(index=["model", "profile", "seed"], columns="condition", values="score")
    d = (wide["cbt"] - wide["instruct"]).to_numpy().reshape(3000, 33, 4)
    fit = closed_form(d)
    p = 2 * sps.t.sf(np.abs(fit["estimate"] / np.sqrt(fit["variance"])), fit["df"])
    assert abs(np.mean(p < 0.05) - planned) < 0.05, f"simulated {np.mean(p < 0.05):.3f} vs planned {planned:.3f}"
    assert planned == pytest.approx(noncentral_t_power(2.5, 33, 4, sds), abs=0.05), "fallback is rare here"
    still = VarianceAssumptions(5.0, 3.0, 0.0, 2.0, "runs that never vary: the fallback is common")
    simulated = headline_power(2.5, 33, 2, still)
    assert simulated["fallback"] > 0.4 and simulated["power"] < noncentral_t_power(2.5, 33, 2, still) - 0.3


def test_one_seed_plans_the_conditional_test_and_seeds_buy_more_than_profiles():
    from cbtflow.stats.power import DEFAULT_SDS, headline_power, paired_power, planning_rows

    one = headline_power(5.0, 33, 1, DEFAULT_SDS)
    sd = (DEFAULT_SDS.patient_x_tuning**2 + 2 * DEFAULT_SDS.residual**2) ** 0.5
    assert one["power"] == pytest.approx(paired_power(33, 5.0 / sd))
    rows = {r["design"]: r for r in planning_rows(33, 3, DEFAULT_SDS, 5.0)}
    seed_gain = rows["+1 seed"]["power"] - rows["configured"]["power"]
    profile_gain = rows["+5 profiles"]["power"] - rows["configured"]["power"]
    assert seed_gain > profile_gain + 0.1, "with 3 seeds, a further seed buys more than five further profiles"
    assert rows["configured"]["generalises_over"] == "patients, training runs"


def test_pilot_sds_come_from_its_stats_json(tmp_path, capsys):
    import json

    import numpy as np

    from cbtflow import stats
    from cbtflow.cli import main
    from cbtflow.judge.scores import scores_table
    from cbtflow.stats.calibration import Design, studies
    from cbtflow.stats.power import from_pilot

    design = Design(n_profiles=60, seeds=6, response_sd=3.0, run_sd=2.0, noise_sd=2.0)
    totals = studies(np.random.default_rng(5), 2, effect=1.0, design=design)
    docs = [
        {
            "judge": "j",
            "model": f"m{r.model}",
            "condition": r.condition,
            "seed": int(r.seed),
            "profile_id": f"p{r.profile}",
            "items": {"x": {"score": 0.0}},
            "total": float(r.score),
            "percent": 0.0,
        }
        for r in totals.itertuples()
    ]
    pilot = tmp_path / "stats.json"
    pilot.write_text(json.dumps({"primary_judge": "j", **stats.analyse(scores_table(docs))}))
    sds = from_pilot(pilot)
    assert sds.patient_x_tuning == pytest.approx(3.0, rel=0.35) and sds.residual == pytest.approx(2.0, rel=0.2)
    assert 0.5 < sds.adapter_run < 4.5 and "pilot" in sds.source
    assert main(["estimate", "--configfile", str(ROOT / "config.yaml"), "--pilot", str(pilot)]) == 0
    out = capsys.readouterr().out
    assert "+1 seed" in out and f"source: pilot {pilot}" in out
    with pytest.raises(ValueError, match="no judge 'nobody'"):
        from_pilot(pilot, "nobody")
    assert main(["estimate", "--configfile", str(ROOT / "config.yaml"), "--pilot", str(tmp_path / "no.json")]) == 2


def test_paper_yaml_sizing_comment_follows_the_planning_output():
    import re

    import yaml

    from cbtflow.stats.power import DEFAULT_SDS, planning_rows

    text = (ROOT / "experiments/paper.yaml").read_text()
    paper = yaml.safe_load(text)
    rows = {r["design"]: r for r in planning_rows(paper["profiles"]["eval"], len(paper["seeds"]), DEFAULT_SDS, 5.0)}
    line = re.search(r"#\s+(\d+) profiles x (\d+) seeds: power ([\d.]+) \(df ([\d.]+)\).*\+1 seed: ([\d.]+)", text)
    assert line, "paper.yaml states the planned power"
    profiles, seeds, power, df, one_more_seed = line.groups()
    assert (int(profiles), int(seeds)) == (paper["profiles"]["eval"], len(paper["seeds"]))
    assert float(power) == pytest.approx(rows["configured"]["power"], abs=0.01)
    assert float(df) == pytest.approx(rows["configured"]["df"], abs=0.05)
    assert float(one_more_seed) == pytest.approx(rows["+1 seed"]["power"], abs=0.01)
