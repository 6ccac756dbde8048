"""Slope intervals from the bootstrap over whole replicates cover at their nominal level."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxkl.distributions import Normal
from jaxkl.estimators.monte_carlo import per_sample_kl
from jaxkl.study.bootstrap import (
    bootstrap_counts,
    bootstrap_mse,
    bootstrap_slope,
    loglog_slope,
    paired_ratio,
)

# The study's regime: B = 1000 resamples of R whole replicates, every N a prefix of one
# draw per replicate. The default study has R = 1000 (k-NN: 200); the fast test uses
# R = 200 (the cost is B·R per study), the slow one R = 1000.
RESAMPLES = 1000
SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
MIN_N = 16


def _k1_prefix_means(key, studies, replicates):
    """k1 estimates of KL(N(0,1)‖N(1,1)) at every N of SIZES, each a prefix of one draw of
    256 per replicate (as the study does): ``[studies, R, J]``."""
    q, p = Normal(0.0, 1.0), Normal(1.0, 1.0)

    def one(k):
        x = q.sample(k, (replicates, SIZES[-1]))
        terms = per_sample_kl(q.log_prob(x), p.log_prob(x), "k1")
        csum = jnp.cumsum(terms, axis=1)
        idx = jnp.asarray(SIZES) - 1
        return csum[:, idx] / jnp.asarray(SIZES, terms.dtype)[None, :]

    # Studies in blocks of 50 per call: one compile, few dispatches, bounded memory.
    many = jax.jit(jax.vmap(one))
    keys = jax.random.split(key, studies)
    return np.concatenate([np.asarray(many(keys[i : i + 50])) for i in range(0, studies, 50)])


def _coverage(studies, seed, replicates):
    """Share of independent small studies whose 95 % interval for the variance slope
    holds the truth, −1 (k1's terms are i.i.d. with finite variance: Var ∝ 1/N exactly)."""
    values = _k1_prefix_means(jax.random.key(seed), studies, replicates)
    rng = np.random.default_rng(seed)
    hits = 0
    for v in values:
        counts = bootstrap_counts(replicates, RESAMPLES, rng)
        s = bootstrap_slope(SIZES, v, counts, truth=0.5, min_n=MIN_N)["variance"]
        hits += s["lo"] <= -1.0 <= s["hi"]
    return hits / studies


def _check(coverage, studies):
    se = math.sqrt(0.95 * 0.05 / studies)
    # The 93–97 % is ±3 SE of the coverage at 1000 studies (SE 0.0069).
    assert abs(coverage - 0.95) < 3 * se, (coverage, se)


def test_variance_slope_interval_covers_minus_one():
    studies = 1000
    _check(_coverage(studies, seed=0, replicates=200), studies)


@pytest.mark.slow
def test_variance_slope_interval_covers_minus_one_study_sized():
    studies = 2000
    _check(_coverage(studies, seed=1, replicates=1000), studies)


def test_ordinary_least_squares_interval_undercovers():
    """The check above can fail: the OLS interval that treats the N as independent points
    (what the study used before) covers −1 far less often on the same prefix draws."""
    from scipy import stats

    studies, replicates = 300, 200
    values = _k1_prefix_means(jax.random.key(2), studies, replicates)
    keep = np.asarray(SIZES) >= MIN_N
    x = np.log(np.asarray(SIZES, np.float64)[keep])
    xc = x - x.mean()
    t = stats.t.ppf(0.975, x.size - 2)
    hits = 0
    for v in values:
        z = np.log(v.var(axis=0, ddof=1)[keep])
        slope = np.sum(xc * (z - z.mean())) / np.sum(xc * xc)
        resid = z - z.mean() - slope * xc
        se = math.sqrt(np.sum(resid**2) / (x.size - 2) / np.sum(xc * xc))
        hits += abs(slope + 1.0) <= t * se
    coverage = hits / studies
    assert coverage + 3 * math.sqrt(0.95 * 0.05 / studies) < 0.93, coverage


def test_counts_are_resamples_of_whole_replicates():
    counts = bootstrap_counts(50, 200, np.random.default_rng(0))
    assert counts.shape == (200, 50)
    np.testing.assert_array_equal(counts.sum(axis=1), 50)
    # each replicate is drawn once per resample on average
    assert abs(counts.mean() - 1.0) < 1e-12


def test_loglog_slope():
    assert float(loglog_slope([1, 10, 100], np.array([2.0, 0.2, 0.02]))) == -1.0
    assert math.isnan(float(loglog_slope([1, 10, 100], np.array([1.0, 0.0, 1.0]))))
    assert math.isnan(float(loglog_slope([1, 10], np.array([1.0, 0.1]))))


def test_mse_interval_covers_the_true_mse():
    """Across independent sets of R normal estimates with known MSE (bias² + var), the
    bootstrap 95 % interval holds it at the nominal rate (±3 SE of that rate)."""
    rng = np.random.default_rng(3)
    trials, r = 400, 400
    truth, bias, sd = 0.0, 0.3, 1.0
    true_mse = bias**2 + sd**2
    counts = bootstrap_counts(r, 1000, rng)
    hits = 0
    for _ in range(trials):
        v = rng.normal(truth + bias, sd, size=(r, 1))
        lo, hi = bootstrap_mse(v, counts, truth)
        hits += lo[0] <= true_mse <= hi[0]
    cov = hits / trials
    assert abs(cov - 0.95) < 3 * math.sqrt(0.95 * 0.05 / trials), cov


def test_paired_ratio_se_matches_its_spread():
    """The delta-method SE of mean(a)/mean(b) for paired samples agrees with the spread of
    the ratio over independent repetitions (within the sampling error of an SD)."""
    rng = np.random.default_rng(4)
    reps, r = 2000, 500
    ratios, ses = [], []
    for _ in range(reps):
        z = rng.normal(size=r)
        a = (0.7 * z + 0.3 * rng.normal(size=r)) ** 2
        b = z**2
        ratio, se = paired_ratio(a, b)
        ratios.append(ratio)
        ses.append(se)
    spread = np.std(ratios, ddof=1)
    # the SD of `reps` normal values has relative SE 1/√(2·reps)
    assert abs(np.mean(ses) / spread - 1.0) < 3 / math.sqrt(2 * reps)
