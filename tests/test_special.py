"""jaxkl.special against mpmath: each helper over its range and edges, in both dtypes.

The oracle is evaluated at the inputs as the dtype holds them, so an error is the
helper's own. Errors are in units of eps (2⁻²³ in float32, 2⁻⁵² in float64; one rounding
is ≤ eps/2). Each bound is the helper's rounding-error analysis, or, where it calls
jax's gammaln/digamma/polygamma (whose float32 error is several ulps of the terms), a
measured worst case with a factor ~2 of headroom; the comment at each bound says which.
"""

import fractions
import math

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest

from jaxkl import special
from jaxkl.special import double_float

DTYPES = [np.float32, np.float64]


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    with jax.enable_x64(request.param == np.float64):
        yield request.param


# Float32 in CI, float64 under --run-slow: for a helper whose float64 code CI already runs
# inside float64 kernels held to 50-digit oracles tightly enough to need it. The comment
# at each such test names them.
FLOAT64_SLOW = pytest.mark.parametrize(
    "dtype",
    [
        pytest.param(np.float32, id="float32"),
        pytest.param(np.float64, id="float64", marks=pytest.mark.slow),
    ],
    indirect=True,
)


def _held(values, dtype):
    """The values as the dtype holds them: (jax array, the same numbers in float64)."""
    x = np.asarray(values, np.float64).astype(dtype)
    return jnp.asarray(x), x.astype(np.float64)


def _oracle(f, *columns, cancelling=False):
    """f over mpf rows of the columns (float64 arrays), rounded to float64.

    50 digits, or with ``cancelling`` 40 + 2·log10(max(|x|, 1)) for the row's largest x:
    formulas like log Γ(x) − (x − ½) log x + x cancel about 2·log10(x) digits.
    """
    out = []
    for row in zip(*columns, strict=True):
        dps = 50
        if cancelling:
            dps = 40 + 2 * max(0, math.ceil(math.log10(max(abs(v) for v in row))))
        with mp.workdps(dps):
            out.append(float(f(*(mp.mpf(float(v)) for v in row))))
    return np.array(out)


@pytest.fixture(autouse=True)
def _fifty_digits():
    with mp.workdps(50):
        yield


def _eps(dtype) -> float:
    return float(np.finfo(dtype).eps)


def _err(got, ref, dtype, size=None):
    """|got − ref| / size in eps (size |ref| by default); 0 where got == ref exactly."""
    got = np.asarray(got, np.float64)
    size = np.abs(ref) if size is None else size
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        err = np.abs(got - ref) / (size * _eps(dtype))
    return np.where(got == ref, 0.0, err)


def _within(err, bound, what):
    """Asserts the worst error is within bound (in eps); prints it for ``pytest -s``."""
    worst = float(np.max(err))
    print(f"{what}: worst {worst:.3g} eps (bound {bound:g})")
    assert worst <= bound, f"{what}: {worst:.3g} eps > {bound:g}"


def _in_range(ref, dtype):
    """Where the exact value is a normal number of dtype (results that under- or overflow
    are the dtype's limit, not the helper's)."""
    info = np.finfo(dtype)
    return (np.abs(ref) >= info.tiny) & (np.abs(ref) <= info.max)


def _positive_grid(dtype, lo=None, hi=None, n=161):
    """Magnitudes from just above finfo.tiny to far below finfo.max, 1 ± small, and integers."""
    info = np.finfo(dtype)
    lo = math.log10(info.tiny) + 1 if lo is None else lo
    hi = math.log10(info.max) - 1 if hi is None else hi
    near_one = 1.0 + np.array([-0.3, -1e-3, -1e-6, 0.0, 1e-6, 1e-3, 0.3])
    return np.concatenate([np.logspace(lo, hi, n), near_one, [2.0, 3.0, 10.0]])


# jax's float64 log1p is up to ~9 ulps off for arguments near −0.4 on CPU (log1p(−e⁻¹):
# −0.45867514538708143 against −0.45867514538708193): where a helper ends in log1p, the
# bound is 8 eps rather than the ~2 of two correctly rounded steps.
_LOG1P_BOUND = 8.0


# ----------------------------------------------------------------------------- quotients
def test_div_is_the_rounded_quotient(dtype):
    rng = np.random.default_rng(0)
    x, _ = _held(rng.standard_normal(500) * 10 ** rng.uniform(-15, 15, 500), dtype)
    y, _ = _held(rng.standard_normal(500) * 10 ** rng.uniform(-15, 15, 500), dtype)
    np.testing.assert_array_equal(special.div(x, y), np.asarray(x) / np.asarray(y))


def test_div_gradient_where_y_squared_leaves_the_range(dtype):
    rng = np.random.default_rng(1)
    logs = np.log10(np.finfo(dtype).max) - 2
    x, x64 = _held(10 ** rng.uniform(-logs / 2, logs / 2, 300), dtype)
    y, y64 = _held(10 ** rng.uniform(-logs, logs, 300), dtype)
    gx, gy = jax.jit(jax.grad(lambda a, b: jnp.sum(special.div(a, b)), argnums=(0, 1)))(x, y)
    ref_y = _oracle(lambda a, b: -a / b**2, x64, y64)
    keep = _in_range(ref_y, dtype)
    y_squared = _oracle(lambda b: b**2, y64)
    assert keep.sum() > 100 and np.any(~_in_range(y_squared, dtype))
    # ∂/∂x = 1·(1/y), one rounding; ∂/∂y = −q·(1/y), three.
    _within(_err(gx, _oracle(lambda a, b: 1 / b, x64, y64), dtype), 0.5, "div d/dx")
    _within(_err(gy, ref_y, dtype)[keep], 1.5, "div d/dy")


def test_div_tangent_never_squares_the_denominator():
    f = jax.jit(jax.grad(lambda x, y: special.div(x, y) ** 2, argnums=(0, 1)))
    gx, gy = f(jnp.float32(1e-20), jnp.float32(2e-20))  # x/y² = 2.5e19 · 2
    np.testing.assert_allclose([gx, gy], [2 * 0.5 / 2e-20, -2 * 0.25 / 2e-20], rtol=1e-6)
    gx, gy = f(jnp.float32(1e19), jnp.float32(2e19))
    np.testing.assert_allclose([gx, gy], [2 * 0.5 / 2e19, -2 * 0.25 / 2e19], rtol=1e-6)


def _log_ratio_pairs(dtype, n=200):
    rng = np.random.default_rng(2)
    logs = np.log10(np.finfo(dtype).max) - 1
    # Near pairs stay 1e8 inside the normal range: a − b must not be subnormal, which
    # XLA:CPU flushes to zero.
    b = np.concatenate(
        [10 ** rng.uniform(8 - logs, logs - 8, n), 10 ** rng.uniform(-logs, logs, n)]
    )
    near = b[:n] * (1 + rng.choice([-1, 1], n) * 10 ** rng.uniform(-8, math.log10(0.45), n))
    far = 10 ** rng.uniform(-logs, logs, n)  # a third of these quotients leave the range
    a, a64 = _held(np.concatenate([near, far]), dtype)
    b, b64 = _held(b, dtype)
    return a, b, a64, b64


def test_log_ratio_against_mpmath(dtype):
    a, b, a64, b64 = _log_ratio_pairs(dtype)
    got = special.log_ratio(a, b)
    ref = _oracle(lambda u, v: mp.log(u / v), a64, b64)
    with np.errstate(over="ignore", under="ignore"):
        q = (np.asarray(a) / np.asarray(b)).astype(np.float64)
        near = np.abs(a64 / b64 - 1) < 0.5
    representable = ~near & _in_range(q, dtype)
    overflowing = ~near & ~representable
    assert near.sum() > 150 and representable.sum() > 50 and overflowing.sum() > 30
    # Near 1: log1p of (a − b)/b with a − b exact, relative to the result.
    _within(_err(got, ref, dtype)[near], _LOG1P_BOUND, "log_ratio near 1")
    # Far: log of the rounded quotient, eps/2 absolute plus the log's own rounding.
    _within(_err(got, ref, dtype, 1 + np.abs(ref))[representable], 1.0, "log_ratio far")
    # Quotient out of range: log a − log b, each log within eps/2 of its own size.
    size = 1 + np.abs(np.log(a64)) + np.abs(np.log(b64))
    _within(_err(got, ref, dtype, size)[overflowing], 1.0, "log_ratio out of range")


def test_log_ratio_gradient_is_one_over_each_argument(dtype):
    a, b, a64, b64 = _log_ratio_pairs(dtype)
    ga, gb = jax.grad(lambda u, v: jnp.sum(special.log_ratio(u, v)), argnums=(0, 1))(a, b)
    _within(_err(ga, 1 / a64, dtype), 0.5, "log_ratio d/da")  # one rounded division
    _within(_err(gb, -1 / b64, dtype), 0.5, "log_ratio d/db")


# No dtype-dependent step (log1p(d/b) near 1, log_ratio beyond). Float64 runs in CI in the
# gamma-family kernels, whose near-equality KLs (~1e-12) exist only through d's digits:
# tests/analytic/test_gamma_family_float64.py (test_*_near_equality_matches_fisher_form,
# rtol 1e-5; the custom derivative in test_gradient_matches_finite_differences) and
# tests/analytic/test_edge_precision.py::test_dirichlet_up_to_1e8_against_mpmath[float64].
@FLOAT64_SLOW
def test_log_ratio_given_difference_keeps_the_difference_digits(dtype):
    # a = b + d with d far below b's ulp: a rounds to b, and log(a/b) survives only
    # through the difference the caller supplies.
    b, b64 = _held(np.repeat(10 ** np.linspace(-20, 20, 9), 20), dtype)
    rel_d = np.tile(10 ** np.linspace(-12, -0.5, 10), 18) * np.repeat([1, -1], 90)
    d, d64 = _held(b64 * rel_d, dtype)
    a, a64 = _held(b64 + d64, dtype)
    got = special.log_ratio_given_difference(a, b, d)
    ref = _oracle(lambda u, v: mp.log1p(u / v), d64, b64)
    _within(_err(got, ref, dtype), _LOG1P_BOUND, "log_ratio_given_difference")
    # Far apart, where d does not help, it is log_ratio itself.
    far_a, _ = _held([3.0, 1e10, 1e-10], dtype)
    far_b, _ = _held([1.0, 1e-10, 1e10], dtype)
    far = special.log_ratio_given_difference(far_a, far_b, far_a - far_b)
    np.testing.assert_array_equal(far, special.log_ratio(far_a, far_b))
    # Derivative: 1/a and −1/b; d's own tangent is not used (it is a − b by promise).
    grads = jax.grad(
        lambda u, v, w: jnp.sum(special.log_ratio_given_difference(u, v, w)), argnums=(0, 1, 2)
    )(a, b, d)
    _within(_err(grads[0], 1 / a64, dtype), 0.5, "log_ratio_given_difference d/da")
    _within(_err(grads[1], -1 / b64, dtype), 0.5, "log_ratio_given_difference d/db")
    assert not np.any(grads[2])


# ----------------------------------------------------------------------------- series
def _polynomial(coeffs, t):
    return sum(c * t**k for k, c in enumerate(coeffs))


# Horner's loop is the same in both dtypes. Float64 sums run in CI in every float64 series:
# the Gaussian scale term (tests/analytic/test_gaussian_float64.py::
# test_normal_float64_scale_ratios_match_high_precision, 1e-13 relative) and the Stirling
# series of the gamma family (tests/analytic/test_gamma_family_float64.py).
@FLOAT64_SLOW
def test_horner_against_exact_polynomials(dtype):
    rng = np.random.default_rng(3)
    coeffs = tuple(rng.standard_normal(12))
    x, x64 = _held(np.concatenate([np.linspace(-2, 2, 201), [0.0, 1e-30, -1e-30]]), dtype)
    got = special.horner(coeffs, x)
    c = [mp.mpf(float(np.asarray(v, dtype))) for v in coeffs]  # the coefficients as held
    ref = _oracle(lambda t: _polynomial(c, t), x64)
    # Horner's forward error bound, γ_2n·Σ|c_k||x|^k with γ_2n ≈ n·eps (n multiply–adds).
    size = _oracle(lambda t: _polynomial([abs(v) for v in c], abs(t)), x64)
    _within(_err(got, ref, dtype, size), len(coeffs), "horner")
    assert got[-3] == np.asarray(coeffs[0], dtype)  # x = 0: the constant term exactly
    # Small integers are exact, and the dtype is x's.
    ints, i64 = _held([-3.0, -1.0, 0.0, 2.0, 5.0], dtype)
    np.testing.assert_array_equal(special.horner((1.0, -2.0, 3.0), ints), 1 - 2 * i64 + 3 * i64**2)
    assert special.horner((1.0, 2.0), ints).dtype == dtype


def test_zeta_minus_1_against_mpmath():
    # The table is scipy's zetac, within an ulp of ζ(k) − 1 (not always the nearest).
    for k, value in enumerate(special.ZETA_MINUS_1, start=2):
        exact = float(mp.zeta(k) - 1)
        assert abs(value - exact) <= np.spacing(exact), k


@pytest.mark.parametrize("bits, radius, bound", [(32, 0.5, 1.1e-10), (64, 0.25, 1e-18)])
def test_zeta_series_truncation_within_series_radius(bits, radius, bound):
    # The series the closed forms sum, log Γ(1 + x) + γx = Σ_{k=2}^{30} (−1)^k ζ(k) x^k / k,
    # summed exactly from the exact ζ values: what is left is the truncation alone, at the
    # radius each dtype uses.
    with jax.enable_x64(bits == 64):
        x_dtype = np.float32 if bits == 32 else np.float64
        assert special.series_radius(jnp.zeros((), x_dtype)) == radius
    for x in (radius, -radius):
        xm = mp.mpf(x)
        exact = mp.loggamma(1 + xm) + mp.euler * xm
        terms = len(special.ZETA_MINUS_1)
        series = sum((-1) ** k * mp.zeta(k) * xm**k / k for k in range(2, terms + 2))
        assert abs(series / exact - 1) < bound, x


def _expm1_minus_x_exact(t):
    # The series itself below 1: expm1(t) − t at 50 digits would cancel t's digits.
    if abs(t) < 1:
        return mp.fsum(t**k / mp.factorial(k) for k in range(2, 60))
    return mp.expm1(t) - t


# The same 20-term series below 1 and expm1(s) − s above in both dtypes. Float64 runs in
# CI inside the kernels held to 50-digit values: the Gaussian scale term ½·g(2t)
# (tests/analytic/test_gaussian_float64.py::
# test_normal_float64_scale_ratios_match_high_precision, ratios down to 1 ± 1e-12),
# Laplace's near form (the series) and Gumbel's expm1(w) − w, |w| below and above 1
# (tests/analytic/test_location_scale.py::
# test_relative_precision_near_and_far_from_equal_parameters[*-float64]), and its
# derivative in test_grad_matches_finite_differences_float64 there.
@FLOAT64_SLOW
def test_expm1_minus_x_against_mpmath(dtype):
    limit = math.log(np.finfo(dtype).max) - 1
    s = np.logspace(math.log10(np.finfo(dtype).tiny) + 1, math.log10(limit), 200)
    edges = [0.999999, 1.0, 1.000001, 0.5, 1e-4]
    x, x64 = _held(np.concatenate([s, -s, edges, [-e for e in edges], [-1e30]]), dtype)
    got = special.expm1_minus_x(x)
    ref = _oracle(_expm1_minus_x_exact, x64)
    keep = _in_range(ref, dtype)  # s²/2 underflows for |s| ≲ 1e-19 in float32
    small = np.abs(x64) < 1
    # Series (|s| < 1): the s²/2 term dominates and each term rounds once.
    _within(_err(got, ref, dtype)[keep & small], 2.0, "expm1_minus_x series")
    # Direct (|s| ≥ 1): expm1(s) − s cancels at most a factor e/(e − 2) ≈ 3.8 (s = 1).
    _within(_err(got, ref, dtype)[keep & ~small], 4.0, "expm1_minus_x direct")
    assert special.expm1_minus_x(jnp.zeros((), dtype)) == 0.0
    # The derivative, expm1(s), from the series' own derivative near 0.
    grad = jax.grad(lambda t: jnp.sum(special.expm1_minus_x(t)))(x)
    keep = _in_range(_oracle(mp.expm1, x64), dtype) & (np.abs(x64) < 30)
    _within(_err(grad, _oracle(mp.expm1, x64), dtype)[keep], 4.0, "expm1_minus_x derivative")


def _log1mexp_exact(t):
    # Each form where its inner value keeps its digits: −expm1(t) for small |t|, and
    # log1p(−eᵗ) for large, where 1 − eᵗ at 50 digits would round to 1.
    return mp.log(-mp.expm1(t)) if t > -1 else mp.log1p(-mp.exp(t))


def test_log1mexp_against_mpmath(dtype):
    info = np.finfo(dtype)
    a = -np.logspace(math.log10(info.tiny) + 1, math.log10(-math.log(info.tiny)) - 0.01, 300)
    half = np.float64(np.log(np.asarray(0.5, dtype)))
    x, x64 = _held(np.concatenate([a, [half, np.nextafter(half, 0), -1.0]]), dtype)
    got = special.log1mexp(x)
    ref = _oracle(_log1mexp_exact, x64)
    keep = _in_range(ref, dtype)
    _within(_err(got, ref, dtype)[keep], _LOG1P_BOUND, "log1mexp")
    assert special.log1mexp(jnp.zeros((), dtype)) == -np.inf
    assert special.log1mexp(jnp.asarray(-np.inf, dtype)) == 0.0
    # d/da = −1/expm1(−a); at a = 0 an infinity, never the NaN of the unused branch.
    grad = jax.grad(lambda t: jnp.sum(special.log1mexp(t)))(x)
    ref = _oracle(lambda t: -1 / mp.expm1(-t), x64)
    _within(_err(grad, ref, dtype)[_in_range(ref, dtype)], 4.0, "log1mexp derivative")
    assert np.isinf(jax.grad(special.log1mexp)(jnp.zeros((), dtype)))


def test_log_abs_expm1_against_mpmath(dtype):
    info = np.finfo(dtype)
    u = np.logspace(math.log10(info.tiny) + 1, math.log10(info.max) - 1, 200)
    x, x64 = _held(np.concatenate([u, -u, [math.log(2.0), -math.log(2.0)]]), dtype)
    got = special.log_abs_expm1(x)
    ref = _oracle(lambda t: t + _log1mexp_exact(-t) if t > 0 else _log1mexp_exact(t), x64)
    keep = _in_range(ref, dtype) | (x64 == np.float64(np.asarray(math.log(2.0), dtype)))
    # u < 0: log1mexp itself. u > 0: u + log1mexp(−u), one more rounding of a sum whose
    # terms are ≤ u and |result| + u (it crosses 0 at u = log 2, where only that is fair).
    _within(_err(got, ref, dtype)[keep & (x64 < 0)], _LOG1P_BOUND, "log_abs_expm1 u < 0")
    size = np.abs(ref) + x64
    _within(_err(got, ref, dtype, size)[keep & (x64 > 0)], _LOG1P_BOUND, "log_abs_expm1 u > 0")
    assert special.log_abs_expm1(jnp.zeros((), dtype)) == -np.inf


# ----------------------------------------------------------------------------- Stirling
def _delta(x):
    return mp.loggamma(x) - (x - mp.mpf(0.5)) * mp.log(x) + x - mp.log(2 * mp.pi) / 2


def _delta_grad(x):
    return mp.digamma(x) - mp.log(x) + 1 / (2 * x)


def _delta_hess(x):
    return mp.polygamma(1, x) - 1 / x - 1 / (2 * x**2)


def _first_omitted(x64, terms, derivative=0, times_power=0, lowest=special.STIRLING_MIN):
    """x^times_power · |first omitted term| of δ (derivative 0), δ' (1) or δ'' (2), for
    x ≥ lowest (the series is not used below; there the value is finite and unused)."""
    k = terms + 1
    coeff = abs(float(mp.bernoulli(2 * k))) / (2 * k * (2 * k - 1))
    factor = [1.0, 2 * k - 1.0, (2 * k - 1.0) * 2 * k][derivative]
    x64 = np.maximum(x64, lowest)
    with np.errstate(under="ignore"):
        return coeff * factor * np.exp((times_power - (2 * k - 1 + derivative)) * np.log(x64))


def test_stirling_coefficients_are_bernoulli_numbers():
    for k, c in enumerate(special.STIRLING_COEFFS, start=1):
        exact = fractions.Fraction(*mp.bernfrac(2 * k)) / (2 * k * (2 * k - 1))
        assert c == float(exact), k  # the nearest float64


def test_stirling_correction_against_mpmath(dtype):
    grid = _positive_grid(dtype, lo=1)
    x, x64 = _held(grid[grid >= special.STIRLING_MIN], dtype)
    # Horner on 1/x² and a product or two: a few roundings beyond the truncation error.
    for derivative, fn, oracle in [
        (0, special.stirling_correction, _delta),
        (1, special.stirling_correction_grad, _delta_grad),
        (2, special.stirling_correction_hess, _delta_hess),
    ]:
        ref = _oracle(oracle, x64, cancelling=True)
        keep = _in_range(ref, dtype)
        size = np.abs(ref) + _first_omitted(x64, 7, derivative) / _eps(dtype)
        err = _err(fn(x), ref, dtype, size)
        _within(err[keep], 3.0, fn.__name__)
    # Nine terms from 3 on (the double-float log Γ in float32): the truncation, 1.2e-9
    # absolute at x = 3, plus rounding.
    x, x64 = _held(np.linspace(3.0, 10.0, 41), dtype)
    ref = _oracle(_delta, x64, cancelling=True)
    size = np.abs(ref) + _first_omitted(x64, 9, lowest=3.0) / _eps(dtype)
    _within(_err(special.stirling_correction(x, 9), ref, dtype, size), 3.0, "nine terms")


# ----------------------------------------------------------------------------- log Γ
# Below 10 these are direct forms in jax's gammaln, digamma and polygamma, whose float32
# errors are several eps of the terms' size: the bound is relative to that size and about
# twice the worst measured (``pytest -s`` prints it). From 10 on they are Stirling forms,
# relative to the result, plus the series' truncation (seven terms: 5e-14 relative for
# x²ω'' at x = 10 in float64, where the scaling by x² multiplies it by 100).
def _check_log_gamma_piece(fn, dtype, x64, exact, terms, truncation):
    x = jnp.asarray(x64, dtype)
    big = x64 >= special.STIRLING_MIN
    ref = _oracle(exact, x64, cancelling=True)
    size = np.where(big, np.abs(ref), _oracle(terms, x64, cancelling=True))
    size = size + np.where(big, truncation / _eps(dtype), 0.0)
    err = _err(fn(x), ref, dtype, size)
    _within(err[big], 4.0, f"{fn.__name__} (Stirling)")
    _within(err[~big], 16.0, f"{fn.__name__} (direct, of the terms)")


def _log_gamma_grid(dtype, hi=30):
    return _held(_positive_grid(dtype, lo=-30, hi=hi), dtype)[1]


def test_log_gamma_remainder_against_mpmath(dtype):
    x64 = _log_gamma_grid(dtype)
    _check_log_gamma_piece(
        special.log_gamma_remainder,
        dtype,
        x64,
        lambda t: mp.loggamma(t) - t * mp.log(t) + t,
        lambda t: abs(mp.loggamma(t)) + abs(t * mp.log(t)) + t,
        _first_omitted(x64, 7),
    )


def test_log_gamma_remainder_grad_against_mpmath(dtype):
    x64 = _log_gamma_grid(dtype)
    _check_log_gamma_piece(
        special.log_gamma_remainder_grad,
        dtype,
        x64,
        lambda t: mp.digamma(t) - mp.log(t),
        lambda t: abs(mp.digamma(t)) + abs(mp.log(t)),
        _first_omitted(x64, 7, derivative=1),
    )


def test_scaled_log_gamma_remainder_hess_against_mpmath(dtype):
    # Past where x² overflows (1.8e19 in float32), up to 1e30: x²·δ''(x) is never formed
    # from x² (it was inf·0 = NaN there).
    x64 = _log_gamma_grid(dtype)
    assert x64.max() > 1e29
    _check_log_gamma_piece(
        special.scaled_log_gamma_remainder_hess,
        dtype,
        x64,
        lambda t: t**2 * mp.polygamma(1, t) - t,
        lambda t: t**2 * mp.polygamma(1, t) + t,
        _first_omitted(x64, 7, derivative=2, times_power=2),
    )


def test_standard_gamma_entropy_against_mpmath(dtype):
    # From 10 on, relative precision whatever x (the direct form lost log10(x) digits).
    x64 = _log_gamma_grid(dtype)
    _check_log_gamma_piece(
        special.standard_gamma_entropy,
        dtype,
        x64,
        lambda t: mp.loggamma(t) - (t - 1) * mp.digamma(t) + t,
        lambda t: abs(mp.loggamma(t)) + abs((t - 1) * mp.digamma(t)) + t,
        _first_omitted(x64, 7) + _first_omitted(x64, 7, derivative=1, times_power=1),
    )


def _exact_log_beta_k(a, k):
    # B(a, k) = (k − 1)! / (a (a + 1) ⋯ (a + k − 1)) for integer k: no cancellation.
    return math.lgamma(k) - sum(math.log(a + j) for j in range(k))


@pytest.mark.parametrize("x64", [False, True])
def test_log_beta_is_accurate_for_mixed_scales(x64):
    # log Γ(a) − log Γ(a + k) for large a cancels in the naive sum of log Γ; the Stirling
    # branch must keep relative precision (jax.scipy.special.betaln does not in float64).
    a = np.array([1e-3, 0.5, 9.9, 10.0, 37.5, 1e3, 1e5, 3e6])
    rtol = 1e-13 if x64 else 2e-6
    with jax.enable_x64(x64):
        for k in (1, 2, 3):
            conc = jnp.stack([jnp.asarray(a), jnp.full(a.shape, float(k))], axis=-1)
            got = np.asarray(special.log_beta(conc), np.float64)
            exact_a = a if x64 else a.astype(np.float32).astype(np.float64)
            ref = np.array([_exact_log_beta_k(float(v), k) for v in exact_a])
            np.testing.assert_allclose(got, ref, rtol=rtol)
            # the argument order must not matter
            np.testing.assert_allclose(special.log_beta(conc[..., ::-1]), got, rtol=rtol)


def test_log_beta_of_three_against_mpmath(dtype):
    rng = np.random.default_rng(4)
    conc, conc64 = _held(10 ** rng.uniform(-3, 7, (200, 3)), dtype)
    ref = _oracle(
        lambda a, b, c: mp.loggamma(a) + mp.loggamma(b) + mp.loggamma(c) - mp.loggamma(a + b + c),
        *conc64.T,
        cancelling=True,
    )

    # The two smaller entries' log Γ are summed directly (jax's gammaln, a few eps of
    # their size), the largest one's difference with log Γ(Σa) by Stirling (relative).
    def terms(a, b, c):
        small = sorted([a, b, c])[:2]
        return abs(mp.loggamma(small[0])) + abs(mp.loggamma(small[1]))

    size = np.abs(ref) + _oracle(terms, *conc64.T)
    _within(_err(special.log_beta(conc), ref, dtype, size), 8.0, "log_beta")


# ----------------------------------------------------------------------------- double-float
def _exact(hi, lo):
    return fractions.Fraction(float(hi)) + fractions.Fraction(float(lo))


def _double_floats(rng, dtype, n):
    hi = jnp.asarray(rng.standard_normal(n) * 10 ** rng.uniform(-5, 5, n), dtype)
    lo = jnp.asarray(rng.standard_normal(n) * 1e-9, dtype) * hi
    return double_float.add(double_float.from_float(hi), double_float.from_float(lo))


def test_double_float_arithmetic_carries_twice_the_precision(dtype):
    rng = np.random.default_rng(5)
    u2 = (_eps(dtype) / 2) ** 2  # the unit roundoff of twice the working precision
    n = 60
    a, b = _double_floats(rng, dtype, n), _double_floats(rng, dtype, n)
    y = jnp.asarray(rng.uniform(0.5, 2.0, n), dtype)
    total, product = double_float.add(a, b), double_float.mul(a, b)
    quotient = double_float.quotient(a, y)
    # Read back once as numpy: indexing jax arrays element by element dispatches an op each.
    a, b, y, total, product, quotient = jax.tree.map(
        np.asarray, (a, b, y, total, product, quotient)
    )
    worst = {"add": 0.0, "mul": 0.0, "quotient": 0.0}
    for i in range(n):
        ai, bi = _exact(a[0][i], a[1][i]), _exact(b[0][i], b[1][i])
        yi = fractions.Fraction(float(y[i]))
        # add is accurate relative to the operands (and so under cancellation as well).
        for name, got, exact, size in [
            ("add", total, ai + bi, abs(ai) + abs(bi)),
            ("mul", product, ai * bi, abs(ai * bi)),
            ("quotient", quotient, ai / yi, abs(ai / yi)),
        ]:
            err = abs(_exact(got[0][i], got[1][i]) - exact) / size / fractions.Fraction(u2)
            worst[name] = max(worst[name], float(err))
    for name, value in worst.items():
        print(f"double_float.{name}: worst {value:.3g} u²")
        assert value <= 8.0, (name, value)


# Float64 has its own table (256 entries), tail and Stirling start, and CI holds them
# through the one kernel that uses them: tests/analytic/test_edge_precision.py::
# test_gumbel_sweep_against_mpmath[float64] keeps Gumbel within 5·2⁻⁵³ of 50-digit values
# for ratios r up to 1e6, where KL ≈ e^w and w = offset + log Γ(1 + r) sums terms of
# ~1e7: that needs lgamma_1p (and the log inside it) to ~1e-22 relative, double-float
# precision. The helper-level bounds in float64: --run-slow.
@FLOAT64_SLOW
def test_double_float_log_and_lgamma_against_mpmath(dtype):
    u2 = (_eps(dtype) / 2) ** 2
    x, x64 = _held(np.logspace(-30, 30, 121), dtype)
    # Read back as numpy: iterating a jax array compiles a program that unstacks it
    # (1.4 s for these 121 values), and indexing one dispatches an op per element.
    hi, lo = jax.tree.map(np.asarray, double_float.log(double_float.from_float(x)))
    # The tail u³/3 − … (u < 1/N, N = 128 or 256 table entries) is in working precision.
    tail = (_eps(dtype) / 2) * (1.0 / (128 if dtype == np.float32 else 256)) ** 3
    worst = 0.0
    for h, l, v in zip(hi, lo, x64, strict=True):
        ref = mp.log(mp.mpf(float(v)))
        err = abs(mp.mpf(float(h)) + mp.mpf(float(l)) - ref)
        worst = max(worst, float(err / (u2 * max(abs(ref), 1) + tail)))
    print(f"double_float.log: worst {worst:.3g} of u²·max(|log x|, 1) + u/N³")
    assert worst <= 4.0
    # lgamma_1p: its docstring's u²·(|log Γ| + r·|log r|), plus the Stirling sum, the
    # one part in working precision: u·δ(z) with z ≥ 3 (float32) or 10 (float64), and
    # its truncation after nine terms (1.2e-9 at z = 3, 1.4e-19 at z = 10).
    start = 3.0 if dtype == np.float32 else 10.0
    working = (_eps(dtype) / 2) / (12 * start) + (1.2e-9 if dtype == np.float32 else 1.4e-19)
    r, r64 = _held(np.logspace(-6, 6, 61), dtype)
    (h1, l1), (h0, l0) = jax.tree.map(
        np.asarray, double_float.lgamma_1p(double_float.from_float(r))
    )
    worst = 0.0
    for i, v in enumerate(r64):
        rv = mp.mpf(float(v))
        size = abs(mp.loggamma(1 + rv)) + rv * abs(mp.log(rv)) + abs(mp.log(rv))
        for h, l, exact in [(h1, l1, mp.loggamma(1 + rv)), (h0, l0, mp.loggamma(rv))]:
            got = mp.mpf(float(h[i])) + mp.mpf(float(l[i]))
            worst = max(worst, float(abs(got - exact) / (u2 * size + working)))
    print(f"double_float.lgamma_1p: worst {worst:.3g} of u²·terms + u·δ(z) + truncation")
    assert worst <= 4.0
