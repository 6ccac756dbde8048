"""Laplace, Gumbel and Uniform KL: quadrature oracles, properties, float32 and float64
precision against 50-digit decimal oracles, transforms (jit / vmap / grad) and errors."""

import math
from decimal import Decimal, localcontext
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

import jaxkl
from jaxkl.analytic import gumbel, laplace, uniform
from tests._subset import slow_except
from tests.oracles import quad_kl

ORACLE_PAIRS = {
    (jaxkl.Laplace, jaxkl.Laplace),
    (jaxkl.Gumbel, jaxkl.Gumbel),
    (jaxkl.Uniform, jaxkl.Uniform),
}

PROPERTY = settings(max_examples=25, deadline=None)
KERNELS = {"laplace": laplace, "gumbel": gumbel}


# ----------------------------------------------------------------------------- oracles
def _random_loc_scale(rng):
    return float(rng.normal(scale=1.5)), float(np.exp(rng.uniform(-1.0, 1.0)))


def _laplace_quad(pa, pb):
    (la, sa), (lb, sb) = pa, pb
    a, b = stats.laplace(la, sa), stats.laplace(lb, sb)
    # ±60 scales hold all but e^-60 of a's mass; both kinks are break points for quad.
    lo, hi = la - 60 * sa, la + 60 * sa
    points = sorted({la} | ({lb} if lo < lb < hi else set()))
    return quad_kl(a.logpdf, b.logpdf, lo, hi, points=points)


def _gumbel_quad(pa, pb):
    (la, sa), (lb, sb) = pa, pb
    a, b = stats.gumbel_r(la, sa), stats.gumbel_r(lb, sb)
    # Left of loc − 6·scale a's density is below exp(6 − e^6) ≈ e^-397; right tail e^-80.
    return quad_kl(a.logpdf, b.logpdf, la - 6 * sa, la + 80 * sa, points=[la])


# CI runs seed 0 (both directions in the far form) and seed 1 (both in the near form,
# |log(b_a/b_b)| < ½ and |Δ|/b_a < ½); seeds 2–5 are far pairs again: --run-slow.
@pytest.mark.parametrize("seed", slow_except(range(6), [str(s) for s in range(6)], ["0", "1"]))
def test_laplace_matches_quadrature_both_directions(seed):
    rng = np.random.default_rng(seed)
    pa, pb = _random_loc_scale(rng), _random_loc_scale(rng)
    with jax.enable_x64(True):
        a, b = jaxkl.Laplace(*pa), jaxkl.Laplace(*pb)
        np.testing.assert_allclose(jaxkl.kl(a, b), _laplace_quad(pa, pb), rtol=1e-8)
        np.testing.assert_allclose(jaxkl.kl(b, a), _laplace_quad(pb, pa), rtol=1e-8)


# Every seed's scale ratio is outside the series radius (the radius is held to 50-digit
# oracles by the precision test below). CI runs seed 0 (expm1(w) − w direct both ways) and
# seeds 2 and 3 (one direction each with |w| < 1, its series); seeds 1, 4 and 5 repeat
# seed 0's branches (0.2 s of scipy quadrature each): --run-slow.
@pytest.mark.parametrize("seed", slow_except(range(6), [str(s) for s in range(6)], ["0", "2", "3"]))
def test_gumbel_matches_quadrature_both_directions(seed):
    rng = np.random.default_rng(100 + seed)
    pa, pb = _random_loc_scale(rng), _random_loc_scale(rng)
    with jax.enable_x64(True):
        a, b = jaxkl.Gumbel(*pa), jaxkl.Gumbel(*pb)
        np.testing.assert_allclose(jaxkl.kl(a, b), _gumbel_quad(pa, pb), rtol=1e-8)
        np.testing.assert_allclose(jaxkl.kl(b, a), _gumbel_quad(pb, pa), rtol=1e-8)


@pytest.mark.parametrize("seed", range(6))
def test_uniform_nested_matches_quadrature_and_reverse_is_inf(seed):
    rng = np.random.default_rng(200 + seed)
    la = rng.normal()
    ha = la + np.exp(rng.normal())
    lb, hb = la - rng.exponential(), ha + rng.exponential()  # [la, ha] ⊂ [lb, hb]
    sa, sb = stats.uniform(la, ha - la), stats.uniform(lb, hb - lb)
    with jax.enable_x64(True):
        a, b = jaxkl.Uniform(la, ha), jaxkl.Uniform(lb, hb)
        np.testing.assert_allclose(jaxkl.kl(a, b), quad_kl(sa.logpdf, sb.logpdf, la, ha), rtol=1e-9)
        # The wider interval has mass where the narrower has none.
        assert quad_kl(sb.logpdf, sa.logpdf, lb, hb) == np.inf
        assert float(jaxkl.kl(b, a)) == np.inf


@pytest.mark.parametrize(
    "interval_b",
    [(0.5, 3.0), (-1.0, 0.5), (0.5, 0.7), (2.0, 3.0)],
    ids=["cuts-left", "cuts-right", "inside", "disjoint"],
)
def test_uniform_not_nested_is_inf(interval_b):
    sa, sb = stats.uniform(0.0, 1.0), stats.uniform(interval_b[0], interval_b[1] - interval_b[0])
    assert quad_kl(sa.logpdf, sb.logpdf, 0.0, 1.0) == np.inf
    assert float(jaxkl.kl(jaxkl.Uniform(0.0, 1.0), jaxkl.Uniform(*interval_b))) == np.inf


def test_uniform_equal_endpoints_are_nested():
    assert float(jaxkl.kl(jaxkl.Uniform(0.0, 1.0), jaxkl.Uniform(0.0, 1.0))) == 0.0
    np.testing.assert_allclose(uniform(0.0, 1.0, 0.0, 3.0), np.log(3.0), rtol=1e-6)
    np.testing.assert_allclose(uniform(2.0, 3.0, 0.0, 3.0), np.log(3.0), rtol=1e-6)


# The same Laplace batch (3, 1) against a (4,) batch through jaxkl.kl and the elementwise
# kernel's broadcasting, value included, is CI's
# tests/analytic/test_cross_family.py::test_kl_broadcasts_batch_shapes (Laplace ‖ Normal):
# --run-slow.
@pytest.mark.slow
def test_kl_broadcasts_batch_shapes():
    a = jaxkl.Laplace(jnp.zeros((3, 1)), jnp.ones((3, 1)))
    b = jaxkl.Laplace(jnp.arange(4.0), 2.0 * jnp.ones(4))
    out = jaxkl.kl(a, b)
    assert out.shape == (3, 4)
    np.testing.assert_allclose(out[1], laplace(0.0, 1.0, jnp.arange(4.0), 2.0), rtol=1e-6)


# ----------------------------------------------------------------------------- properties
_loc = st.floats(-5.0, 5.0)
_log_scale = st.floats(-3.0, 3.0)


@PROPERTY
@given(kind=st.sampled_from(sorted(KERNELS)), loc=_loc, log_scale=_log_scale)
def test_kl_of_a_with_itself_is_zero(kind, loc, log_scale):
    scale = math.exp(log_scale)
    assert float(KERNELS[kind](loc, scale, loc, scale)) == 0.0


@PROPERTY
@given(low=_loc, log_width=_log_scale)
def test_uniform_kl_of_a_with_itself_is_zero(low, log_width):
    high = low + math.exp(log_width)
    assert float(uniform(low, high, low, high)) == 0.0


# A negative KL could only come from cancellation near a = b; CI holds both kernels there
# (and on both sides of every switch) to a few float32 or float64 roundoffs of positive
# 50-digit values in test_relative_precision_near_and_far_from_equal_parameters, and at
# a = b to exactly 0 in test_kl_of_a_with_itself_is_zero: --run-slow.
@pytest.mark.slow
@PROPERTY
@given(
    kind=st.sampled_from(sorted(KERNELS)),
    loc_a=_loc,
    log_scale_a=_log_scale,
    loc_b=_loc,
    log_scale_b=_log_scale,
)
def test_kl_is_non_negative(kind, loc_a, log_scale_a, loc_b, log_scale_b):
    args = (loc_a, math.exp(log_scale_a), loc_b, math.exp(log_scale_b))
    assert float(KERNELS[kind](*args)) >= 0.0
    with jax.enable_x64(True):
        assert float(KERNELS[kind](*args)) >= 0.0


@PROPERTY
@given(low_a=_loc, log_w_a=_log_scale, low_b=_loc, log_w_b=_log_scale)
def test_uniform_kl_is_non_negative(low_a, log_w_a, low_b, log_w_b):
    kl = float(uniform(low_a, low_a + math.exp(log_w_a), low_b, low_b + math.exp(log_w_b)))
    assert kl >= 0.0


# ----------------------------------------------------------------------------- precision
# The oracles for the float32 precision test: textbook formulas in 50-digit decimal
# arithmetic, so their own cancellation near a = b (KL down to ~1e-13) is irrelevant.
_PREC = 50
_PI = Decimal("3.14159265358979323846264338327950288419716939937510")
_EULER = Decimal("0.57721566490153286060651209008240243104215933593992")
_BERNOULLI = [Fraction(1, 6), Fraction(-1, 30), Fraction(1, 42), Fraction(-1, 30),
              Fraction(5, 66), Fraction(-691, 2730), Fraction(7, 6)]  # fmt: skip


def _dec(x):
    return Decimal(float(x))


def _lgamma_dec(x):
    """log Γ(x) for x > 0: shift by 40, then Stirling's series (error < 1e-40)."""
    shift = sum((x + k).ln() for k in range(40))
    z = x + 40
    out = (z - Decimal("0.5")) * z.ln() - z + (2 * _PI).ln() / 2
    for n, b in enumerate(_BERNOULLI, start=1):
        out += (
            Decimal(b.numerator) / Decimal(b.denominator) / (2 * n * (2 * n - 1) * z ** (2 * n - 1))
        )
    return out - shift


def _textbook_laplace(la, sa, lb, sb):
    with localcontext() as ctx:
        ctx.prec = _PREC
        la, sa, lb, sb = map(_dec, (la, sa, lb, sb))
        d = abs(la - lb)
        return float((sb / sa).ln() + d / sb + sa / sb * (-d / sa).exp() - 1)


def _textbook_gumbel(la, sa, lb, sb):
    with localcontext() as ctx:
        ctx.prec = _PREC
        la, sa, lb, sb = map(_dec, (la, sa, lb, sb))
        r = sa / sb
        return float(
            -r.ln()
            + _EULER * (r - 1)
            + (la - lb) / sb
            + ((lb - la) / sb + _lgamma_dec(r + 1)).exp()
            - 1
        )


def test_decimal_lgamma_oracle_matches_scipy():
    for x in (0.1, 1.0, 1.5, 2.0, 7.25, 30.0):
        np.testing.assert_allclose(float(_lgamma_dec(Decimal(x))), special.gammaln(x), atol=1e-15)


# CI runs spread 1e-5 (every pair in the near forms: Laplace's near form, Gumbel within
# the series radius, KL down to ~1e-11) and 1.0 (pairs on both sides of every switch:
# Laplace 24 near, 76 far; Gumbel within and beyond the radius, |w| below and above 1),
# for each kernel and dtype. Spreads 1e-3 and 1e-1 put every pair in the near forms
# again, which 1.0's near pairs also sample out to the switch: --run-slow.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", sorted(KERNELS))
@pytest.mark.parametrize(
    "spread",
    slow_except([1e-5, 1e-3, 1e-1, 1.0], ["1e-05", "0.001", "0.1", "1.0"], ["1e-05", "1.0"]),
)
def test_relative_precision_near_and_far_from_equal_parameters(kind, spread, dtype):
    textbook = {"laplace": _textbook_laplace, "gumbel": _textbook_gumbel}[kind]
    # Measured worst cases. float32: ≤ 6.5e-7 (Gumbel at scale ratios beyond the series
    # region was 6.5e-6, from jax's float32 gammaln, before its double-float refinement).
    # float64: ≤ 6e-14.
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    rng = np.random.default_rng(7)
    n = 100
    la, sa = rng.normal(size=n), np.exp(rng.normal(size=n))
    lb, sb = la + spread * sa * rng.normal(size=n), sa * np.exp(spread * rng.normal(size=n))
    args = [np.asarray(v, dtype) for v in (la, sa, lb, sb)]
    ref = np.array([textbook(*row) for row in zip(*args, strict=True)])
    with jax.enable_x64(dtype == np.float64):
        out = np.asarray(KERNELS[kind](*args))
    assert out.dtype == dtype
    np.testing.assert_allclose(out, ref, rtol=rtol, atol=0)


def test_textbook_forms_lose_float32_precision_where_the_kernels_do_not():
    # Guard that the precision test above is meaningful: the naive float32 formula is
    # visibly wrong for a 1e-4 relative change of scale.
    args = [np.float32(v) for v in (0.0, 1.0, 0.0, 1.0001)]
    d = args[2] - args[0]
    naive = np.log(args[3] / args[1]) + abs(d) / args[3] + args[1] / args[3] * np.exp(-abs(d)) - 1
    ref = _textbook_laplace(*args)
    assert abs(naive - ref) > 1e-3 * ref
    np.testing.assert_allclose(laplace(*args), ref, rtol=1e-6)


@pytest.mark.parametrize("kind", sorted(KERNELS))
def test_continuous_across_branch_switches(kind):
    # Laplace switches form at |log(b_a/b_b)| = ½ and |Δ|/b_a = ½; Gumbel at
    # |b_a/b_b − 1| = ¼ (float64) or ½ (float32), and expm1(w) − w at |w| = 1.
    f = KERNELS[kind]
    with jax.enable_x64(True):
        for ratio in (math.exp(0.5), math.exp(-0.5), 1.25, 0.75):
            lo, hi = (f(0.0, ratio * g, 0.0, 1.0) for g in (1 - 1e-12, 1 + 1e-12))
            np.testing.assert_allclose(lo, hi, rtol=1e-10)
        for shift in (0.5, 1.0, -1.0):
            lo, hi = (f(shift * g, 1.0, 0.0, 1.0) for g in (1 - 1e-12, 1 + 1e-12))
            np.testing.assert_allclose(lo, hi, rtol=1e-10)
    for ratio in (1.5, 0.5):
        lo, hi = (f(0.0, np.float32(ratio * g), 0.0, 1.0) for g in (1 - 1e-7, 1 + 1e-7))
        np.testing.assert_allclose(lo, hi, rtol=1e-5)


# ----------------------------------------------------------------------------- transforms
_ALL = {"laplace": laplace, "gumbel": gumbel, "uniform": uniform}


def _batch(kind, rng, n):
    if kind == "uniform":
        la = rng.normal(size=n)
        ha = la + np.exp(rng.normal(size=n))
        return la, ha, la - rng.exponential(size=n), ha + rng.exponential(size=n)
    return (
        rng.normal(size=n),
        np.exp(rng.normal(size=n)),
        rng.normal(size=n),
        np.exp(rng.normal(size=n)),
    )


@pytest.mark.parametrize("kind", sorted(_ALL))
def test_jit_equals_eager_and_vmap_equals_loop(kind):
    f = _ALL[kind]
    args = [jnp.asarray(v, jnp.float32) for v in _batch(kind, np.random.default_rng(3), 5)]
    eager = f(*args)
    np.testing.assert_allclose(jax.jit(f)(*args), eager, rtol=1e-6)
    looped = jnp.stack([f(*(a[i] for a in args)) for i in range(5)])
    np.testing.assert_allclose(jax.vmap(f)(*args), looped, rtol=1e-6)
    np.testing.assert_allclose(eager, looped, rtol=1e-6)


# A jitted function traces once per argument shape and dtype whatever kernel it calls
# (each kernel traces under jit in test_jit_equals_eager_and_vmap_equals_loop), so CI
# checks the cache on one kernel, the one that compiles fastest (Laplace); --run-slow runs
# all three.
@pytest.mark.parametrize("kind", slow_except(sorted(_ALL), sorted(_ALL), keep={"laplace"}))
def test_no_retrace_with_same_shapes(kind):
    f, traces = _ALL[kind], []

    @jax.jit
    def g(*args):
        traces.append(None)
        return f(*args)

    rng = np.random.default_rng(4)
    g(*(jnp.asarray(v, jnp.float32) for v in _batch(kind, rng, 3)))
    g(*(jnp.asarray(v, jnp.float32) for v in _batch(kind, rng, 3)))
    assert len(traces) == 1


def _central_differences(f, args, h=1e-6):
    grads = []
    for i in range(len(args)):
        up = [*args[:i], args[i] + h, *args[i + 1 :]]
        down = [*args[:i], args[i] - h, *args[i + 1 :]]
        grads.append((float(f(*up)) - float(f(*down))) / (2 * h))
    return np.array(grads)


@pytest.mark.parametrize("kind", sorted(_ALL))
@pytest.mark.parametrize("seed", range(3))
def test_grad_matches_finite_differences_float64(kind, seed):
    f = _ALL[kind]
    rng = np.random.default_rng(50 + seed)
    # Include one point inside the near-equal (series) region of each kernel.
    args = [float(v[0]) for v in _batch(kind, rng, 1)]
    if seed == 0 and kind != "uniform":
        args = [args[0], args[1], args[0] + 0.01 * args[1], args[1] * 1.05]
    with jax.enable_x64(True):
        g = np.array(jax.grad(lambda *a: f(*a), argnums=(0, 1, 2, 3))(*args))
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, _central_differences(f, args), rtol=1e-6, atol=1e-8)


def test_grad_is_finite_at_identical_parameters():
    for f in (laplace, gumbel):
        g = jax.grad(f, argnums=(0, 1, 2, 3))(0.0, 1.0, 0.0, 1.0)
        np.testing.assert_array_equal(g, 0.0)
    g = jax.grad(lambda h: uniform(0.0, h, 0.0, 2.0))(1.0)
    np.testing.assert_allclose(g, -1.0, rtol=1e-6)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kind", sorted(_ALL))
def test_kernel_shape_mismatch_names_arguments(kind):
    with pytest.raises(ValueError, match=rf"jaxkl\.analytic\.{kind}: shapes do not broadcast"):
        _ALL[kind](jnp.zeros(3), jnp.ones(3), jnp.zeros(4), jnp.ones(4))


def test_kl_between_families_without_closed_form_raises():
    with pytest.raises(jaxkl.NoAnalyticKL, match="Gumbel"):
        jaxkl.kl(jaxkl.Gumbel(0.0, 1.0), jaxkl.Laplace(0.0, 1.0))
