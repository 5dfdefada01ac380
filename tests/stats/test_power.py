import pytest
from statsmodels.stats.power import TTestPower
from workspace import ROOT

from cbtflow.power import difference_sd, eval_profiles_needed, paired_power, paired_sample_size


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
