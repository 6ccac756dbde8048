"""Discrete closed forms against explicit sums, at extremes, near equality, under transforms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

import jaxkl
from jaxkl import analytic
from tests.oracles import sum_kl

ORACLE_PAIRS = {
    (jaxkl.Bernoulli, jaxkl.Bernoulli),
    (jaxkl.Categorical, jaxkl.Categorical),
    (jaxkl.Poisson, jaxkl.Poisson),
    (jaxkl.Bernoulli, jaxkl.Poisson),
}

RNG = np.random.default_rng(11)
LD = np.longdouble


def _bernoulli_logpmf(logit):
    """log pmf of Bernoulli(σ(logit)) on {0, 1} from log σ, so p near 0 or 1 is kept."""
    logit = np.float64(logit)
    return lambda k: np.where(k == 1, special.log_expit(logit), special.log_expit(-logit))


def _log_sigmoid_ld(x):
    x = LD(x)
    return -np.log1p(np.exp(-x)) if x >= 0 else x - np.log1p(np.exp(x))


def _bernoulli_kl_ld(a, b):
    """Textbook KL in long double (eps ~1e-19), for pairs too close for float64."""
    la, lb, la0, lb0 = (_log_sigmoid_ld(v) for v in (a, b, -LD(a), -LD(b)))
    return float(np.exp(la) * (la - lb) + np.exp(la0) * (la0 - lb0))


def _categorical_logpmf(logits):
    logp = special.log_softmax(np.asarray(logits, np.float64))
    return lambda k: logp[k]


def _categorical_kl_ld(a, b):
    a, b = np.asarray(a, LD), np.asarray(b, LD)
    la = a - a.max() - np.log(np.sum(np.exp(a - a.max())))
    lb = b - b.max() - np.log(np.sum(np.exp(b - b.max())))
    return float(np.sum(np.exp(la) * (la - lb)))


def _categorical_kl_centred_ld(a, b):
    """KL per row in long double as log1p(Σ p (expm1(x) − x) + q̃), x = E_p[g] − g, g = a − b.

    q̃ is b's mass on the categories a excludes, relative to p's normaliser. Unlike the
    textbook sum this keeps full relative precision for tiny KL; −inf where a excludes a
    category is allowed, +inf is returned where b excludes a category a has mass on.
    """
    out = []
    for u, v in zip(np.asarray(a, LD), np.asarray(b, LD), strict=True):
        fa, fb = np.isfinite(u), np.isfinite(v)
        if np.any(fa & ~fb):
            out.append(np.inf)
            continue
        m = u[fa].max()
        lse = m + np.log(np.sum(np.exp(u[fa] - m)))
        p = np.exp(u[fa] - lse)
        g = u[fa] - v[fa]
        x = np.sum(p * g) - g
        s = np.sum(p * (np.expm1(x) - x))
        s += np.sum(np.exp(v[~fa & fb] - lse + np.sum(p * g)))
        out.append(float(np.log1p(s)))
    return np.array(out)


def _categorical_grads_ld(a, b):
    """∂KL/∂a = p (g − E_p g) and ∂KL/∂b = q − p in long double (0 on rows with KL = +inf)."""
    a, b = np.asarray(a, LD), np.asarray(b, LD)
    ga, gb = np.zeros(a.shape), np.zeros(b.shape)
    for i, (u, v) in enumerate(zip(a, b, strict=True)):
        fa, fb = np.isfinite(u), np.isfinite(v)
        if np.any(fa & ~fb):
            continue
        p = np.where(fa, np.exp(np.where(fa, u, 0) - u[fa].max()), 0)
        q = np.where(fb, np.exp(np.where(fb, v, 0) - v[fb].max()), 0)
        p, q = p / p.sum(), q / q.sum()
        g = np.where(fa, np.where(fa, u, 0) - np.where(fb, v, 0), 0)
        ga[i] = p * (g - np.sum(p * g))
        gb[i] = q - p
    return ga, gb


def _batched_grad(kernel):
    """Per-pair gradients of a kernel in both arguments, compiled once."""
    return jax.jit(jax.vmap(jax.grad(kernel, argnums=(0, 1))))


# ----------------------------------------------------------------------------- oracles
def test_bernoulli_matches_explicit_sum_both_directions():
    a = RNG.normal(0.0, 3.0, size=8)
    b = RNG.normal(0.0, 3.0, size=8)
    support = np.array([0, 1])
    for x, y in ((a, b), (b, a)):
        ref = [
            sum_kl(_bernoulli_logpmf(u), _bernoulli_logpmf(v), support)
            for u, v in zip(x, y, strict=True)
        ]
        out = jaxkl.kl(jaxkl.Bernoulli(x.astype(np.float32)), jaxkl.Bernoulli(y.astype(np.float32)))
        np.testing.assert_allclose(out, ref, rtol=2e-5, atol=1e-6)
        with jax.enable_x64(True):
            np.testing.assert_allclose(
                jaxkl.kl(jaxkl.Bernoulli(x), jaxkl.Bernoulli(y)), ref, rtol=1e-12
            )


def test_categorical_matches_explicit_sum_both_directions():
    k = 5
    a = RNG.normal(0.0, 2.0, size=(6, k))
    b = RNG.normal(0.0, 2.0, size=(6, k))
    support = np.arange(k)
    for x, y in ((a, b), (b, a)):
        ref = [
            sum_kl(_categorical_logpmf(u), _categorical_logpmf(v), support)
            for u, v in zip(x, y, strict=True)
        ]
        out = jaxkl.kl(
            jaxkl.Categorical(x.astype(np.float32)), jaxkl.Categorical(y.astype(np.float32))
        )
        assert out.shape == (6,)
        np.testing.assert_allclose(out, ref, rtol=2e-5, atol=1e-6)
        with jax.enable_x64(True):
            out64 = jaxkl.kl(jaxkl.Categorical(x), jaxkl.Categorical(y))
            np.testing.assert_allclose(out64, ref, rtol=1e-12)


def test_poisson_matches_truncated_sum_both_directions():
    a = np.exp(RNG.uniform(np.log(0.1), np.log(300.0), size=6))
    b = np.exp(RNG.uniform(np.log(0.1), np.log(300.0), size=6))
    a[0], b[0] = 1e3, 1.2e3
    for x, y in ((a, b), (b, a)):
        x32, y32 = x.astype(np.float32), y.astype(np.float32)
        out = jaxkl.kl(jaxkl.Poisson(x32), jaxkl.Poisson(y32))
        with jax.enable_x64(True):
            out64 = jaxkl.kl(jaxkl.Poisson(x), jaxkl.Poisson(y))
        # The float32 result is compared with the oracle at the float32-rounded rates.
        for got, (u, v), rtol in ((out, (x32, y32), 1e-5), (out64, (x, y), 1e-10)):
            ref = []
            for lam_a, lam_b in zip(u.astype(np.float64), v.astype(np.float64), strict=True):
                # Far into a's tail: the mass beyond λ + 50√λ + 100 is below 1e-100.
                support = np.arange(0, int(lam_a + 50 * np.sqrt(lam_a) + 100))
                ref.append(
                    sum_kl(stats.poisson(lam_a).logpmf, stats.poisson(lam_b).logpmf, support)
                )
            np.testing.assert_allclose(got, ref, rtol=rtol)


def test_bernoulli_poisson_matches_explicit_sum():
    logits = RNG.normal(0.0, 3.0, size=8)
    rates = np.exp(RNG.uniform(np.log(0.01), np.log(50.0), size=8))
    ref = [
        sum_kl(_bernoulli_logpmf(u), stats.poisson(v).logpmf, np.array([0, 1]))
        for u, v in zip(logits, rates, strict=True)
    ]
    out = jaxkl.kl(
        jaxkl.Bernoulli(logits.astype(np.float32)), jaxkl.Poisson(rates.astype(np.float32))
    )
    np.testing.assert_allclose(out, ref, rtol=2e-5)
    with jax.enable_x64(True):
        out64 = jaxkl.kl(jaxkl.Bernoulli(logits), jaxkl.Poisson(rates))
        np.testing.assert_allclose(out64, ref, rtol=1e-12)


def test_bernoulli_poisson_at_its_minimum_is_accurate():
    # At λ = p the KL is p + (1 − p) log(1 − p) ≈ p²/2; the textbook sum cancels there.
    logits = np.array([-12.0, -6.0, -3.0], np.float32)
    p = special.expit(logits.astype(np.float64))
    ref = p + (1 - p) * np.log1p(-p)
    ref_ld = [float(LD(v) + (1 - LD(v)) * np.log1p(-LD(v))) for v in p]
    out = analytic.bernoulli_poisson(logits, p.astype(np.float32))
    # The float32-rounded λ shifts the minimum by O(δλ²/p): negligible at this tolerance.
    np.testing.assert_allclose(out, ref_ld, rtol=1e-5)
    np.testing.assert_allclose(ref, ref_ld, rtol=1e-3)


# ----------------------------------------------------------------------------- extremes
EXTREME = np.array([-50.0, -20.0, 0.0, 20.0, 50.0], np.float32)


def test_bernoulli_extreme_logits_float32_values_and_gradients():
    a, b = np.meshgrid(EXTREME, EXTREME, indexing="ij")
    a, b = a.ravel(), b.ravel()
    out = analytic.bernoulli(a, b)
    ref = [_bernoulli_kl_ld(u, v) for u, v in zip(a, b, strict=True)]
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=0)
    ga, gb = _batched_grad(analytic.bernoulli)(jnp.asarray(a), jnp.asarray(b))
    assert np.all(np.isfinite(ga)) and np.all(np.isfinite(gb))
    # ∂KL/∂b = σ(b) − σ(a) (the Bernoulli log-partition is softplus).
    np.testing.assert_allclose(gb, special.expit(b) - special.expit(a), atol=1e-6)


# CI holds float32 values with logits at scale 50 and KLs in the thousands to long double
# (test_categorical_full_relative_precision_on_every_branch), and gradients with logits
# beyond ±50 to the closed forms (test_categorical_gradients_are_the_closed_forms_with_masks,
# the same jit(vmap(grad)) at K = 4): --run-slow.
@pytest.mark.slow
def test_categorical_extreme_logits_float32_values_and_gradients():
    a = jnp.array([[50.0, -50.0, 0.0], [50.0, 49.0, -50.0], [0.0, 0.0, 50.0], [-50.0, 0.0, 50.0]])
    b = jnp.array([[-50.0, 50.0, 0.0], [49.0, 50.0, 50.0], [0.0, 0.0, 50.0], [50.0, 0.0, -50.0]])
    out = analytic.categorical(a, b)
    ref = [_categorical_kl_ld(u, v) for u, v in zip(np.asarray(a), np.asarray(b), strict=True)]
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=0)
    ga, gb = _batched_grad(analytic.categorical)(a, b)
    assert np.all(np.isfinite(ga)) and np.all(np.isfinite(gb))
    # ∂KL/∂b = softmax(b) − softmax(a).
    np.testing.assert_allclose(gb, special.softmax(b, -1) - special.softmax(a, -1), atol=1e-6)


@pytest.mark.parametrize("delta", [1e-2, 1e-3, 1e-4])
def test_near_equal_pairs_keep_relative_precision_float32(delta):
    a = RNG.normal(0.0, 2.0, size=4).astype(np.float32)
    b = (a + delta).astype(np.float32)
    ref = [_bernoulli_kl_ld(u, v) for u, v in zip(a, b, strict=True)]
    np.testing.assert_allclose(analytic.bernoulli(a, b), ref, rtol=1e-5)

    la = RNG.normal(0.0, 2.0, size=(4, 6)).astype(np.float32)
    lb = (la + delta * RNG.normal(size=(4, 6))).astype(np.float32)
    ref = [_categorical_kl_ld(u, v) for u, v in zip(la, lb, strict=True)]
    np.testing.assert_allclose(analytic.categorical(la, lb), ref, rtol=1e-5)

    ra = np.exp(RNG.normal(0.0, 2.0, size=4)).astype(np.float32)
    rb = (ra * (1 + delta)).astype(np.float32)
    ref = [
        float(LD(u) * np.log(LD(u) / LD(v)) - LD(u) + LD(v)) for u, v in zip(ra, rb, strict=True)
    ]
    np.testing.assert_allclose(analytic.poisson(ra, rb), ref, rtol=1e-5)


def test_categorical_very_negative_finite_logits_with_and_without_the_range_shift():
    # Rows whose maximum is in range keep entries ≤ −finfo.max / 2**40 as they are; a row
    # with a huge maximum elsewhere in the batch shifts every row. Same values either way,
    # and both equal the float64 sum.
    a = np.array([[0.0, 1.0, -1e30], [0.0, 1.0, 0.0], [2.0, -3e38, 0.5]], np.float32)
    b = np.array([[0.5, 0.0, 0.0], [0.5, 0.0, -1e30], [0.0, 1.0, -1e38]], np.float32)
    lp = special.log_softmax(a.astype(np.float64), -1)
    lq = special.log_softmax(b.astype(np.float64), -1)
    ref = np.sum(np.where(lp > -np.inf, np.exp(lp) * (lp - lq), 0.0), -1)
    plain = analytic.categorical(a, b)
    huge = np.array([[1e30, 0.0, 0.0]], np.float32)
    shifted = analytic.categorical(np.concatenate([a, huge]), np.concatenate([b, huge]))[:3]
    np.testing.assert_allclose(plain, ref, rtol=1e-5)
    np.testing.assert_allclose(shifted, ref, rtol=1e-5)


def test_categorical_value_and_derivative_paths_agree_with_and_without_the_shift():
    # The value runs the kernel in one branch of a cond per path (no copy of the logits);
    # derivatives run one kernel on the logits the cond chose (one set of residuals).
    # Their values are the same numbers, with a −inf mask, a far row and a huge logit.
    a = np.array([[0.0, 1.0, -np.inf], [0.0, 1.0, 0.0], [2.0, -3e38, 0.5]], np.float32)
    b = np.array([[0.5, 0.0, 0.0], [0.5, 0.0, -1e30], [0.0, 1.0, -1e38]], np.float32)
    huge = np.array([[1e30, 0.0, 0.0]], np.float32)
    for x, y in [(a, b), (np.concatenate([a, huge]), np.concatenate([b, huge]))]:
        value = analytic.categorical(x, y)
        primal, tangent = jax.jvp(analytic.categorical, (x, y), (np.ones_like(x), np.zeros_like(y)))
        np.testing.assert_array_equal(primal, value)
        # Adding 1 to every logit of a row changes nothing: the tangent is 0.
        np.testing.assert_allclose(tangent, 0.0, atol=1e-6)


# ----------------------------------------------------------------------------- supports
def test_categorical_support_mismatch_and_zero_mass():
    ninf = -np.inf
    a = np.array([[0.0, 0.0, 0.0], [0.0, ninf, 1.0], [0.0, ninf, 1.0], [ninf, ninf, 0.0]])
    b = np.array([[0.0, ninf, 0.0], [0.5, ninf, 0.0], [0.5, 2.0, 0.0], [1.0, 2.0, 3.0]])
    ref = [
        sum_kl(_categorical_logpmf(u), _categorical_logpmf(v), np.arange(3))
        for u, v in zip(a, b, strict=True)
    ]
    assert ref[0] == np.inf and np.all(np.isfinite(ref[1:]))
    out = analytic.categorical(a.astype(np.float32), b.astype(np.float32))
    np.testing.assert_allclose(out, ref, rtol=1e-5)
    grads = _batched_grad(analytic.categorical)(jnp.asarray(a), jnp.asarray(b))
    for g in grads:
        assert not np.any(np.isnan(g))
    # b's mass outside a's support enters as −log q(supp a).
    np.testing.assert_allclose(out[3], -special.log_softmax(b[3])[2], rtol=1e-6)


def _categorical_cases(k, rng):
    """Rows of float32 logits [n, k] pairs that exercise every branch of the kernel."""
    a = rng.normal(0.0, 2.0, size=(8, k))
    b = rng.normal(0.0, 2.0, size=(8, k))
    near = a + 1e-4 * rng.normal(size=a.shape)
    masked_a, masked_b = a.copy(), b.copy()
    masked_a[:, ::3] = masked_b[:, ::3] = -np.inf  # excluded by both
    masked_a[:, 1::4] = -np.inf  # excluded by a only: b's mass there enters as q̃
    finfo_min = np.float32(np.finfo(np.float32).min)
    soft = a.copy()
    soft[:, 1::2] -= 105.0  # p underflows in float32 while p·eˣ does not
    return {
        "far": (a, b),
        "near 1e-2": (a, a + 1e-2 * rng.normal(size=a.shape)),
        "near 1e-4": (a, near),
        "near 1e-5": (a, a + 1e-5 * rng.normal(size=a.shape)),
        "near, logits near 100": (a + 100.0, near + 100.0),
        "scale 50": (25.0 * a, 25.0 * b),
        "KL in the thousands": (500.0 * a, 500.0 * b),
        "masked": (masked_a, masked_b),
        "masked near": (masked_a, np.where(np.isfinite(masked_a), masked_a + 1e-3, -np.inf)),
        "finfo.min as mask": (
            np.where(np.isfinite(masked_a), masked_a, finfo_min),
            np.where(np.isfinite(masked_b), masked_b, finfo_min),
        ),
        "soft mask a − 105": (soft, b),
        "soft mask a − 1e4": (a - 1e4 * (np.arange(k) % 2), b),
    }


@pytest.mark.parametrize("k", [5, 40])
def test_categorical_full_relative_precision_on_every_branch(k):
    # K = 5 runs the column-by-column kernel, K = 40 the row sums; the long-double oracle
    # is taken at the float32-rounded logits, so the tolerance measures the kernel alone.
    rng = np.random.default_rng(7 + k)
    lo = np.finfo(np.float32).min
    for name, (a, b) in _categorical_cases(k, rng).items():
        a32, b32 = a.astype(np.float32), b.astype(np.float32)
        ref = _categorical_kl_centred_ld(
            np.where(a32 <= lo, -np.inf, a32), np.where(b32 <= lo, -np.inf, b32)
        )
        got = np.asarray(jax.jit(analytic.categorical)(a32, b32))
        assert np.all(np.isfinite(got)) and np.all(got >= 0.0), name
        np.testing.assert_allclose(got, ref, rtol=3e-6, atol=0, err_msg=name)
    # The oracle itself agrees with the textbook sum wherever that sum is accurate.
    a, b = _categorical_cases(k, rng)["far"]
    np.testing.assert_allclose(
        _categorical_kl_centred_ld(a, b),
        [_categorical_kl_ld(u, v) for u, v in zip(a, b, strict=True)],
        rtol=1e-12,
    )


@pytest.mark.parametrize("k", [3, 40])
def test_categorical_float64_precision(k):
    rng = np.random.default_rng(3 + k)
    a = rng.normal(0.0, 2.0, size=(6, k))
    with jax.enable_x64(True):
        for b in (rng.normal(0.0, 2.0, size=(6, k)), a + 1e-6 * rng.normal(size=a.shape)):
            got = analytic.categorical(a, b)
            assert got.dtype == jnp.float64
            # The long-double oracle itself carries ~1e-19/|x| relative error here (|x| ~ 1e-6).
            np.testing.assert_allclose(got, _categorical_kl_centred_ld(a, b), rtol=1e-12)


@pytest.mark.parametrize("k", [3, 40])
def test_categorical_infinite_where_b_excludes_even_negligible_mass(k):
    rng = np.random.default_rng(k)
    a = rng.normal(size=(3, k)).astype(np.float32)
    b = a.copy()
    a[0, 1] = -200.0  # p = e^-200 underflows to 0 in float32, yet it is mass ...
    b[0, 1] = -np.inf  # ... that b excludes: KL = +inf
    a[1:, 1] = b[1:, 1] = -np.inf  # excluded by both: no contribution
    b[2, 0] += 1.0
    out = np.asarray(analytic.categorical(a, b))
    assert out[0] == np.inf
    assert out[1] == 0.0  # equal rows, masks included: exactly 0
    np.testing.assert_allclose(out[2], _categorical_kl_centred_ld(a[2:], b[2:]), rtol=2e-6)
    assert 0.0 < out[2] < np.inf


# The gradient is the custom JVP's closed form from the forward pass's row statistics, the
# same code for any K. K = 4 (the column-by-column forward) runs in CI; the row-sum forward
# is held to the long-double values with masks by the K = 40 tests above and its gradients
# to the oracle by test_categorical_chunks.py, so K = 40 here runs under --run-slow.
@pytest.mark.parametrize("k", [4, pytest.param(40, marks=pytest.mark.slow)])
def test_categorical_gradients_are_the_closed_forms_with_masks(k):
    rng = np.random.default_rng(11 + k)
    a = rng.normal(0.0, 3.0, size=(8, k)).astype(np.float32)
    b = rng.normal(0.0, 3.0, size=(8, k)).astype(np.float32)
    a[0, 0] = -np.inf  # a excludes a category b covers
    a[1, 1] = b[1, 1] = -np.inf  # both exclude it
    b[2, 2] = -np.inf  # infinite KL: gradient 0
    a[3] = a[3] * 15.0  # logits beyond ±50
    ga, gb = _batched_grad(analytic.categorical)(jnp.asarray(a), jnp.asarray(b))
    ref_a, ref_b = _categorical_grads_ld(a, b)
    assert np.all(np.isfinite(ga)) and np.all(np.isfinite(gb))
    np.testing.assert_allclose(ga, ref_a, atol=2e-6 * max(1.0, np.abs(ref_a).max()))
    np.testing.assert_allclose(gb, ref_b, atol=1e-6)
    # Reverse mode over the batch and forward mode agree with the per-row gradients.
    total = jax.jit(jax.grad(lambda x, y: analytic.categorical(x, y).sum(), argnums=(0, 1)))
    np.testing.assert_allclose(total(a, b)[0], ga, rtol=1e-6, atol=1e-7)
    direction = rng.normal(size=a.shape).astype(np.float32)
    tangent = jax.jvp(lambda x: analytic.categorical(x, b), (a,), (direction,))[1]
    np.testing.assert_allclose(tangent, np.sum(ref_a * direction, -1), atol=2e-5)


def test_categorical_half_precision_is_evaluated_in_float32():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(4, 6)).astype(np.float16)
    b = rng.normal(size=(4, 6)).astype(np.float16)
    out = analytic.categorical(a, b)
    assert out.dtype == jnp.float16
    np.testing.assert_allclose(
        out.astype(np.float32),
        analytic.categorical(a.astype(np.float32), b.astype(np.float32)),
        rtol=1e-3,
    )


def test_bernoulli_infinite_logits():
    inf = np.inf
    a = np.array([inf, inf, -inf, inf, 0.0, -inf])
    b = np.array([0.0, inf, 1.0, -inf, inf, -inf])
    ref = [
        sum_kl(_bernoulli_logpmf(u), _bernoulli_logpmf(v), np.array([0, 1]))
        for u, v in zip(a, b, strict=True)
    ]
    np.testing.assert_allclose(analytic.bernoulli(a, b), ref, rtol=1e-6)
    assert ref[3] == inf and ref[4] == inf


def test_bernoulli_poisson_at_point_masses_and_poisson_zero_rate():
    out = analytic.bernoulli_poisson(jnp.array([-jnp.inf, jnp.inf, 200.0, -200.0]), 2.0)
    np.testing.assert_allclose(out, [2.0, 2.0 - np.log(2.0), 2.0 - np.log(2.0), 2.0], rtol=1e-6)
    # λa = 0 is the point mass at 0: KL = λb.
    np.testing.assert_allclose(analytic.poisson(jnp.array([0.0]), jnp.array([3.0])), [3.0])


# ----------------------------------------------------------------------------- properties
LOGIT = st.floats(-30.0, 30.0, allow_nan=False)
RATE = st.floats(-3.0, 3.0).map(lambda e: 10.0**e)
ROW = st.lists(LOGIT, min_size=4, max_size=4)


@settings(max_examples=25, deadline=None)
@given(a=LOGIT, b=LOGIT, ra=RATE, rb=RATE)
def test_bernoulli_poisson_properties(a, b, ra, rb):
    assert float(analytic.bernoulli(a, a)) == 0.0
    assert float(analytic.bernoulli(a, b)) >= 0.0
    assert float(analytic.poisson(ra, ra)) == 0.0
    assert float(analytic.poisson(ra, rb)) >= 0.0
    assert float(analytic.bernoulli_poisson(a, rb)) >= 0.0


@settings(max_examples=25, deadline=None)
@given(a=ROW, b=ROW)
def test_categorical_properties(a, b):
    a, b = jnp.asarray(a), jnp.asarray(b)
    assert float(analytic.categorical(a, a)) == 0.0
    assert float(analytic.categorical(a, b)) >= 0.0
    # Shift invariance of logits.
    np.testing.assert_allclose(
        analytic.categorical(a + 3.0, b - 2.0), analytic.categorical(a, b), rtol=1e-4, atol=1e-6
    )


# ----------------------------------------------------------------------------- transforms
def test_jit_equals_eager_and_no_retrace():
    traces = []

    @jax.jit
    def f(la, lb, ra, rb):
        traces.append(1)
        return (
            jaxkl.kl(jaxkl.Bernoulli(la[:, 0]), jaxkl.Bernoulli(lb[:, 0])),
            jaxkl.kl(jaxkl.Categorical(la), jaxkl.Categorical(lb)),
            jaxkl.kl(jaxkl.Poisson(ra), jaxkl.Poisson(rb)),
            jaxkl.kl(jaxkl.Bernoulli(la[:, 0]), jaxkl.Poisson(rb)),
        )

    def eager(la, lb, ra, rb):
        return (
            analytic.bernoulli(la[:, 0], lb[:, 0]),
            analytic.categorical(la, lb),
            analytic.poisson(ra, rb),
            analytic.bernoulli_poisson(la[:, 0], rb),
        )

    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        args = (
            jnp.asarray(rng.normal(size=(5, 3)), jnp.float32),
            jnp.asarray(rng.normal(size=(5, 3)), jnp.float32),
            jnp.asarray(rng.uniform(0.1, 10.0, size=5), jnp.float32),
            jnp.asarray(rng.uniform(0.1, 10.0, size=5), jnp.float32),
        )
        for got, want in zip(f(*args), eager(*args), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert len(traces) == 1


def test_vmap_over_categorical_pairs_equals_loop():
    la = jnp.asarray(RNG.normal(size=(7, 4)), jnp.float32)
    lb = jnp.asarray(RNG.normal(size=(7, 4)), jnp.float32)
    batched = jax.jit(jax.vmap(jaxkl.kl))(jaxkl.Categorical(la), jaxkl.Categorical(lb))
    loop = [jaxkl.kl(jaxkl.Categorical(la[i]), jaxkl.Categorical(lb[i])) for i in range(7)]
    np.testing.assert_allclose(batched, loop, rtol=1e-6)
    np.testing.assert_allclose(batched, analytic.categorical(la, lb), rtol=1e-6)


def _central_fd(f, x, h):
    out = np.zeros(x.shape)
    for idx in np.ndindex(*x.shape):
        e = np.zeros(x.shape)
        e[idx] = h
        out[idx] = (f(x + e) - f(x - e)) / (2 * h)
    return out


@pytest.mark.parametrize(
    "kernel, a, b",
    [
        (analytic.bernoulli, np.array([0.3, -2.0, 4.0]), np.array([1.1, -1.5, -3.0])),
        (analytic.categorical, np.array([0.3, -2.0, 1.0]), np.array([1.1, 0.2, -0.4])),
        (analytic.poisson, np.array([0.7, 3.0, 40.0]), np.array([1.2, 2.9, 10.0])),
        (analytic.bernoulli_poisson, np.array([0.3, -2.0, 4.0]), np.array([0.5, 0.2, 3.0])),
    ],
)
def test_grad_matches_central_differences_float64(kernel, a, b):
    with jax.enable_x64(True):
        a, b = jnp.asarray(a), jnp.asarray(b)
        total = jax.jit(lambda x, y: kernel(x, y).sum())
        ga, gb = jax.jit(jax.grad(total, argnums=(0, 1)))(a, b)
        fa = _central_fd(lambda x: float(total(x, b)), np.asarray(a), 1e-6)
        fb = _central_fd(lambda y: float(total(a, y)), np.asarray(b), 1e-6)
        np.testing.assert_allclose(ga, fa, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(gb, fb, rtol=1e-7, atol=1e-9)


def test_shapes_broadcast():
    def shape(fn, *args):
        # Abstract evaluation checks the shape logic without compiling anything.
        return jax.eval_shape(fn, *args).shape

    z = jax.ShapeDtypeStruct
    f32 = jnp.float32
    assert shape(analytic.bernoulli, z((3, 1), f32), z((4,), f32)) == (3, 4)
    assert shape(analytic.categorical, z((3, 1, 5), f32), z((2, 5), f32)) == (3, 2)
    assert shape(analytic.poisson, z((2, 1), f32), z((3,), f32)) == (2, 3)
    assert shape(analytic.bernoulli_poisson, z((2,), f32), z((3, 1), f32)) == (3, 2)
    d = jaxkl.kl(jaxkl.Categorical(jnp.zeros((4, 1, 3))), jaxkl.Categorical(jnp.zeros((2, 3))))
    assert d.shape == (4, 2)


# ----------------------------------------------------------------------------- bad input
def test_categorical_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"logits must have shape \[\.\.\., K\]"):
        analytic.categorical(0.0, jnp.zeros(3))
    with pytest.raises(ValueError, match=r"logits_a has K=3 .* logits_b has K=4"):
        analytic.categorical(jnp.zeros(3), jnp.zeros(4))
    with pytest.raises(ValueError, match="a has K=3, b has K=4"):
        jaxkl.kl(jaxkl.Categorical(jnp.zeros(3)), jaxkl.Categorical(jnp.zeros(4)))
    with pytest.raises(ValueError, match=r"shapes do not broadcast: logits_a \(2, 3\), logits_b"):
        analytic.categorical(jnp.zeros((2, 3)), jnp.zeros((4, 3)))


def test_bad_broadcast_names_arguments():
    with pytest.raises(ValueError, match=r"bernoulli: shapes do not broadcast: logits_a \(2,\)"):
        analytic.bernoulli(jnp.zeros(2), jnp.zeros(3))
    with pytest.raises(ValueError, match=r"poisson: shapes do not broadcast: rate_a \(2,\)"):
        analytic.poisson(jnp.ones(2), jnp.ones(3))
    with pytest.raises(ValueError, match=r"bernoulli_poisson: .*logits_a \(2,\), rate_b \(3,\)"):
        analytic.bernoulli_poisson(jnp.zeros(2), jnp.ones(3))
