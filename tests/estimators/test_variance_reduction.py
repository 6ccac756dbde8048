"""Antithetic, randomised-QMC and control-variate options of mc_kl: unbiased, honest SE."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxkl
from jaxkl.estimators.variance_reduction import lattice
from tests._subset import slow_except_grid
from tests.estimators.gaussian_pairs import GAUSSIAN_PAIRS

R, N = 400, 256

PAIRS = GAUSSIAN_PAIRS
OPTIONS = {
    "antithetic": {"antithetic": True},
    "qmc": {"qmc": True, "qmc_randomizations": 8},
    "control_variate": {"control_variate": True},
}


# One jitted function for every test, q and p its arguments (not constants of a fresh
# closure): replicates of the same families and option reuse one compiled program, e.g.
# antithetic on a Normal pair in test_unbiased_and_stderr_honest and
# test_each_option_reduces_variance_on_a_close_pair.
@functools.partial(jax.jit, static_argnames="options")
def _replicate(keys, q, p, options):
    return jax.vmap(lambda k: jaxkl.mc_kl(k, q, p, N, **dict(options)))(keys)


def _replicates(q, p, kw, key=0, r=R):
    keys = jax.random.split(jax.random.key(key), r)
    return _replicate(keys, q, p, options=tuple(sorted(kw.items())))


# CI runs a Latin square of the pair × option grid: each family and each option once, the
# control variate on the triangular pair (the most involved closed-form ratio moments) and
# RQMC's lattice in three dimensions. --run-slow runs the whole grid.
_HONEST_CI = {("normal", "antithetic"), ("mvn_diag", "qmc"), ("mvn_tril", "control_variate")}


@pytest.mark.parametrize("pair, option", slow_except_grid(PAIRS, OPTIONS, keep=_HONEST_CI))
def test_unbiased_and_stderr_honest(pair, option):
    q, p = PAIRS[pair]()
    est = _replicates(q, p, OPTIONS[option])
    v = np.asarray(est.value, np.float64)
    truth = float(jaxkl.kl(q, p))
    se = v.std(ddof=1) / np.sqrt(R)
    assert abs(v.mean() - truth) < 5 * se
    # The reported stderr matches the replicate spread: the ratio of mean squared stderr to
    # the replicate variance is 1 ± 5·(its SE); with R = 400 that SE is roughly √(2/R).
    ratio = np.mean(np.asarray(est.stderr, np.float64) ** 2) / v.var(ddof=1)
    assert abs(ratio - 1.0) < 5 * np.sqrt(2.0 / R), ratio
    assert np.all(est.num_samples == N)


def test_each_option_reduces_variance_on_a_close_pair():
    q, p = jaxkl.Normal(0.0, 1.0), jaxkl.Normal(0.1, 1.05)
    plain = np.asarray(_replicates(q, p, {}).value).var()
    for option, kw in OPTIONS.items():
        reduced = np.asarray(_replicates(q, p, kw).value).var()
        assert reduced < plain / 1.3, (option, plain, reduced)


def test_antithetic_is_exact_for_equal_scale_gaussians():
    # k1 = −log r is linear in x when the scales agree, and a pair average is constant.
    est = jaxkl.mc_kl(0, jaxkl.Normal(0.0, 1.0), jaxkl.Normal(1.0, 1.0), 64, antithetic=True)
    np.testing.assert_allclose(est.value, 0.5, atol=1e-6)


@pytest.mark.parametrize("option", ["antithetic", "qmc", "control_variate"])
def test_reparam_gradient_unbiased(option):
    p = jaxkl.Normal(0.5, 1.3)

    def value(theta, key):
        q = jaxkl.Normal(theta[0], jnp.exp(theta[1]))
        return jaxkl.mc_kl(key, q, p, N, **OPTIONS[option]).value

    theta = jnp.array([0.2, -0.1])
    grads = jax.vmap(jax.jit(jax.grad(value)), in_axes=(None, 0))(
        theta, jax.random.split(jax.random.key(3), R)
    )
    g = np.asarray(grads, np.float64)
    exact = jax.grad(lambda t: jaxkl.analytic.normal(t[0], jnp.exp(t[1]), p.loc, p.scale))(theta)
    se = g.std(0, ddof=1) / np.sqrt(R)
    assert np.all(np.abs(g.mean(0) - np.asarray(exact)) < 5 * se + 1e-7)


def test_lattice_is_a_rank1_lattice():
    pts = lattice(8, 2)
    assert pts.shape == (8, 2)
    # every coordinate of a rank-1 lattice with gcd(z_j, n) = 1 is a permutation of i/n
    for j in range(2):
        np.testing.assert_allclose(np.sort(pts[:, j]), np.arange(8) / 8)


@pytest.mark.parametrize(
    "q, kw, match",
    [
        (jaxkl.Gamma(2.0, 1.0), {"antithetic": True}, "symmetric about its mean"),
        (jaxkl.Normal(0.0, 1.0), {"antithetic": True, "num": 7}, "even num_samples"),
        (jaxkl.Laplace(0.0, 1.0), {"qmc": True}, "Gaussian q"),
        (jaxkl.Normal(0.0, 1.0), {"qmc": True, "num": 100, "qmc_randomizations": 16}, "multiple"),
        (jaxkl.Normal(0.0, 1.0), {"qmc": True, "qmc_randomizations": 1}, ">= 2"),
        (jaxkl.Normal(0.0, 1.0), {"qmc": True, "antithetic": True}, "not both"),
        (jaxkl.Normal(0.0, 1.0), {"control_variate": True, "estimator": "k3"}, "applies to"),
    ],
)
def test_bad_options(q, kw, match):
    kw = dict(kw)
    n = kw.pop("num", 64)
    with pytest.raises(ValueError, match=match):
        jaxkl.mc_kl(0, q, jaxkl.Normal(0.0, 2.0), n, **kw)


def test_lattice_generator_is_coprime_and_golden():
    import math

    from jaxkl.estimators.variance_reduction import korobov_generator

    for n in range(3, 200):
        a = korobov_generator(n)
        assert math.gcd(a, n) == 1
        # Every coordinate of the lattice takes n distinct values (no collapse).
        assert len(set(np.round(lattice(n, 2)[:, 1] * n).astype(int))) == n
    assert [korobov_generator(n) for n in (13, 21, 34, 55, 89)] == [8, 13, 21, 34, 55]
