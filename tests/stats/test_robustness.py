"""The robustness matrix and judge-human agreement on hand-built data with known τ and κ."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cbtflow.stats.agreement import human_agreement
from cbtflow.stats.robustness import robustness_matrix


def _totals(effects_by_setup: dict[tuple[str, str], list[float]], profiles: range, noise: float = 0.1) -> pd.DataFrame:
    """Transcript totals: for (judge, style) setups, model k's cbt − instruct effect is
    ``effects[k]`` for each of ``profiles`` (plus small noise), over two seeds."""
    rng = np.random.default_rng(3)
    rows = []
    for (judge, style), effects in effects_by_setup.items():
        for p in profiles:
            for k, effect in enumerate(effects):
                for seed in (1, 2):
                    base = 20 + rng.normal(0, 2)
                    for condition, score in (("instruct", base), ("cbt", base + effect + rng.normal(0, noise))):
                        rows.append(
                            dict(
                                judge=judge,
                                style=style,
                                model=f"m{k}",
                                condition=condition,
                                seed=seed,
                                profile=f"p{p:02d}",
                                score=score,
                            )
                        )
    return pd.DataFrame(rows)


def test_two_judges_who_swap_two_middle_models_agree_with_tau_two_thirds():
    totals = pd.concat(
        [
            _totals({("A", "plain"): [1, 2, 3, 4]}, range(12)),
            _totals({("B", "plain"): [10, 30, 20, 40]}, range(12)),  # another scale, one swapped pair
        ]
    )
    result = robustness_matrix(totals, primary_judge="A")
    assert result["ran"] and set(result["setups"]) == {"judge A", "judge B"}, "one style: no style setups"
    a = result["setups"]["judge A"]["by_model"]
    assert a["m2"]["effect"] == pytest.approx(3, abs=0.1) and a["m2"]["n_units"] == 12
    assert a["m2"]["ci95"][0] < 3 < a["m2"]["ci95"][1]
    assert result["setups"]["judge B"]["by_model"]["m3"]["effect"] == pytest.approx(40, abs=0.2)
    (pair,) = result["ranking_agreement"]
    assert pair["family"] == "judge" and pair["n_models"] == 4
    assert pair["tau"] == pytest.approx(4 / 6)  # 5 concordant, 1 discordant pair of 6
    low, high = pair["ci95"]
    assert low - 1e-9 <= 4 / 6 <= high + 1e-9 and low > 0


def test_styles_under_the_primary_judge_that_reverse_the_ranking_give_tau_minus_one():
    totals = pd.concat(
        [
            _totals({("A", "plain"): [1, 2, 3, 4]}, range(0, 6)),
            _totals({("A", "upset"): [4, 3, 2, 1]}, range(6, 12)),
            _totals({("B", "plain"): [1, 2, 3, 4]}, range(0, 6)),
            _totals({("B", "upset"): [1, 2, 3, 4]}, range(6, 12)),
        ]
    )
    result = robustness_matrix(totals, primary_judge="A")
    assert {"patient style plain", "patient style upset"} <= set(result["setups"])
    styles = next(r for r in result["ranking_agreement"] if r["family"] == "patient style")
    assert styles["tau"] == pytest.approx(-1.0) and styles["ci95"][1] < 0
    pooled = result["setups"]["judge A"]["by_model"]  # the styles cancel out: 2.5 for every model
    assert all(pooled[m]["effect"] == pytest.approx(2.5, abs=0.15) for m in pooled)


def test_one_judge_and_one_style_is_a_stated_skip():
    result = robustness_matrix(_totals({("A", "plain"): [1, 2]}, range(4)), primary_judge="A")
    assert result["ran"] is False and "two judges" in result["reason"]


def test_judge_human_kappa_and_confusion_matrix_by_hand():
    """Human 0,1,2,2 vs judge 0,1,2,1 on a 0-2 item: quadratic-weighted κ = 1 − (1/16)/(5/16) = 0.8."""
    rows = []
    for i, (human, judge) in enumerate(zip([0, 1, 2, 2], [0, 1, 2, 1])):
        key = dict(model="m", condition="cbt", seed=1, profile=f"p{i}", item="agenda")
        rows += [{**key, "judge": "human:r1", "score": human}, {**key, "judge": "llm", "score": judge}]
    entry = human_agreement(pd.DataFrame(rows))["by_judge"]["llm"]["human:r1"]
    assert entry["kappa_quadratic"]["agenda"]["kappa"] == pytest.approx(0.8)
    assert entry["confusion"] == {"labels": [0, 1, 2], "counts": [[1, 0, 0], [0, 1, 0], [0, 1, 1]]}
