"""Ranking by 1/(MSE × seconds): bias counts, and a winner needs to be resolved."""

import math

import numpy as np

from jaxkl.study.ranking import rank_case, score
from jaxkl.study.timing import median_interval


def _entry(name, mse, lo, hi, sec, sec_lo=None, sec_hi=None):
    return {
        "estimator": name,
        "row": {"mse": mse, "mse_lo": lo, "mse_hi": hi},
        "timing": {"median": sec, "low": sec_lo or sec, "high": sec_hi or sec},
    }


def test_a_biased_low_variance_estimator_does_not_win():
    # k2-like: variance 1e-4 but bias 0.13 (MSE 0.0170); k1-like: unbiased, MSE 0.001.
    # By precision per second 1/(var·s) the biased one would win 10×; by 1/(MSE·s) it loses.
    biased = _entry("k2", 0.0170, 0.0165, 0.0175, 1e-5)
    unbiased = _entry("k1", 0.0010, 0.0009, 0.0011, 1e-5)
    result = rank_case([biased, unbiased])
    assert result["best"] == "k1" and result["resolved"]
    assert [r["estimator"] for r in result["ranked"]] == ["k1", "k2"]


def test_overlapping_intervals_are_not_resolved():
    a = _entry("a", 1.0, 0.9, 1.1, 1.0, 0.9, 1.1)
    b = _entry("b", 1.05, 0.95, 1.15, 1.0, 0.9, 1.1)
    result = rank_case([a, b])
    assert result["best"] is None and not result["resolved"]
    assert result["contenders"] == ["a", "b"]


def test_time_uncertainty_alone_can_leave_it_unresolved():
    a = _entry("a", 1.0, 0.99, 1.01, 1.0, 0.5, 3.0)  # noisy timing
    b = _entry("b", 1.0, 0.99, 1.01, 1.5, 1.4, 1.6)
    assert not rank_case([a, b])["resolved"]
    a = _entry("a", 1.0, 0.99, 1.01, 1.0, 0.95, 1.05)
    assert rank_case([a, b])["best"] == "a"


def test_untimed_estimators_are_not_ranked():
    e = _entry("a", 1.0, 0.9, 1.1, 1.0)
    e["timing"] = None
    assert math.isnan(score(e["row"], None)["score"])
    assert rank_case([e]) == {"ranked": [], "best": None, "resolved": False, "contenders": []}


def test_median_interval_covers_the_median():
    """The order-statistic interval of 9 repeats holds the population median in ≥ 95 % of
    trials (exactly 96.1 % for a continuous distribution), here a skewed one."""
    rng = np.random.default_rng(0)
    trials = 4000
    true_median = math.exp(0.0)  # lognormal(0, 1)
    hits = sum(
        lo <= true_median <= hi
        for lo, _, hi in (median_interval(rng.lognormal(0.0, 1.0, 9)) for _ in range(trials))
    )
    coverage = hits / trials
    exact = 1 - 2 * 10 / 512  # 1 − 2·P(Binomial(9, ½) ≤ 1)
    assert abs(coverage - exact) < 3 * math.sqrt(exact * (1 - exact) / trials), coverage
