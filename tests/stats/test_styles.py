"""The tuning effect by patient style: per-style estimates, and tests of whether the effect
depends on the style, calibrated on null data (the profile is the unit)."""

import numpy as np
import pandas as pd

from cbtflow.report.sections.styles import style_lines
from cbtflow.stats.styles import style_interaction

STYLES = ("plain", "upset", "reserved")


def totals(rng, effect_by_style, models=("a",), per_style=8, seeds=(1, 2), noise=2.0):
    """Totals rows: a patient level per profile, a tuning effect set by the style (and model)."""
    rows = []
    for s_index, style in enumerate(STYLES):
        for k in range(per_style):
            profile = f"eval-{s_index:02d}{k:02d}"
            level = rng.normal(30, 5)
            own = rng.normal(0, 1)
            for model in models:
                effect = effect_by_style(model, style)
                for seed in seeds:
                    for condition, shift in (("instruct", 0.0), ("cbt", effect + own)):
                        rows.append(
                            {
                                "model": model,
                                "profile": profile,
                                "style": style,
                                "seed": seed,
                                "condition": condition,
                                "score": level + shift + rng.normal(0, noise),
                            }
                        )
    return pd.DataFrame(rows)


def test_per_style_effects_are_recovered_and_a_real_dependence_is_found():
    rng = np.random.default_rng(1)
    truth = {"plain": 3.0, "upset": 3.0, "reserved": 0.0}
    result = style_interaction(totals(rng, lambda m, s: truth[s], per_style=12))
    cells = result["by_model"]["a"]["by_style"]
    for style, value in truth.items():
        lo, hi = cells[style]["ci95"]
        assert lo < value < hi and cells[style]["n_units"] == 12
    assert result["by_model"]["a"]["condition_by_style"]["p"] < 0.01
    assert result["model_by_style"] == {"ran": False, "reason": "one model"}


def test_the_style_test_keeps_its_false_positive_rate_on_null_data():
    rng = np.random.default_rng(2)
    p = [
        style_interaction(totals(rng, lambda m, s: 2.0, per_style=6))["by_model"]["a"]["condition_by_style"]["p"]
        for _ in range(300)
    ]
    rate = float(np.mean(np.array(p) < 0.05))
    assert 0.02 <= rate <= 0.09, rate


def test_model_by_style_is_tested_when_two_models_share_the_profiles():
    rng = np.random.default_rng(3)
    truth = {("a", "reserved"): 0.0}
    table = totals(rng, lambda m, s: truth.get((m, s), 3.0), models=("a", "b"), per_style=10)
    result = style_interaction(table)
    assert result["model_by_style"]["ran"] and result["model_by_style"]["p"] < 0.05
    assert result["model_by_style"]["n_profiles"] == 30
    lines = "\n".join(style_lines(result))
    assert "| a | reserved |" in lines and "Model × style on the effect: F(" in lines


def test_one_style_or_too_few_profiles_give_a_stated_reason():
    rng = np.random.default_rng(4)
    one = totals(rng, lambda m, s: 1.0, per_style=3)
    one["style"] = "plain"
    assert style_interaction(one)["ran"] is False and "one patient style" in style_interaction(one)["reason"]
    few = totals(rng, lambda m, s: 1.0, per_style=1)
    block = style_interaction(few)["by_model"]["a"]["condition_by_style"]
    assert block["ran"] is False and "2 styles" in block["reason"]
