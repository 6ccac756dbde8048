"""Gamma-family KL in float64: tight agreement with quadrature, gradients against finite
differences, near-equality against the Fisher quadratic form, and continuity across the
kernels' internal branch switches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

import jaxkl
from tests._subset import slow_except
from tests.analytic.test_gamma_family import (
    beta_quad_kl,
    positive_quad_kl,
    random_positive,
    textbook_dirichlet,
    textbook_gamma,
)

ORACLE_PAIRS = {
    (jaxkl.Gamma, jaxkl.Gamma),
    (jaxkl.Exponential, jaxkl.Exponential),
    (jaxkl.Exponential, jaxkl.Gamma),
    (jaxkl.Gamma, jaxkl.Exponential),
    (jaxkl.Beta, jaxkl.Beta),
}

# Quadrature in float64 is good to ~1e-10 relative; the kernels to ~1e-13.
RTOL = 1e-8


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


_RNG = np.random.default_rng(64)
# Concentrations from 0.1 (densities diverging at 0) to 300 (sharply peaked).
GAMMA_PAIRS = [
    (*random_positive(_RNG, 0.1, 300.0, 2), *random_positive(_RNG, 0.05, 20.0, 2)) for _ in range(4)
]
BETA_PAIRS = [tuple(random_positive(_RNG, 0.1, 300.0, 4)) for _ in range(4)]


@pytest.mark.parametrize("params", GAMMA_PAIRS)
def test_gamma_and_exponential_pairs_match_quadrature(params):
    c_a, c_b, r_a, r_b = params
    gam_a, gam_b = stats.gamma(c_a, scale=1 / r_a), stats.gamma(c_b, scale=1 / r_b)
    exp_a, exp_b = stats.expon(scale=1 / r_a), stats.expon(scale=1 / r_b)
    cases = [
        (jaxkl.Gamma(c_a, r_a), jaxkl.Gamma(c_b, r_b), gam_a, gam_b),
        (jaxkl.Gamma(c_b, r_b), jaxkl.Gamma(c_a, r_a), gam_b, gam_a),
        (jaxkl.Exponential(r_a), jaxkl.Exponential(r_b), exp_a, exp_b),
        (jaxkl.Exponential(r_a), jaxkl.Gamma(c_b, r_b), exp_a, gam_b),
        (jaxkl.Gamma(c_b, r_b), jaxkl.Exponential(r_a), gam_b, exp_a),
    ]
    for a, b, sa, sb in cases:
        got = jaxkl.kl(a, b)
        assert got.dtype == jnp.float64
        np.testing.assert_allclose(got, positive_quad_kl(sa, sb), rtol=RTOL, err_msg=repr((a, b)))


@pytest.mark.parametrize("params", BETA_PAIRS)
def test_beta_matches_quadrature_both_directions(params):
    a1, a0, b1, b0 = params
    for p, q in [((a1, a0), (b1, b0)), ((b1, b0), (a1, a0))]:
        got = jaxkl.kl(jaxkl.Beta(*p), jaxkl.Beta(*q))
        np.testing.assert_allclose(got, beta_quad_kl(*p, *q), rtol=RTOL)


def test_dirichlet_matches_textbook_where_it_is_well_conditioned():
    rng = np.random.default_rng(5)
    a, b = random_positive(rng, 0.2, 20.0, (50, 4)), random_positive(rng, 0.2, 20.0, (50, 4))
    np.testing.assert_allclose(jaxkl.analytic.dirichlet(a, b), textbook_dirichlet(a, b), rtol=1e-11)


# ------------------------------------------------------------------ gradients
def _central_differences(f, x, rel=1e-6):
    x = np.asarray(x, np.float64)
    out = np.empty_like(x)
    for i in range(x.size):
        h = rel * abs(x.flat[i])
        up, down = x.copy(), x.copy()
        up.flat[i] += h
        down.flat[i] -= h
        out.flat[i] = (float(f(jnp.asarray(up))) - float(f(jnp.asarray(down)))) / (2 * h)
    return out


GRAD_CASES = {
    "gamma": (lambda p: jaxkl.analytic.gamma(*p), [0.7, 2.0, 3.1, 0.5]),
    "gamma_near": (lambda p: jaxkl.analytic.gamma(*p), [30.0, 2.0, 31.0, 2.1]),
    "gamma_large": (lambda p: jaxkl.analytic.gamma(*p), [300.0, 2.0, 500.0, 3.0]),
    "exponential": (lambda p: jaxkl.analytic.exponential(*p), [0.7, 2.0]),
    "exponential_gamma": (lambda p: jaxkl.analytic.exponential_gamma(*p), [0.7, 2.0, 3.0]),
    "gamma_exponential": (lambda p: jaxkl.analytic.gamma_exponential(*p), [0.4, 2.0, 3.0]),
    "beta": (lambda p: jaxkl.analytic.beta(*p), [0.4, 2.0, 3.0, 1.5]),
    "beta_near": (lambda p: jaxkl.analytic.beta(*p), [40.0, 20.0, 41.0, 19.5]),
    "dirichlet": (
        lambda p: jaxkl.analytic.dirichlet(p[:3], p[3:]),
        [0.4, 2.0, 15.0, 3.0, 1.5, 12.0],
    ),
}


# Beta is Dirichlet's K = 2 kernel (one code path); the K = 3 Dirichlet case adds 6 s of
# compiling: --run-slow. exponential_gamma and gamma_exponential are gamma's kernel
# (_gamma_kl, its direct branch at these parameters, as at gamma's) with one concentration
# jnp.ones_like(...); every partial of that kernel is held to finite differences in float64
# in CI by test_gradient_matches_finite_differences[gamma] (and [gamma_near],
# [gamma_large]), and their float64 values to quadrature by
# test_gamma_and_exponential_pairs_match_quadrature. About 4 s of compiling: --run-slow.
@pytest.mark.parametrize(
    "name",
    slow_except(
        sorted(GRAD_CASES),
        sorted(GRAD_CASES),
        keep=set(GRAD_CASES) - {"dirichlet", "exponential_gamma", "gamma_exponential"},
    ),
)
def test_gradient_matches_finite_differences(name):
    f, p = GRAD_CASES[name]
    p = jnp.asarray(p, jnp.float64)
    g = np.asarray(jax.grad(f)(p))
    np.testing.assert_allclose(g, _central_differences(f, p), rtol=1e-6, atol=1e-9)


# ------------------------------------------------------------------ near equality
# At a relative perturbation ε the KL is ½ δᵀ F δ (F the Fisher information) up to a
# relative O(ε); with ε = 1e-6 the KL is ~1e-12, far below the ~1e-15 absolute rounding
# of the textbook form's log Γ terms, which therefore fails here by orders of magnitude.
EPS = 1e-6


@pytest.mark.parametrize("conc, rate", [(0.2, 3.0), (5.0, 0.5), (2e3, 40.0)])
def test_gamma_near_equality_matches_fisher_form(conc, rate):
    delta = EPS * np.array([conc * 0.8, -rate * 0.6])
    fisher = np.array([[special.polygamma(1, conc), -1 / rate], [-1 / rate, conc / rate**2]])
    expected = 0.5 * delta @ fisher @ delta
    got = float(jaxkl.analytic.gamma(conc, rate, conc + delta[0], rate + delta[1]))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


# K = 3 compiles a program of its own; K = 2 (Beta too) and K = 4 (concentrations on both
# sides of the Stirling threshold, as K = 3's) run in CI: --run-slow.
@pytest.mark.parametrize(
    "conc",
    [[0.2, 0.5], pytest.param([3.0, 40.0, 7.0], marks=pytest.mark.slow), [2e3, 5e3, 1e3, 0.3]],
)
def test_dirichlet_near_equality_matches_fisher_form(conc):
    a = np.asarray(conc)
    delta = EPS * a * np.cos(np.arange(a.size) + 0.5)
    fisher = np.diag(special.polygamma(1, a)) - special.polygamma(1, a.sum())
    expected = 0.5 * delta @ fisher @ delta
    np.testing.assert_allclose(float(jaxkl.analytic.dirichlet(a, a + delta)), expected, rtol=1e-5)
    if a.size == 2:
        got = float(jaxkl.analytic.beta(a[0], a[1], a[0] + delta[0], a[1] + delta[1]))
        np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_exponential_near_equality_matches_fisher_form():
    rate = 3.0
    delta = EPS * rate
    expected = 0.5 * delta**2 / rate**2
    got = float(jaxkl.analytic.exponential(rate, rate + delta))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


# ------------------------------------------------------------------ branch switches
# Internally R(a, b) switches from quadrature to closed forms at |b − a| = a/4 and to the
# Stirling series at a, b ≥ 10. On both sides of each switch the value must agree with
# the textbook form, which is well conditioned at these points (KL of order 0.01–1).
SWITCH_POINTS = [
    (12.0, 12.0 * 1.25),  # |d| = a/4 with both ≥ 10
    (4.0, 4.0 * 1.25),  # |d| = a/4 below 10
    (10.0, 30.0),  # a at the Stirling threshold
    (40.0, 10.0),  # b at the Stirling threshold
]


@pytest.mark.parametrize("a, b", SWITCH_POINTS)
def test_continuity_across_branch_switches(a, b):
    for fa in (1 - 1e-9, 1.0, 1 + 1e-9):
        for fb in (1 - 1e-9, 1.0, 1 + 1e-9):
            ca, cb = a * fa, b * fb
            np.testing.assert_allclose(
                float(jaxkl.analytic.gamma(ca, 1.3, cb, 0.9)),
                textbook_gamma(ca, 1.3, cb, 0.9),
                rtol=1e-12,
            )
            conc_a, conc_b = np.array([ca, 2.0, 0.7]), np.array([cb, 2.5, 0.6])
            np.testing.assert_allclose(
                float(jaxkl.analytic.dirichlet(conc_a, conc_b)),
                textbook_dirichlet(conc_a, conc_b),
                rtol=1e-11,
            )
