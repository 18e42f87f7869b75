"""Paired statistics over seeds: hand-computed differences, ratios, p-values and Holm's correction."""

import math

import pytest

from scenarios.reports.stats import holm, paired_difference, paired_ratio, t_quantile, t_two_sided_p


def test_paired_difference_by_hand():
    # differences 0.5, 0.8, 0.1: mean 0.4667, sd 0.3512, se 0.2028, t(2) 4.303
    d = paired_difference({0: 1.0, 1: 2.0, 2: 3.0, 7: 9.0}, {0: 0.5, 1: 1.2, 2: 2.9, 5: 1.0})
    assert d.n == 3  # seeds 5 and 7 have no partner
    sd = math.sqrt(((0.5 - 0.4 - 1 / 15) ** 2 + (0.8 - 0.4 - 1 / 15) ** 2 + (0.1 - 0.4 - 1 / 15) ** 2) / 2)
    assert d.mean == pytest.approx(1.4 / 3, abs=1e-12)
    assert d.half_width == pytest.approx(4.303 * sd / math.sqrt(3), rel=1e-9)
    assert d.p_value == pytest.approx(0.148, abs=1e-3)


def test_pairing_removes_the_shared_seed_effect():
    """Two methods that differ by exactly 0.01 on every seed, over seeds that differ by 10 points:
    unpaired, the interval is wide; paired, it is exact."""
    base = {s: 0.7 + 0.1 * (s % 3) for s in range(10)}
    better = {s: v + 0.01 for s, v in base.items()}
    d = paired_difference(better, base)
    assert d.mean == pytest.approx(0.01) and d.half_width == pytest.approx(0.0, abs=1e-12) and d.p_value == 0.0


def test_paired_ratio_is_a_geometric_mean_with_a_log_interval():
    r = paired_ratio({0: 1.0, 1: 2.0, 2: 4.0}, {0: 2.0, 1: 4.0, 2: 8.0})
    assert r.mean == pytest.approx(0.5) and r.low == pytest.approx(0.5) and r.high == pytest.approx(0.5)
    r = paired_ratio({0: 1.0, 1: 1.0}, {0: 2.0, 1: 0.5})  # log ratios -log 2, +log 2
    assert r.mean == pytest.approx(1.0)
    assert r.low == pytest.approx(math.exp(-12.706 * math.log(2))) and r.high == pytest.approx(math.exp(12.706 * math.log(2)))
    assert paired_ratio({0: 0.0, 1: 1.0}, {0: 1.0, 1: 1.0}).n == 1  # a zero has no log: left out


@pytest.mark.parametrize("dof", [1, 2, 5, 9, 29])
def test_p_value_at_the_tabulated_quantile_is_five_percent(dof):
    assert t_two_sided_p(t_quantile(dof), dof) == pytest.approx(0.05, abs=2e-4)


def test_p_value_edges():
    assert t_two_sided_p(0.0, 4) == 1.0 and t_two_sided_p(math.inf, 4) == 0.0
    assert t_two_sided_p(1.0, 1) == pytest.approx(0.5)  # Cauchy: P(|T| >= 1) = 1/2


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1 -> 0.03, 0.06, max(0.06, 0.04)
    assert holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": None}) == {"a": 0.03, "b": 0.06, "c": 0.06, "d": None}
    assert holm({"a": 0.6, "b": 0.9}) == {"a": 1.0, "b": 1.0}
