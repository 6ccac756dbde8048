"""Cross-family KL: quadrature oracles for the finite pairs, support checks for the +inf
pairs, properties, float32 and float64 precision, transforms (jit / vmap / grad), errors."""

import math
from decimal import Decimal, localcontext

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

import jaxkl
from jaxkl.analytic import (
    beta_uniform,
    exponential_normal,
    gamma_normal,
    laplace_normal,
    normal_laplace,
    uniform_normal,
)
from jaxkl.analytic.cross_family import SUPPORT_MISMATCH_PAIRS
from tests._subset import slow_except
from tests.analytic.test_location_scale import _BERNOULLI, _PI, _dec, _lgamma_dec
from tests.oracles import quad_kl

FINITE_PAIRS = {
    (jaxkl.Laplace, jaxkl.Normal),
    (jaxkl.Normal, jaxkl.Laplace),
    (jaxkl.Uniform, jaxkl.Normal),
    (jaxkl.Exponential, jaxkl.Normal),
    (jaxkl.Gamma, jaxkl.Normal),
    (jaxkl.Beta, jaxkl.Uniform),
}
INFINITE_PAIRS = {
    *((a, b) for a in (jaxkl.Normal, jaxkl.Laplace, jaxkl.Gumbel)
      for b in (jaxkl.Exponential, jaxkl.Gamma, jaxkl.Beta, jaxkl.Uniform, jaxkl.LogNormal)),
    *((a, b) for a in (jaxkl.Exponential, jaxkl.Gamma, jaxkl.LogNormal)
      for b in (jaxkl.Uniform, jaxkl.Beta)),
}  # fmt: skip
ORACLE_PAIRS = FINITE_PAIRS | INFINITE_PAIRS

PROPERTY = settings(max_examples=25, deadline=None)


# ----------------------------------------------------------------------------- families
# Per family: random parameters, the scipy twin, and, as the first argument of a KL, an
# integration range [lo, hi] holding all but a negligible tail, with break points.
def _params(cls, rng):
    if cls in (jaxkl.Normal, jaxkl.Laplace, jaxkl.Gumbel, jaxkl.LogNormal):
        return (float(rng.normal(scale=1.5)), float(np.exp(rng.uniform(-1.0, 1.0))))
    if cls is jaxkl.Uniform:
        low = float(rng.normal())
        return (low, low + float(np.exp(rng.normal())))
    if cls is jaxkl.Exponential:
        return (float(np.exp(rng.uniform(-1.0, 1.0))),)
    if cls is jaxkl.Gamma:
        # Shapes ≥ 0.7 keep the density's singularity at 0 mild enough for quad.
        return (
            float(np.exp(rng.uniform(math.log(0.7), math.log(20.0)))),
            float(np.exp(rng.normal())),
        )
    if cls is jaxkl.Beta:
        return tuple(float(v) for v in np.exp(rng.uniform(math.log(0.7), math.log(8.0), size=2)))
    raise AssertionError(cls)


def _scipy(cls, p):
    return {
        jaxkl.Normal: lambda: stats.norm(p[0], p[1]),
        jaxkl.Laplace: lambda: stats.laplace(p[0], p[1]),
        jaxkl.Gumbel: lambda: stats.gumbel_r(p[0], p[1]),
        jaxkl.LogNormal: lambda: stats.lognorm(s=p[1], scale=math.exp(p[0])),
        jaxkl.Uniform: lambda: stats.uniform(p[0], p[1] - p[0]),
        jaxkl.Exponential: lambda: stats.expon(scale=1.0 / p[0]),
        jaxkl.Gamma: lambda: stats.gamma(p[0], scale=1.0 / p[1]),
        jaxkl.Beta: lambda: stats.beta(p[0], p[1]),
    }[cls]()


def _support(cls, p):
    if cls is jaxkl.Normal:
        return p[0] - 40 * p[1], p[0] + 40 * p[1], [p[0]]
    if cls is jaxkl.Laplace:
        return p[0] - 60 * p[1], p[0] + 60 * p[1], [p[0]]
    if cls is jaxkl.Uniform:
        return p[0], p[1], None
    if cls is jaxkl.Exponential:
        return 0.0, 80.0 / p[0], None
    if cls is jaxkl.Gamma:
        mode = max(p[0] - 1.0, 0.0) / p[1]
        return 0.0, stats.gamma.isf(1e-30, p[0], scale=1.0 / p[1]), [mode] if mode > 0 else None
    if cls is jaxkl.Beta:
        return 0.0, 1.0, None
    raise AssertionError(cls)


def _quad(cls_a, pa, cls_b, pb):
    lo, hi, points = _support(cls_a, pa)
    if cls_b is jaxkl.Laplace:
        points = [*(points or []), pb[0]]  # b's kink
    if points is not None:
        points = sorted({x for x in points if lo < x < hi})
    return quad_kl(
        _scipy(cls_a, pa).logpdf, _scipy(cls_b, pb).logpdf, lo, hi, points=points or None
    )


def _b_params(cls_a, cls_b, rng):
    if (cls_a, cls_b) == (jaxkl.Beta, jaxkl.Uniform):
        # [0, 1] inside [low, high]: the finite case.
        return (-float(rng.exponential()), 1.0 + float(rng.exponential()))
    return _params(cls_b, rng)


# ----------------------------------------------------------------------------- finite pairs
def _sorted(pairs):
    return sorted(pairs, key=lambda p: (p[0].__name__, p[1].__name__))


def _pair_id(pair):
    return f"{pair[0].__name__}-{pair[1].__name__}"


_PAIR_INDEX = {p: i for i, p in enumerate(_sorted(ORACLE_PAIRS))}


@pytest.mark.parametrize("pair", _sorted(FINITE_PAIRS), ids=_pair_id)
@pytest.mark.parametrize("seed", range(4))
def test_finite_pairs_match_quadrature(pair, seed):
    cls_a, cls_b = pair
    rng = np.random.default_rng([_PAIR_INDEX[pair], seed])
    pa, pb = _params(cls_a, rng), _b_params(cls_a, cls_b, rng)
    with jax.enable_x64(True):
        out = jaxkl.kl(cls_a(*pa), cls_b(*pb))
        assert out.dtype == jnp.float64 and out.shape == ()
        np.testing.assert_allclose(out, _quad(cls_a, pa, cls_b, pb), rtol=1e-8, atol=1e-12)


def test_laplace_and_normal_both_directions_on_the_same_parameters():
    rng = np.random.default_rng(11)
    for _ in range(4):
        pn, pl = _params(jaxkl.Normal, rng), _params(jaxkl.Laplace, rng)
        with jax.enable_x64(True):
            nor, lap = jaxkl.Normal(*pn), jaxkl.Laplace(*pl)
            ref = _quad(jaxkl.Normal, pn, jaxkl.Laplace, pl)
            np.testing.assert_allclose(jaxkl.kl(nor, lap), ref, rtol=1e-8)
            ref = _quad(jaxkl.Laplace, pl, jaxkl.Normal, pn)
            np.testing.assert_allclose(jaxkl.kl(lap, nor), ref, rtol=1e-8)


@pytest.mark.parametrize(
    "interval",
    [(0.1, 1.0), (0.0, 0.9), (-1.0, 0.5), (0.2, 0.8), (2.0, 3.0)],
    ids=["cuts-left", "cuts-right", "ends-inside", "inside", "disjoint"],
)
def test_beta_uniform_not_covering_unit_interval_is_inf(interval):
    a, b = stats.beta(2.0, 3.0), stats.uniform(interval[0], interval[1] - interval[0])
    assert quad_kl(a.logpdf, b.logpdf, 0.0, 1.0) == np.inf
    assert float(jaxkl.kl(jaxkl.Beta(2.0, 3.0), jaxkl.Uniform(*interval))) == np.inf
    assert float(beta_uniform(2.0, 3.0, *interval)) == np.inf


def test_beta_uniform_exact_unit_interval():
    # [0, 1] itself is allowed: Beta(1, 1) is U(0, 1).
    assert float(jaxkl.kl(jaxkl.Beta(1.0, 1.0), jaxkl.Uniform(0.0, 1.0))) == 0.0
    np.testing.assert_allclose(beta_uniform(1.0, 1.0, -1.0, 1.0), np.log(2.0), rtol=1e-6)


def test_gamma_with_unit_shape_is_the_exponential():
    rate, loc, scale = (
        jnp.array([0.3, 1.0, 4.0]),
        jnp.array([-1.0, 0.5, 2.0]),
        jnp.array([0.5, 1.0, 3.0]),
    )
    np.testing.assert_allclose(
        gamma_normal(1.0, rate, loc, scale), exponential_normal(rate, loc, scale), rtol=3e-6
    )


def test_kl_broadcasts_batch_shapes():
    a = jaxkl.Laplace(jnp.zeros((3, 1)), jnp.ones((3, 1)))
    b = jaxkl.Normal(jnp.arange(4.0), 2.0 * jnp.ones(4))
    out = jaxkl.kl(a, b)
    assert out.shape == (3, 4)
    np.testing.assert_allclose(out[1], laplace_normal(0.0, 1.0, jnp.arange(4.0), 2.0), rtol=1e-6)


# ----------------------------------------------------------------------------- +inf pairs
def _outside_point(cls_a, pa, cls_b, pb):
    """A point where a has positive density and b has none (scipy decides both)."""
    a, b = _scipy(cls_a, pa), _scipy(cls_b, pb)
    for x in (-1.0, 2.0, b.support()[1] + 1.0, b.support()[0] - 1.0):
        if np.isfinite(a.logpdf(x)) and b.logpdf(x) == -np.inf:
            return x
    return None


def test_support_mismatch_list_matches_the_module():
    assert set(SUPPORT_MISMATCH_PAIRS) == INFINITE_PAIRS
    assert len(SUPPORT_MISMATCH_PAIRS) == len(INFINITE_PAIRS) == 21


@pytest.mark.parametrize("pair", _sorted(INFINITE_PAIRS), ids=_pair_id)
def test_support_mismatch_pairs_are_inf(pair):
    cls_a, cls_b = pair
    rng = np.random.default_rng(5)
    pa, pb = _params(cls_a, rng), _params(cls_b, rng)
    # The oracle: scipy says a has density where b has none, and quadrature diverges.
    assert _outside_point(cls_a, pa, cls_b, pb) is not None
    a_sp, b_sp = _scipy(cls_a, pa), _scipy(cls_b, pb)
    lo, hi = a_sp.ppf(1e-12), a_sp.isf(1e-12)
    assert quad_kl(a_sp.logpdf, b_sp.logpdf, lo, hi) == np.inf
    # Batched: the result has the broadcast batch shape and the parameters' dtype.
    a = cls_a(*(jnp.full((3, 1), v) for v in pa))
    b = cls_b(*(jnp.full((4,), v) for v in pb))
    out = jaxkl.kl(a, b)
    assert out.shape == (3, 4) and out.dtype == jnp.float32
    assert bool(jnp.all(out == jnp.inf))
    with jax.enable_x64(True):
        assert jaxkl.kl(cls_a(*pa), cls_b(*pb)).dtype == jnp.float64


def test_support_mismatch_under_jit_vmap_grad():
    def f(loc, rate):
        return jaxkl.kl(jaxkl.Normal(loc, 1.0), jaxkl.Exponential(rate))

    assert float(jax.jit(f)(0.0, 1.0)) == np.inf
    assert jax.vmap(f)(jnp.zeros(5), jnp.ones(5)).shape == (5,)
    g = jax.grad(f, argnums=(0, 1))(0.0, 1.0)
    np.testing.assert_array_equal(g, 0.0)


def test_support_mismatch_batch_shapes_must_broadcast():
    with pytest.raises(ValueError, match=r"jaxkl\.kl\(Normal, Exponential\): batch shapes do not"):
        jaxkl.kl(jaxkl.Normal(jnp.zeros(3), 1.0), jaxkl.Exponential(jnp.ones(4)))


# ----------------------------------------------------------------------------- properties
_loc = st.floats(-5.0, 5.0)
_log_scale = st.floats(-3.0, 3.0)

# The lower bounds each kernel must respect: the negentropy J of a (KL ≥ J ≥ 0), or
# log 2 + ½ − log π for Normal ‖ Laplace.
_FLOOR = {
    "laplace_normal": 0.5 * math.log(math.pi) - 0.5,
    "uniform_normal": 0.5 * math.log(math.pi * math.e / 6.0),
    "exponential_normal": 0.5 * math.log(2 * math.pi) - 0.5,
    "normal_laplace": math.log(2.0) + 0.5 - math.log(math.pi),
}


@PROPERTY
@given(loc_a=_loc, ls_a=_log_scale, loc_b=_loc, ls_b=_log_scale)
def test_location_scale_kernels_respect_their_floor(loc_a, ls_a, loc_b, ls_b):
    sa, sb = math.exp(ls_a), math.exp(ls_b)
    values = {
        "laplace_normal": laplace_normal(loc_a, sa, loc_b, sb),
        "normal_laplace": normal_laplace(loc_a, sa, loc_b, sb),
        "uniform_normal": uniform_normal(loc_a, loc_a + sa, loc_b, sb),
        "exponential_normal": exponential_normal(sa, loc_b, sb),
    }
    for name, v in values.items():
        # float32 rounding of the floor constant itself: a relative 1e-6 slack.
        assert float(v) >= _FLOOR[name] * (1 - 1e-6), name


@PROPERTY
@given(log_k=st.floats(-3.0, 9.0), log_rate=_log_scale, loc=_loc, log_scale=_log_scale)
def test_gamma_normal_is_positive(log_k, log_rate, loc, log_scale):
    args = (math.exp(log_k), math.exp(log_rate), loc, math.exp(log_scale))
    assert float(gamma_normal(*args)) > 0.0


@PROPERTY
@given(log_c1=st.floats(-3.0, 5.0), log_c0=st.floats(-3.0, 5.0), low=st.floats(-5.0, 0.0),
       high=st.floats(1.0, 6.0))  # fmt: skip
def test_beta_uniform_is_non_negative(log_c1, log_c0, low, high):
    assert float(beta_uniform(math.exp(log_c1), math.exp(log_c0), low, high)) >= 0.0


# ----------------------------------------------------------------------------- precision
def _digamma_dec(x):
    """ψ(x) for x > 0 in decimal: shift by 40, then the asymptotic series (error < 1e-40)."""
    shift = sum(1 / (x + k) for k in range(40))
    z = x + 40
    out = z.ln() - 1 / (2 * z)
    for n, b in enumerate(_BERNOULLI, start=1):
        out -= Decimal(b.numerator) / Decimal(b.denominator) / (2 * n * z ** (2 * n))
    return out - shift


def _gamma_negentropy_dec(k):
    with localcontext() as ctx:
        ctx.prec = 50
        k = _dec(k)
        half = Decimal("0.5")
        j = half * (2 * _PI * k).ln() + half - k - _lgamma_dec(k) - (1 - k) * _digamma_dec(k)
        return float(j)


def test_decimal_digamma_oracle_matches_scipy():
    with localcontext() as ctx:
        ctx.prec = 50
        for x in (0.3, 1.0, 2.5, 17.0):
            np.testing.assert_allclose(
                float(_digamma_dec(Decimal(x))), special.digamma(x), rtol=1e-14
            )


def _textbook_normal_laplace(la, sa, lb, sb):
    # Decimal has no erf, so erf comes from scipy in float64: a 1e-16 relative error on
    # δ·erf(δ/√2), a term no larger than the KL's other terms.
    delta = (la - lb) / sa
    pi = _PI
    with localcontext() as ctx:
        ctx.prec = 50
        d = _dec(delta)
        erf_term = d * _dec(special.erf(float(delta) / math.sqrt(2.0)))
        m = (2 / pi).sqrt() * (-(d * d) / 2).exp() + erf_term
        kl = (
            (2 * _dec(sb) / _dec(sa)).ln()
            - Decimal("0.5")
            - (2 * pi).ln() / 2
            + _dec(sa) / _dec(sb) * m
        )
        return float(kl)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normal_laplace_precision_against_decimal_textbook(dtype):
    rng = np.random.default_rng(21)
    n = 100
    la, sa = rng.normal(size=n), np.exp(rng.normal(size=n))
    lb, sb = la + sa * rng.normal(size=n), sa * np.exp(rng.normal(scale=0.5, size=n))
    args = [np.asarray(v, dtype) for v in (la, sa, lb, sb)]
    ref = np.array([_textbook_normal_laplace(*row) for row in zip(*args, strict=True)])
    with jax.enable_x64(dtype == np.float64):
        out = normal_laplace(*args)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, ref, rtol=2e-6 if dtype == np.float32 else 1e-12)


def _beta_negentropy_dec(c1, c0):
    """−H(Beta(c1, c0)) in 50-digit decimal from the textbook entropy formula."""
    with localcontext() as ctx:
        ctx.prec = 50
        a, b = _dec(c1), _dec(c0)
        log_beta = _lgamma_dec(a) + _lgamma_dec(b) - _lgamma_dec(a + b)
        neg_h = (
            -log_beta
            + (a - 1) * _digamma_dec(a)
            + (b - 1) * _digamma_dec(b)
            - (a + b - 2) * _digamma_dec(a + b)
        )
        return float(neg_h)


# Each spread computes 80 negentropies in 50-digit decimal. CI keeps each region of each
# dtype: 1e-4 the series near the uniform (both dtypes); 0.4 (|α − 1| up to 0.49)
# float32's series up to its switch at ½ and float64 on both sides of its switch at ¼;
# 3.0 the direct form far out. 1e-2 lies in the series region of both dtypes, as 1e-4
# does; it runs under --run-slow.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spread", [1e-4, pytest.param(1e-2, marks=pytest.mark.slow), 0.4, 3.0])
def test_beta_uniform_precision_near_and_far_from_the_uniform(spread, dtype):
    rng = np.random.default_rng(22)
    c = np.exp(spread * rng.uniform(-1.0, 1.0, size=(2, 40))).astype(dtype)
    ref = np.array([_beta_negentropy_dec(x, y) for x, y in c.T])
    with jax.enable_x64(dtype == np.float64):
        out = beta_uniform(c[0], c[1], 0.0, 1.0)
    assert out.dtype == dtype
    if dtype == np.float64:
        np.testing.assert_allclose(out, ref, rtol=1e-12)
    elif spread < 0.5:  # inside the float32 series region: relative precision
        np.testing.assert_allclose(out, ref, rtol=2e-6)
    else:  # the direct form: jax's float32 betaln/digamma are good to ~1e-6 absolute
        np.testing.assert_allclose(out, ref, rtol=2e-6, atol=3e-6)


def test_float32_beta_uniform_width_just_above_one():
    # log(1 − low) for the float32 value of low: the width 1 − low is not representable
    # in float32 exactly, but log1p of (1 − 1) − low is.
    low = np.float32(-1e-4)
    ref = math.log1p(-float(low))
    np.testing.assert_allclose(beta_uniform(1.0, 1.0, low, 1.0), ref, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [0.5, 3.9, 4.0, 9.9, 10.0, 30.0, 1e3, 1e5])
def test_gamma_normal_precision_for_small_and_large_shapes(k, dtype):
    # At the moment-matched normal only the Gamma negentropy J(k) ≈ 1/(3k) remains, which
    # the direct form (terms of size k log k) could not resolve for large k.
    rate = 2.0
    args = [np.asarray(v, dtype) for v in (k, rate, k / rate, math.sqrt(k) / rate)]
    with jax.enable_x64(dtype == np.float64):
        out = gamma_normal(*args)
    assert out.dtype == dtype
    if dtype == np.float64:
        rtol = 1e-12
    else:  # below k = 4 the direct form inherits jax's float32 gammaln/digamma errors
        rtol = 2e-5 if k < 4 else 2e-6
    np.testing.assert_allclose(out, _gamma_negentropy_dec(k), rtol=rtol)


# ----------------------------------------------------------------------------- transforms
KERNELS = {
    "laplace_normal": (laplace_normal, jaxkl.Laplace, jaxkl.Normal),
    "normal_laplace": (normal_laplace, jaxkl.Normal, jaxkl.Laplace),
    "uniform_normal": (uniform_normal, jaxkl.Uniform, jaxkl.Normal),
    "exponential_normal": (exponential_normal, jaxkl.Exponential, jaxkl.Normal),
    "gamma_normal": (gamma_normal, jaxkl.Gamma, jaxkl.Normal),
    "beta_uniform": (beta_uniform, jaxkl.Beta, jaxkl.Uniform),
}


def _kernel_args(name, rng):
    _, cls_a, cls_b = KERNELS[name]
    return [*_params(cls_a, rng), *_b_params(cls_a, cls_b, rng)]


def _batched_args(name, rng, n):
    rows = [_kernel_args(name, rng) for _ in range(n)]
    return [jnp.asarray(col, jnp.float32) for col in zip(*rows, strict=True)]


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_jit_equals_eager_and_vmap_equals_loop(name):
    f = KERNELS[name][0]
    args = _batched_args(name, np.random.default_rng(3), 5)
    eager = f(*args)
    np.testing.assert_allclose(jax.jit(f)(*args), eager, rtol=1e-6)
    looped = jnp.stack([f(*(a[i] for a in args)) for i in range(5)])
    np.testing.assert_allclose(jax.vmap(f)(*args), looped, rtol=1e-6)
    np.testing.assert_allclose(eager, looped, rtol=1e-6)


# A jitted function traces once per argument shape and dtype whatever kernel it calls
# (each kernel traces under jit in test_jit_equals_eager_and_vmap_equals_loop), so CI
# checks the cache on one kernel, the one that compiles fastest; --run-slow runs all six.
@pytest.mark.parametrize(
    "name", slow_except(sorted(KERNELS), sorted(KERNELS), keep={"laplace_normal"})
)
def test_no_retrace_with_same_shapes(name):
    f, traces = KERNELS[name][0], []

    @jax.jit
    def g(*args):
        traces.append(None)
        return f(*args)

    rng = np.random.default_rng(4)
    g(*_batched_args(name, rng, 3))
    g(*_batched_args(name, rng, 3))
    assert len(traces) == 1


def _central_differences(f, args, h=1e-6):
    grads = []
    for i in range(len(args)):
        up = [*args[:i], args[i] + h, *args[i + 1 :]]
        down = [*args[:i], args[i] - h, *args[i + 1 :]]
        grads.append((float(f(*up)) - float(f(*down))) / (2 * h))
    return np.array(grads)


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("seed", range(2))
def test_grad_matches_finite_differences_float64(name, seed):
    f = KERNELS[name][0]
    args = _kernel_args(name, np.random.default_rng(60 + seed))
    if seed == 1 and name == "beta_uniform":
        args[:2] = [1.01, 0.98]  # inside the series region near the uniform
    if seed == 1 and name == "gamma_normal":
        args[0] = 12.0  # inside the asymptotic region of J(k)
    with jax.enable_x64(True):
        g = np.array(jax.grad(f, argnums=tuple(range(len(args))))(*args))
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, _central_differences(f, args), rtol=1e-6, atol=1e-8)


def test_grad_is_finite_where_kernels_switch_form():
    with jax.enable_x64(True):
        g = jax.grad(beta_uniform, argnums=(0, 1))(1.0, 1.0, 0.0, 1.0)
        np.testing.assert_array_equal(g, 0.0)  # the minimum of −H(Beta)
        g = jax.grad(normal_laplace, argnums=(0, 1, 2, 3))(0.0, 1.0, 0.0, 1.0)
        assert np.all(np.isfinite(np.array(g)))
        # float64 sums J(k) from its series from k = 10 on.
        for k in (10.0 - 1e-9, 10.0 + 1e-9):
            args = [k, 1.0, k, math.sqrt(k)]
            g = jax.grad(gamma_normal)(*args)
            np.testing.assert_allclose(g, _central_differences(gamma_normal, args)[0], rtol=1e-6)


def test_continuous_where_kernels_switch_form():
    with jax.enable_x64(True):
        # At the moment-matched normal only J(k) remains, so the comparison is sharp.
        lo, hi = (gamma_normal(k, 1.0, k, math.sqrt(k)) for k in (10.0 * (1 - 1e-15), 10.0))
        np.testing.assert_allclose(lo, hi, rtol=1e-12)
        # −H(Beta) switches to its series where |α − 1|, |β − 1| < ¼ (float64).
        for c in (0.75, 1.25):
            lo = beta_uniform(c * (1 - 1e-12), 1.1, 0.0, 1.0)
            hi = beta_uniform(c * (1 + 1e-12), 1.1, 0.0, 1.0)
            np.testing.assert_allclose(lo, hi, rtol=1e-10)
    # float32 switches at k = 4 and |α − 1|, |β − 1| = ½.
    k_lo, k_hi = np.float32(4.0 * (1 - 1e-7)), np.float32(4.0)
    lo, hi = (gamma_normal(k, 1.0, k, np.sqrt(k)) for k in (k_lo, k_hi))
    np.testing.assert_allclose(lo, hi, rtol=1e-5)
    for c in (0.5, 1.5):
        lo, hi = (beta_uniform(np.float32(c * f), 1.2, 0.0, 1.0) for f in (1 - 1e-7, 1 + 1e-7))
        # The direct float32 form sums O(1) terms of betaln/digamma, each accurate to
        # ~1e-6 absolute in jax, so it is only good to a few 1e-6 absolute.
        np.testing.assert_allclose(lo, hi, rtol=0, atol=3e-6)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernel_shape_mismatch_names_arguments(name):
    f = KERNELS[name][0]
    n_args = len(_kernel_args(name, np.random.default_rng(0)))
    args = [jnp.ones(3)] * (n_args - 1) + [jnp.ones(4)]
    with pytest.raises(ValueError, match=rf"jaxkl\.analytic\.{name}: shapes do not broadcast"):
        f(*args)


def test_unregistered_cross_pair_raises():
    with pytest.raises(jaxkl.NoAnalyticKL, match="Uniform"):
        jaxkl.kl(jaxkl.Uniform(0.0, 1.0), jaxkl.Laplace(0.0, 1.0))
