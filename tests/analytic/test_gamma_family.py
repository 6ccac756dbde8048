"""Gamma-family KL (float32): quadrature / Monte Carlo oracles, precision near equality,
properties, transformations, errors on bad input.

Oracles use scipy.stats densities only. Densities with a concentration below 1 diverge
at the support's edge, so the 1-D integrals are taken in y = log x, where the integrand
is smooth and decays on both sides; Beta is split at ½ and the upper half mirrored
(Beta(a, b) at 1 − v is Beta(b, a) at v) so that both edges are approached in log space.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

import jaxkl
from tests._subset import slow_except
from tests.oracles import mc_kl, quad_kl

ORACLE_PAIRS = {
    (jaxkl.Gamma, jaxkl.Gamma),
    (jaxkl.Exponential, jaxkl.Exponential),
    (jaxkl.Exponential, jaxkl.Gamma),
    (jaxkl.Gamma, jaxkl.Exponential),
    (jaxkl.Beta, jaxkl.Beta),
    (jaxkl.Dirichlet, jaxkl.Dirichlet),
}

_TAIL = 1e-15  # probability mass left out at each end of the integrals


# ------------------------------------------------------------------ oracles (scipy only)
def positive_quad_kl(dist_a, dist_b) -> float:
    """KL between frozen scipy distributions on (0, ∞), integrated in y = log x."""
    lo = np.log(max(dist_a.ppf(_TAIL), 1e-300))
    hi = np.log(dist_a.isf(_TAIL))
    mid = float(np.log(dist_a.median()))
    return quad_kl(
        lambda y: dist_a.logpdf(np.exp(y)) + y,
        lambda y: dist_b.logpdf(np.exp(y)) + y,
        lo,
        hi,
        points=[mid] if lo < mid < hi else None,
    )


def _lower_half(a1, a0, b1, b0) -> float:
    """∫ over (0, ½] of Beta(a1, a0)·log(Beta(a1, a0)/Beta(b1, b0)), in y = log x."""
    dist_a, dist_b = stats.beta(a1, a0), stats.beta(b1, b0)
    lo = np.log(max(dist_a.ppf(_TAIL), 1e-300))
    hi = np.log(0.5)
    if lo >= hi:
        return 0.0
    return quad_kl(
        lambda y: dist_a.logpdf(np.exp(y)) + y, lambda y: dist_b.logpdf(np.exp(y)) + y, lo, hi
    )


def beta_quad_kl(a1, a0, b1, b0) -> float:
    return _lower_half(a1, a0, b1, b0) + _lower_half(a0, a1, b0, b1)


def dirichlet_mc_kl(conc_a, conc_b, n=400_000, seed=0):
    """(mean, standard error) of log a(x) − log b(x), x ~ Dirichlet(conc_a), by numpy."""
    return mc_kl(
        lambda rng, n: rng.dirichlet(conc_a, n),
        lambda x: stats.dirichlet.logpdf(x.T, conc_a),
        lambda x: stats.dirichlet.logpdf(x.T, conc_b),
        n=n,
        seed=seed,
    )


def textbook_gamma(ca, ra, cb, rb):
    """The textbook closed form in float64 scipy: a reference where it is well-conditioned."""
    return (
        (ca - cb) * special.digamma(ca)
        - special.gammaln(ca)
        + special.gammaln(cb)
        + cb * (np.log(ra) - np.log(rb))
        + ca * (rb - ra) / ra
    )


def textbook_dirichlet(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a0 = a.sum(-1)
    return (
        special.gammaln(a0)
        - special.gammaln(a).sum(-1)
        - special.gammaln(b.sum(-1))
        + special.gammaln(b).sum(-1)
        + ((a - b) * (special.digamma(a) - special.digamma(a0)[..., None])).sum(-1)
    )


def random_positive(rng, lo, hi, size):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


def f32(*xs):
    """Round to float32 and back, so float32 kernels and float64 oracles see equal inputs."""
    return [float(np.float32(x)) for x in xs]


# ------------------------------------------------------------------ against the oracles
_RNG = np.random.default_rng(20240601)
GAMMA_PAIRS = [
    tuple(f32(*random_positive(_RNG, 0.2, 20.0, 2), *random_positive(_RNG, 0.1, 10.0, 2)))
    for _ in range(5)
]
BETA_PAIRS = [tuple(f32(*random_positive(_RNG, 0.2, 20.0, 4))) for _ in range(5)]
# Float32 kernels against float64 oracles: a few float32 ulps of the log Γ terms.
RTOL, ATOL = 2e-5, 2e-6


@pytest.mark.parametrize("swap", [False, True], ids=["ab", "ba"])
@pytest.mark.parametrize("params", GAMMA_PAIRS)
def test_gamma_gamma_matches_quadrature(params, swap):
    c_a, c_b, r_a, r_b = params
    if swap:
        c_a, c_b, r_a, r_b = c_b, c_a, r_b, r_a
    got = jaxkl.kl(jaxkl.Gamma(c_a, r_a), jaxkl.Gamma(c_b, r_b))
    ref = positive_quad_kl(stats.gamma(c_a, scale=1 / r_a), stats.gamma(c_b, scale=1 / r_b))
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("params", GAMMA_PAIRS)
def test_exponential_pairs_match_quadrature(params):
    conc, _, r_a, r_b = params
    expon_a, expon_b = stats.expon(scale=1 / r_a), stats.expon(scale=1 / r_b)
    gam = stats.gamma(conc, scale=1 / r_b)
    cases = [
        (jaxkl.Exponential(r_a), jaxkl.Exponential(r_b), expon_a, expon_b),
        (jaxkl.Exponential(r_b), jaxkl.Exponential(r_a), expon_b, expon_a),
        (jaxkl.Exponential(r_a), jaxkl.Gamma(conc, r_b), expon_a, gam),
        (jaxkl.Gamma(conc, r_b), jaxkl.Exponential(r_a), gam, expon_a),
    ]
    for a, b, sa, sb in cases:
        np.testing.assert_allclose(
            jaxkl.kl(a, b), positive_quad_kl(sa, sb), rtol=RTOL, atol=ATOL, err_msg=repr((a, b))
        )


@pytest.mark.parametrize("swap", [False, True], ids=["ab", "ba"])
@pytest.mark.parametrize("params", BETA_PAIRS)
def test_beta_beta_matches_quadrature(params, swap):
    a1, a0, b1, b0 = params
    if swap:
        a1, a0, b1, b0 = b1, b0, a1, a0
    got = jaxkl.kl(jaxkl.Beta(a1, a0), jaxkl.Beta(b1, b0))
    np.testing.assert_allclose(got, beta_quad_kl(a1, a0, b1, b0), rtol=RTOL, atol=ATOL)


def test_quadrature_oracle_handles_edge_singularities():
    # The oracle itself must be right where the densities diverge at 0 and 1: compare
    # with closed forms that need no log Γ at all (Exponential = Gamma(1, ·); Beta(1, 1)
    # is uniform, so KL(U ‖ Beta(a, b)) = log B(a, b) + (a − 1) + (b − 1)).
    gamma_half = stats.gamma(0.3, scale=2.0)
    ref = positive_quad_kl(gamma_half, stats.expon())
    # KL(Gamma(α, β) ‖ Exp(1)) = −H(Gamma) + E[x] = −H + α/β.
    np.testing.assert_allclose(ref, -gamma_half.entropy() + 0.3 * 2.0, rtol=1e-9)
    a, b = 0.3, 0.45
    np.testing.assert_allclose(
        beta_quad_kl(1.0, 1.0, a, b), special.betaln(a, b) + (a - 1) + (b - 1), rtol=1e-9
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_dirichlet_matches_monte_carlo_both_directions(seed):
    rng = np.random.default_rng(100 + seed)
    conc_a = np.array(f32(*random_positive(rng, 0.5, 10.0, 3)))
    conc_b = np.array(f32(*random_positive(rng, 0.5, 10.0, 3)))
    for a, b in [(conc_a, conc_b), (conc_b, conc_a)]:
        mean, se = dirichlet_mc_kl(a, b, seed=seed)
        got = float(jaxkl.kl(jaxkl.Dirichlet(a), jaxkl.Dirichlet(b)))
        assert abs(got - mean) < 5 * se, (a, b, got, mean, se)


def test_beta_equals_two_category_dirichlet():
    a1, a0, b1, b0 = BETA_PAIRS[0]
    np.testing.assert_allclose(
        jaxkl.analytic.beta(a1, a0, b1, b0),
        jaxkl.analytic.dirichlet(jnp.array([a1, a0]), jnp.array([b1, b0])),
        rtol=1e-6,
    )


# ------------------------------------------------------------------ float32 precision
# The textbook forms subtract terms of size a·log a; near equal parameters float32 then
# keeps no digits at all (relative errors of order 1 at a 1e-3 relative perturbation).
# Reference: the textbook form in float64 scipy, accurate here to ~1e-8 relative.
@pytest.mark.parametrize("conc", [0.3, 4.0, 250.0])
def test_gamma_near_equality_keeps_float32_precision(conc):
    c_a, r_a = f32(conc, 1.7)
    c_b, r_b = f32(conc * (1 + 1e-3), 1.7 * (1 - 7e-4))
    got = float(jaxkl.analytic.gamma(c_a, r_a, c_b, r_b))
    np.testing.assert_allclose(got, textbook_gamma(c_a, r_a, c_b, r_b), rtol=5e-5)


def test_gamma_large_concentration_same_mean_keeps_float32_precision():
    # Shape and rate scaled together (the mean barely moves): a KL of 0.02 from
    # textbook terms of size 3e4.
    c_a, r_a, c_b, r_b = f32(2959.0, 0.1978, 3960.0, 0.2646)
    got = float(jaxkl.analytic.gamma(c_a, r_a, c_b, r_b))
    np.testing.assert_allclose(got, textbook_gamma(c_a, r_a, c_b, r_b), rtol=5e-5)


def test_gamma_huge_concentrations_are_finite_in_float32():
    # Past 1.8e19, where x² overflows float32: the remainder's second derivative term
    # gave inf·0 = NaN in the value and the gradient. Oracle: 40-digit mpmath.
    import mpmath as mp

    c_a, c_b = f32(1e20, 1.1e20)
    with mp.workdps(40):
        a, b = mp.mpf(float(c_a)), mp.mpf(float(c_b))
        want = float((a - b) * mp.digamma(a) - mp.loggamma(a) + mp.loggamma(b))
    got = jaxkl.analytic.gamma(c_a, np.float32(1.0), c_b, np.float32(1.0))
    np.testing.assert_allclose(float(got), want, rtol=5e-5)
    grad = jax.grad(jaxkl.analytic.gamma, argnums=(0, 2))(
        c_a, np.float32(1.0), c_b, np.float32(1.0)
    )
    assert all(np.isfinite(g) for g in grad), grad


@pytest.mark.parametrize(
    "conc", [[0.3, 0.8], [2.0, 7.0, 1.5], [300.0, 1200.0], [0.05, 40.0, 900.0]]
)
def test_beta_dirichlet_near_equality_keeps_float32_precision(conc):
    a = np.array(f32(*conc))
    b = np.array(f32(*(a * (1 + 1e-3 * np.cos(np.arange(len(a)) + 1.0)))))
    got = float(jaxkl.analytic.dirichlet(a, b))
    np.testing.assert_allclose(got, textbook_dirichlet(a, b), rtol=5e-5)
    if len(a) == 2:
        np.testing.assert_allclose(
            float(jaxkl.analytic.beta(*a, *b)), textbook_dirichlet(a, b), rtol=5e-5
        )


# 200 more pairs in the near-equality branch that the parametrised Gamma and
# Beta/Dirichlet near-equality tests above hold to the same rtol in CI: --run-slow.
@pytest.mark.slow
def test_random_near_pairs_keep_float32_precision():
    # 200 random pairs, concentrations in [e⁻², e⁴], perturbed by ~1e-3 relative: every
    # one must hold float32 precision (the textbook form is off by 100% at the median).
    rng = np.random.default_rng(11)
    a = random_positive(rng, np.exp(-2), np.exp(4), (200, 2)).astype(np.float32)
    b = (a * np.exp(1e-3 * rng.normal(size=a.shape))).astype(np.float32)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    np.testing.assert_allclose(
        jaxkl.analytic.beta(a[:, 0], a[:, 1], b[:, 0], b[:, 1]),
        textbook_dirichlet(a64, b64),
        rtol=5e-5,
    )
    rates = np.float32(1.3) * np.ones(200, np.float32)
    rates_b = (rates * np.exp(1e-3 * rng.normal(size=200))).astype(np.float32)
    np.testing.assert_allclose(
        jaxkl.analytic.gamma(a[:, 0], rates, b[:, 0], rates_b),
        textbook_gamma(a64[:, 0], rates.astype(np.float64), b64[:, 0], rates_b.astype(np.float64)),
        rtol=5e-5,
    )


def test_exponential_near_equality_keeps_float32_precision():
    r_a, r_b = f32(3.0, 3.0 * (1 + 1e-4))
    t = np.log(r_b / r_a)
    np.testing.assert_allclose(
        float(jaxkl.analytic.exponential(r_a, r_b)), np.expm1(t) - t, rtol=1e-5
    )


# ------------------------------------------------------------------ properties
_log_conc = st.floats(min_value=-4.0, max_value=6.0)
_log_rate = st.floats(min_value=-6.0, max_value=6.0)


def _exp32(*logs):
    return [np.float32(np.exp(v)) for v in logs]


@settings(max_examples=25, deadline=None)
@given(_log_conc, _log_rate, _log_conc, _log_rate)
def test_gamma_and_exponential_properties(lc_a, lr_a, lc_b, lr_b):
    c_a, r_a, c_b, r_b = _exp32(lc_a, lr_a, lc_b, lr_b)
    assert float(jaxkl.analytic.gamma(c_a, r_a, c_a, r_a)) == 0.0
    assert float(jaxkl.analytic.exponential(r_a, r_a)) == 0.0
    assert float(jaxkl.analytic.gamma(c_a, r_a, c_b, r_b)) >= 0.0
    assert float(jaxkl.analytic.exponential(r_a, r_b)) >= 0.0
    assert float(jaxkl.analytic.exponential_gamma(r_a, c_b, r_b)) >= 0.0
    assert float(jaxkl.analytic.gamma_exponential(c_a, r_a, r_b)) >= 0.0
    assert float(jaxkl.analytic.exponential_gamma(r_a, 1.0, r_a)) == 0.0
    assert float(jaxkl.analytic.gamma_exponential(1.0, r_a, r_a)) == 0.0


@settings(max_examples=25, deadline=None)
@given(st.lists(_log_conc, min_size=6, max_size=6))
def test_beta_and_dirichlet_properties(logs):
    conc = np.array(_exp32(*logs))
    a, b = conc[:3], conc[3:]
    assert float(jaxkl.analytic.dirichlet(a, a)) == 0.0
    assert float(jaxkl.analytic.dirichlet(a, b)) >= 0.0
    assert float(jaxkl.analytic.beta(a[0], a[1], a[0], a[1])) == 0.0
    assert float(jaxkl.analytic.beta(a[0], a[1], b[0], b[1])) >= 0.0


# ------------------------------------------------------------------ transformations
PAIRS = {
    "gamma": (
        lambda p: jaxkl.Gamma(p[0], p[1]),
        lambda p: jaxkl.Gamma(p[2], p[3]),
        jnp.array([[0.5, 1.0, 2.0, 3.0], [4.0, 0.2, 4.5, 0.25], [30.0, 2.0, 20.0, 1.0]]),
    ),
    "exponential": (
        lambda p: jaxkl.Exponential(p[0]),
        lambda p: jaxkl.Exponential(p[1]),
        jnp.array([[0.5, 1.0], [4.0, 4.1], [30.0, 2.0]]),
    ),
    "exponential_gamma": (
        lambda p: jaxkl.Exponential(p[0]),
        lambda p: jaxkl.Gamma(p[1], p[2]),
        jnp.array([[0.5, 1.0, 2.0], [4.0, 0.2, 4.5], [30.0, 2.0, 20.0]]),
    ),
    "gamma_exponential": (
        lambda p: jaxkl.Gamma(p[0], p[1]),
        lambda p: jaxkl.Exponential(p[2]),
        jnp.array([[0.5, 1.0, 2.0], [4.0, 0.2, 4.5], [30.0, 2.0, 20.0]]),
    ),
    "beta": (
        lambda p: jaxkl.Beta(p[0], p[1]),
        lambda p: jaxkl.Beta(p[2], p[3]),
        jnp.array([[0.5, 1.0, 2.0, 3.0], [4.0, 0.2, 4.5, 0.25], [30.0, 2.0, 20.0, 1.0]]),
    ),
    "dirichlet": (
        lambda p: jaxkl.Dirichlet(p[:3]),
        lambda p: jaxkl.Dirichlet(p[3:]),
        jnp.array([[0.5, 1.0, 2.0, 3.0, 1.0, 1.0], [4.0, 0.2, 4.5, 0.25, 4.0, 0.2]]),
    ),
}


# exponential_gamma and gamma_exponential are gamma's kernel (_gamma_kl) with one
# concentration jnp.ones_like(...): CI runs that kernel under jit and vmap as "gamma";
# beta is the jitted Dirichlet core (_dirichlet_kl) on stacked K = 2 concentrations: CI
# runs it as "dirichlet". --run-slow runs all three too.
@pytest.mark.parametrize(
    "name",
    slow_except(sorted(PAIRS), sorted(PAIRS), keep={"dirichlet", "exponential", "gamma"}),
)
def test_jit_equals_eager_vmap_equals_loop_and_no_retrace(name):
    make_a, make_b, params = PAIRS[name]
    traces = 0

    def f(p):
        nonlocal traces
        traces += 1
        return jaxkl.kl(make_a(p), make_b(p))

    eager = jnp.stack([f(p) for p in params])
    jf = jax.jit(f)
    jitted = jnp.stack([jf(p) for p in params])
    np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-7)
    assert traces == len(params) + 1  # eager calls, then one trace for all jitted calls
    np.testing.assert_allclose(jax.vmap(f)(params), eager, rtol=1e-5, atol=1e-7)


EQUAL_PARAMS = {
    "gamma": [2.0, 3.0, 2.0, 3.0],
    "exponential": [2.0, 2.0],
    "exponential_gamma": [2.0, 1.0, 2.0],
    "gamma_exponential": [1.0, 2.0, 2.0],
    "beta": [0.3, 40.0, 0.3, 40.0],
    "dirichlet": [0.5, 2.0, 30.0, 0.5, 2.0, 30.0],
}


# Beta is Dirichlet's K = 2 kernel (one code path); the K = 3 Dirichlet case adds 7 s of
# compiling: --run-slow. exponential_gamma and gamma_exponential are gamma's kernel
# (_gamma_kl, the same near-equality branch at equal parameters) with a concentration of
# ones: CI keeps "gamma" (its value and every partial at equality), --run-slow the two.
@pytest.mark.parametrize(
    "name",
    slow_except(sorted(PAIRS), sorted(PAIRS), keep={"beta", "exponential", "gamma"}),
)
def test_value_and_gradient_vanish_at_equality(name):
    # KL = 0 is the minimum, so every partial derivative is 0 there (and not NaN from the
    # 0/0-looking pieces of the near-equality branches).
    make_a, make_b, _ = PAIRS[name]
    p = jnp.array(EQUAL_PARAMS[name])
    assert float(jaxkl.kl(make_a(p), make_b(p))) == 0.0
    g = jax.grad(lambda q: jaxkl.kl(make_a(q), make_b(q)))(p)
    np.testing.assert_allclose(g, 0.0, atol=1e-6)


def test_batched_distributions_broadcast():
    a = jaxkl.Gamma(jnp.ones((4, 1)), 1.0)
    b = jaxkl.Gamma(jnp.full((3,), 2.0), 3.0)
    assert jaxkl.kl(a, b).shape == (4, 3)
    da = jaxkl.Dirichlet(jnp.ones((4, 1, 3)))
    db = jaxkl.Dirichlet(jnp.ones((5, 3)) * 2.0)
    assert jaxkl.kl(da, db).shape == (4, 5)


# ------------------------------------------------------------------ bad input
def test_dirichlet_category_mismatch_raises():
    with pytest.raises(ValueError, match="same number of categories K"):
        jaxkl.kl(jaxkl.Dirichlet(jnp.ones(3)), jaxkl.Dirichlet(jnp.ones(4)))
    with pytest.raises(ValueError, match="same number of categories K"):
        jaxkl.analytic.dirichlet(jnp.ones((2, 3)), jnp.ones(1))
    with pytest.raises(ValueError, match="need a category axis"):
        jaxkl.analytic.dirichlet(1.0, jnp.ones(3))


@pytest.mark.parametrize(
    "kernel, args, match",
    [
        (jaxkl.analytic.gamma, (np.ones(2), 1.0, np.ones(3), 1.0), "jaxkl.analytic.gamma"),
        (jaxkl.analytic.exponential, (np.ones(2), np.ones(3)), "rate_a"),
        (jaxkl.analytic.beta, (np.ones(2), 1.0, 1.0, np.ones(3)), "c0_b"),
        (jaxkl.analytic.exponential_gamma, (np.ones(2), np.ones(3), 1.0), "conc_b"),
        (jaxkl.analytic.gamma_exponential, (np.ones(2), 1.0, np.ones(3)), "rate_b"),
        (jaxkl.analytic.dirichlet, (np.ones((2, 3)), np.ones((4, 3))), "do not broadcast"),
    ],
)
def test_kernels_name_arguments_that_do_not_broadcast(kernel, args, match):
    with pytest.raises(ValueError, match=match):
        kernel(*args)


def test_bad_parameters_are_rejected_before_the_kernel():
    with pytest.raises(ValueError, match="concentration must be > 0"):
        jaxkl.kl(jaxkl.Gamma(-1.0, 1.0), jaxkl.Gamma(1.0, 1.0))
    with pytest.raises(ValueError, match="rate must be > 0"):
        jaxkl.kl(jaxkl.Exponential(1.0), jaxkl.Exponential(np.nan))
    f = jaxkl.checked(lambda c: jaxkl.kl(jaxkl.Beta(c, 1.0), jaxkl.Beta(1.0, 1.0)))
    assert np.isfinite(f(2.0))
    with pytest.raises(ValueError, match="concentration1 must be > 0"):
        f(0.0)
