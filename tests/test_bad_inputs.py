"""Bad and edge input across constructors, kl dispatch, keys, shapes, dtypes and fit helpers.

One case per kind of input. Each asserts the exact documented behaviour: the error type
and the message's content (who complains, which parameter, the rule, and the offending
value with its index), or the documented value (+inf for a support mismatch, a
half-precision result rounded from float32, …). README § "Edge cases and guarantees"
summarises them.
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

import jaxkl
from jaxkl.fit import forward_kl, gaussian_params

N, L = jaxkl.Normal, jaxkl.Laplace
Diag, TriL = jaxkl.MultivariateNormalDiag, jaxkl.MultivariateNormalTriL
FIN = r"must be finite \(not NaN or ±inf\)"
POS = r"must be > 0 and finite \(not NaN or ±inf\)"


def _raises(exc, *fragments):
    """pytest.raises whose message must contain every fragment (regexes), in order."""
    return pytest.raises(exc, match=".*".join(fragments))


# ------------------------------------------------------------------ constructor values
# (constructor call, regex fragments its ValueError message must contain, in order)
BAD_VALUES = {
    "normal-loc-nan": (lambda: N(np.nan, 1.0), ["Normal: loc", FIN, "got loc = nan"]),
    "normal-loc-+inf": (lambda: N(np.inf, 1.0), ["Normal: loc", FIN, "got loc = inf"]),
    "normal-loc--inf": (lambda: N(-np.inf, 1.0), ["Normal: loc", FIN, "got loc = -inf"]),
    "normal-scale-zero": (lambda: N(0.0, 0.0), ["Normal: scale", POS, "got scale = 0.0"]),
    "normal-scale-negative": (lambda: N(0.0, -2.5), ["scale", POS, "got scale = -2.5"]),
    "normal-scale-+inf": (lambda: N(0.0, np.inf), ["scale", POS, "got scale = inf"]),
    "normal-scale-nan": (lambda: N(0.0, np.nan), ["scale", POS, "got scale = nan"]),
    "normal-batch-two-bad": (
        lambda: N(0.0, jnp.array([1.0, -2.0, 3.0, 0.0])),
        [r"got scale\[1\] = -2\.0, scale\[3\] = 0\.0 \(2 of 4 entries\)$"],
    ),
    "normal-batch-2d-index": (
        lambda: N(jnp.zeros((2, 3)), jnp.ones((2, 3)).at[1, 2].set(-1.0)),
        [r"got scale\[1, 2\] = -1\.0 \(1 of 6 entries\)$"],
    ),
    "normal-huge-batch-first-five": (
        lambda: N(0.0, jnp.where(jnp.arange(10_000) % 7 == 3, -1.0, 1.0)),
        [
            r"got scale\[3\] = -1\.0, scale\[10\] = -1\.0, scale\[17\] = -1\.0, "
            r"scale\[24\] = -1\.0, scale\[31\] = -1\.0, … \(1429 of 10000 entries\)$"
        ],
    ),
    "normal-broadcast-scale-index": (
        lambda: N(jnp.zeros(3), jnp.array([1.0, 1.0, np.inf])),
        [r"got scale\[2\] = inf \(1 of 3 entries\)"],
    ),
    "laplace-scale": (lambda: L(0.0, -1.0), ["Laplace: scale", POS, "got scale = -1.0"]),
    "laplace-loc--inf": (lambda: L(-np.inf, 1.0), ["Laplace: loc", FIN, "-inf"]),
    "gumbel-scale-inf": (lambda: jaxkl.Gumbel(0.0, np.inf), ["Gumbel: scale", POS, "inf"]),
    "gumbel-loc-nan": (lambda: jaxkl.Gumbel(np.nan, 1.0), ["Gumbel: loc", FIN, "nan"]),
    "lognormal-loc-inf": (lambda: jaxkl.LogNormal(np.inf, 1.0), ["LogNormal: loc", FIN, "inf"]),
    "lognormal-scale-zero": (lambda: jaxkl.LogNormal(0.0, 0.0), ["LogNormal: scale", POS]),
    "exponential-rate-inf": (
        lambda: jaxkl.Exponential(np.inf),
        ["Exponential: rate", POS, "got rate = inf"],
    ),
    "exponential-rate-2d": (
        lambda: jaxkl.Exponential(jnp.ones((3, 2)).at[2, 0].set(0.0)),
        ["Exponential: rate", POS, r"rate\[2, 0\] = 0\.0 \(1 of 6 entries\)"],
    ),
    "gamma-concentration-inf": (
        lambda: jaxkl.Gamma(np.inf, 1.0),
        ["Gamma: concentration", POS, "got concentration = inf"],
    ),
    "gamma-rate-nan": (lambda: jaxkl.Gamma(1.0, np.nan), ["Gamma: rate", POS, "rate = nan"]),
    "beta-concentration1-overflows-to-inf": (
        lambda: jaxkl.Beta(1e39, 1.0),  # 1e39 rounds to +inf in float32
        ["Beta: concentration1", POS, "got concentration1 = inf"],
    ),
    "beta-concentration0-negative": (
        lambda: jaxkl.Beta(1.0, -1.0),
        ["Beta: concentration0", POS, "got concentration0 = -1.0"],
    ),
    "dirichlet-inf-entry": (
        lambda: jaxkl.Dirichlet(jnp.ones((2, 3)).at[0, 2].set(np.inf)),
        ["Dirichlet: concentration", POS, r"concentration\[0, 2\] = inf \(1 of 6 entries\)"],
    ),
    "poisson-rate-inf": (lambda: jaxkl.Poisson(np.inf), ["Poisson: rate", POS, "rate = inf"]),
    "poisson-rate-negative": (lambda: jaxkl.Poisson(-3.0), ["Poisson: rate", POS, "-3.0"]),
    "bernoulli-logits-nan": (
        lambda: jaxkl.Bernoulli(jnp.array([0.0, np.nan])),
        [r"Bernoulli: logits must not be NaN \(±inf allowed\)", r"logits\[1\] = nan"],
    ),
    "categorical-logit-+inf": (
        lambda: jaxkl.Categorical(jnp.array([0.0, np.inf, 1.0])),
        [r"Categorical: logits must not be NaN or \+inf", r"logits\[1\] = inf"],
    ),
    "categorical-row-all--inf": (
        lambda: jaxkl.Categorical(jnp.array([[0.0, 1.0], [-np.inf, -np.inf]])),
        [
            "Categorical: logits must have at least one entry > -inf in every row",
            r"logits\[1, 0\] = -inf, logits\[1, 1\] = -inf \(2 of 4 entries\)",
        ],
    ),
    "uniform-high-equals-low": (
        lambda: jaxkl.Uniform(jnp.array([0.0, 2.0]), jnp.array([1.0, 2.0])),
        [r"Uniform: high must be > low; got high\[1\] = 2\.0 \(low\[1\] = 2\.0\)"],
    ),
    "uniform-low-inf": (lambda: jaxkl.Uniform(-np.inf, 1.0), ["Uniform: low", FIN, "-inf"]),
    "mvn-diag-scale-zero": (
        lambda: Diag(jnp.zeros(3), jnp.array([1.0, 0.0, 1.0])),
        ["MultivariateNormalDiag: scale_diag", POS, r"scale_diag\[1\] = 0\.0"],
    ),
    "mvn-diag-loc-nan": (
        lambda: Diag(jnp.array([0.0, np.nan]), jnp.ones(2)),
        ["MultivariateNormalDiag: loc", FIN, r"loc\[1\] = nan"],
    ),
    "mvn-tril-negative-diagonal": (
        lambda: TriL(jnp.zeros(2), jnp.array([[1.0, 0.0], [0.5, -1.0]])),
        [
            "MultivariateNormalTriL: scale_tril must have a diagonal > 0",
            r"scale_tril\[1, 1\] = -1\.0 \(1 of 4 entries\)",
        ],
    ),
    "mvn-tril-upper-entry": (
        lambda: TriL(jnp.zeros(2), jnp.array([[1.0, 0.3], [0.5, 1.0]])),
        ["must be lower triangular", r"scale_tril\[0, 1\] = 0\.3"],
    ),
    "mvn-tril-inf-below-diagonal": (
        lambda: TriL(jnp.zeros(2), jnp.array([[1.0, 0.0], [np.inf, 1.0]])),
        ["MultivariateNormalTriL: scale_tril", FIN, r"scale_tril\[1, 0\] = inf"],
    ),
    "mixture-logits-inf": (
        lambda: jaxkl.Mixture(jnp.array([0.0, np.inf]), N(jnp.zeros(2), 1.0)),
        ["Mixture: mixture_logits", FIN, r"mixture_logits\[1\] = inf"],
    ),
    "float16-overflowed-parameter": (
        # 2 × 60000 exceeds float16's largest finite value, 65504, and rounds to +inf.
        lambda: N(jnp.float16(0.0), jnp.float16(60000.0) * 2),
        ["Normal: scale", POS, "got scale = inf"],
    ),
}


@pytest.mark.parametrize("make, fragments", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_constructor_value_errors_name_the_parameter_and_show_the_value(make, fragments):
    with _raises(ValueError, *fragments):
        make()


# ------------------------------------------------------------------ constructor types
BAD_TYPES = {
    "string-loc": (lambda: N("a", 1.0), ["Normal: loc must be a real number", "str 'a'"]),
    "none-scale": (lambda: N(0.0, None), ["Normal: scale must be a real number", "NoneType"]),
    "string-array": (
        lambda: jaxkl.Beta(np.array(["1", "2"]), 1.0),
        ["Beta: concentration1 must be a real number", "dtype <U1"],
    ),
    "complex-scalar": (
        lambda: N(1 + 5j, 1.0),
        ["Normal: loc must be real; got dtype complex", "imaginary part"],
    ),
    "complex-array": (
        lambda: jaxkl.Gamma(1.0, np.array([1.0, 2.0 + 0j])),
        ["Gamma: rate must be real; got dtype complex"],
    ),
    "complex-dirichlet": (
        lambda: jaxkl.Dirichlet(jnp.ones(3, jnp.complex64)),
        ["Dirichlet: concentration must be real"],
    ),
    "complex-into-a-kernel": (
        lambda: jaxkl.analytic.gamma(1.0, 1.0, 2.0, 1.0j),
        ["jaxkl.analytic.gamma: rate_b must be real"],
    ),
    "complex-into-fit": (
        lambda: gaussian_params(jnp.zeros(2, jnp.complex64), jnp.eye(2)),
        ["gaussian_params: loc must be real"],
    ),
}


@pytest.mark.parametrize("make, fragments", BAD_TYPES.values(), ids=BAD_TYPES.keys())
def test_non_real_parameters_raise_type_errors_naming_them(make, fragments):
    with _raises(TypeError, *fragments):
        make()


def test_structural_errors_still_name_the_problem():
    with _raises(ValueError, "Dirichlet: concentration must have K >= 2", r"\(1,\)"):
        jaxkl.Dirichlet(jnp.ones(1))
    with _raises(ValueError, "Mixture: components must be a jaxkl Distribution", "ndarray"):
        jaxkl.Mixture(jnp.zeros(2), np.zeros(2))
    with _raises(ValueError, "Independent: reinterpreted_batch_ndims must be between 0", "got 2"):
        jaxkl.Independent(N(jnp.zeros(3), 1.0), 2)
    with _raises(ValueError, "Independent: base must be a jaxkl Distribution; got float"):
        jaxkl.Independent(1.0, 0)


# ------------------------------------------------------------------ allowed edge values
def test_documented_infinite_parameters_are_accepted():
    # Bernoulli logits ±inf mean p = 1 / p = 0; a Categorical logit −inf masks a category.
    b = jaxkl.Bernoulli(jnp.array([np.inf, -np.inf]))
    np.testing.assert_array_equal(b.probs, [1.0, 0.0])
    c = jaxkl.Categorical(jnp.array([0.0, -np.inf]))
    np.testing.assert_array_equal(c.probs, [1.0, 0.0])


def test_bool_and_int_parameters_become_the_default_float():
    d = N(True, 2)
    assert d.dtype == jnp.float32 and float(d.loc) == 1.0 and float(d.scale) == 2.0


def test_subnormal_scale_is_refused_and_says_why():
    # XLA on CPU flushes subnormals to zero (also in the comparison scale > 0), so the
    # smallest float32 subnormal is a zero scale; the message says so.
    with _raises(
        ValueError, "Normal: scale", POS, r"got scale = 1e-45 \(subnormal: computed as 0\)"
    ):
        N(0.0, np.float32(1.4e-45))


# ------------------------------------------------------------------ under jit / checked
def test_checked_shows_the_first_offending_entry_and_the_count():
    f = jaxkl.checked(lambda s: jaxkl.kl(N(0.0, s), N(0.0, 1.0)))
    with _raises(ValueError, "Normal: scale", POS, r"got scale\[2\] = -1\.0 \(2 of 4 entries\)"):
        f(jnp.array([1.0, 2.0, -1.0, 0.0]))
    with _raises(ValueError, "Normal: scale", POS, "got scale = inf"):
        f(jnp.float32(np.inf))


def test_checked_catches_infinite_location_and_uniform_order():
    with _raises(ValueError, "Normal: loc", FIN, "got loc = inf"):
        jaxkl.checked(lambda m: N(m, 1.0).entropy())(jnp.float32(np.inf))
    with _raises(ValueError, r"Uniform: high must be > low; got high = 0\.0 \(low = 1\.0\)"):
        jaxkl.checked(lambda lo: jaxkl.Uniform(lo, 0.0).entropy())(jnp.float32(1.0))


def test_plain_jit_does_not_check_values():
    # Documented cost of tracing: an invalid scale under plain jit is not caught.
    out = jax.jit(lambda s: jaxkl.kl(N(0.0, s), N(0.0, 1.0)))(-1.0)
    assert np.isnan(out)


# ------------------------------------------------------------------ kl dispatch
def test_kl_of_non_distributions_says_what_kl_takes():
    with _raises(TypeError, "jaxkl.kl takes two jaxkl distributions", "a is float and b is float"):
        jaxkl.kl(1.0, 2.0)
    with _raises(TypeError, "takes two jaxkl distributions", "b is ndarray", "jaxkl.analytic"):
        jaxkl.kl(N(0.0, 1.0), np.zeros(2))


def test_kl_without_closed_form_points_to_monte_carlo():
    mix = jaxkl.Mixture(jnp.zeros(2), N(jnp.zeros(2), 1.0))
    with _raises(jaxkl.NoAnalyticKL, r"KL\(Mixture ‖ Normal\)", r"jaxkl\.mc_kl"):
        jaxkl.kl(mix, N(0.0, 1.0))


@pytest.mark.parametrize(
    "a, b",
    [
        (N(0.0, 1.0), jaxkl.Exponential(1.0)),
        (jaxkl.Gamma(2.0, 1.0), jaxkl.Beta(1.0, 1.0)),
        (jaxkl.Beta(2.0, 2.0), jaxkl.Uniform(0.5, 1.0)),
        (jaxkl.Uniform(0.0, 2.0), jaxkl.Uniform(0.0, 1.0)),
    ],
    ids=["normal-exponential", "gamma-beta", "beta-narrow-uniform", "wider-uniform"],
)
def test_support_mismatch_is_exactly_plus_infinity(a, b):
    out = jaxkl.kl(a, b)
    assert out.dtype == jnp.float32 and float(out) == np.inf


def test_kl_batch_shape_mismatch_names_both_shapes():
    with _raises(ValueError, r"jaxkl\.kl\(Normal, Exponential\)", r"\(2,\) and \(3,\)"):
        jaxkl.kl(N(jnp.zeros(2), 1.0), jaxkl.Exponential(jnp.ones(3)))


def test_kl_overflow_is_plus_infinity_not_nan():
    # The true value, ½(1e30)² ≈ 5e59, exceeds float32's range.
    out = jaxkl.kl(N(0.0, 1e30), N(0.0, 1.0))
    assert float(out) == np.inf


# ------------------------------------------------------------------ keys
@pytest.mark.parametrize(
    "seed, shown",
    [(2**70, r"got 1180591620717411303424 \(about 2\*\*70\.0\)"), (-(2**63) - 1, "got -9223")],
    ids=["2**70", "below-int64"],
)
def test_out_of_range_seed_is_a_clear_error(seed, shown):
    with _raises(ValueError, r"key: an integer seed must lie in \[-2\*\*63, 2\*\*63\)", shown):
        jaxkl.as_key(seed)


def test_out_of_range_seed_in_a_key_taking_function():
    with _raises(ValueError, "integer seed must lie in"):
        N(0.0, 1.0).sample(2**64, (2,))
    with _raises(ValueError, "integer seed must lie in"):
        jaxkl.mc_kl(2**70, N(0.0, 1.0), N(1.0, 1.0), 16)


def test_largest_seeds_are_accepted():
    assert jaxkl.as_key(2**63 - 1).dtype == jax.random.key(0).dtype
    assert jaxkl.as_key(np.int64(-(2**63))).shape == ()


@pytest.mark.parametrize(
    "key, shown",
    [(1.5, "got float"), (True, "got bool"), ("0", "got str"), (np.zeros(3, np.uint32), r"\(3,\)")],
    ids=["float", "bool", "string", "uint32[3]"],
)
def test_non_keys_are_type_errors(key, shown):
    with _raises(TypeError, "key must be a typed key", shown):
        jaxkl.as_key(key)


# ------------------------------------------------------------------ sample shapes
@pytest.mark.parametrize(
    "shape, exc, fragments",
    [
        ((-3,), ValueError, [r"sample_shape must contain only non-negative ints; got \(-3,\)"]),
        (2.5, TypeError, [r"sample_shape must be an int or a tuple of ints", "float 2.5"]),
        ((2, 1.5), TypeError, [r"sample_shape must be an int or a tuple of ints", r"\(2, 1\.5\)"]),
        (True, TypeError, ["sample_shape must be an int or a tuple of ints", "bool True"]),
        ("3", TypeError, ["sample_shape must be an int or a tuple of ints", "str '3'"]),
        (-1, ValueError, ["sample_shape must contain only non-negative ints; got -1"]),
    ],
    ids=["negative", "float", "float-entry", "bool", "string", "negative-int"],
)
def test_bad_sample_shapes_name_sample_shape(shape, exc, fragments):
    with _raises(exc, *fragments):
        N(0.0, 1.0).sample(0, shape)


def test_sample_shapes_that_are_valid_edge_cases():
    d = N(0.0, 1.0)
    assert d.sample(0, 0).shape == (0,)
    assert d.sample(0, np.array([2, 3])).shape == (2, 3)
    assert d.sample(0, np.int64(4)).shape == (4,)
    assert d.sample(0, [2]).shape == (2,)


def test_traced_sample_shape_is_a_type_error():
    with _raises(TypeError, "sample_shape must be an int or a tuple of ints"):
        jax.jit(lambda n: N(0.0, 1.0).sample(0, (n,)))(3)


# ------------------------------------------------------------------ half precision
_EYE2 = [[1.0, 0.0], [0.0, 1.0]]


def _f32_then_round(kernel, args, dtype):
    ref = kernel(*(jnp.asarray(a, dtype).astype(jnp.float32) for a in args))
    return ref.astype(dtype)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
@pytest.mark.parametrize(
    "kernel, args",
    [
        (jaxkl.analytic.gamma, (3.0, 2.0, 5.0, 1.0)),
        (jaxkl.analytic.beta, (2.0, 7.0, 3.0, 0.5)),
        (jaxkl.analytic.beta_uniform, (30.0, 20.0, -0.5, 1.5)),
        (jaxkl.analytic.gumbel, (0.3, 1.7, -1.0, 0.4)),
        (jaxkl.analytic.laplace, (0.3, 1.7, -1.0, 0.4)),
        (jaxkl.analytic.exponential_normal, (2.0, 0.1, 3.0)),
        (jaxkl.analytic.normal, (0.3, 7.0, -1.0, 0.4)),  # scale ratio 17.5: NaN in float16
        (jaxkl.analytic.uniform_normal, (0.0, 9.0, 1.0, 0.5)),  # was NaN in float16 too
        (jaxkl.analytic.mvn_tril, ([0.3, -1.0], [[7.0, 0.0], [0.5, 2.0]], [0.0, 0.0], _EYE2)),
        (jaxkl.analytic.bernoulli, (2.0, -1.0)),  # bfloat16 was 1 eps off
        (jaxkl.analytic.poisson, (2.0, 1.0)),
        (jaxkl.analytic.bernoulli_poisson, (0.5, 0.7)),
        (jaxkl.analytic.categorical, ([2.0, -1.0, 0.5], [0.0, 1.0, -3.0])),
    ],
    ids=[
        "gamma",
        "beta",
        "beta_uniform",
        "gumbel",
        "laplace",
        "exponential_normal",
        "normal",
        "uniform_normal",
        "mvn_tril",
        "bernoulli",
        "poisson",
        "bernoulli_poisson",
        "categorical",
    ],
)
def test_half_precision_is_computed_in_float32_and_returned_rounded(kernel, args, dtype):
    out = kernel(*(jnp.asarray(a, dtype) for a in args))
    assert out.dtype == dtype
    assert out == _f32_then_round(kernel, args, dtype)


def test_half_precision_through_kl():
    a = jaxkl.Gamma(jnp.bfloat16(3.0), jnp.bfloat16(2.0))
    b = jaxkl.Gamma(jnp.bfloat16(5.0), jnp.bfloat16(1.0))
    out = jaxkl.kl(a, b)
    # Textbook closed form (scipy, float64): (α_a − α_b)ψ(α_a) − log Γ(α_a) + log Γ(α_b)
    # + α_b log(β_a/β_b) + α_a(β_b − β_a)/β_a = 2.60507…, which rounds to 2.609375 on
    # bfloat16's grid (spacing 2⁻⁶ near 2.6).
    exact = -2.0 * special.digamma(3.0) - special.gammaln(3.0) + special.gammaln(5.0)
    exact += 5.0 * np.log(2.0) - 1.5
    assert out.dtype == jnp.bfloat16 and out == jnp.asarray(exact, jnp.bfloat16) == 2.609375


def test_float16_overflow_is_plus_infinity():
    # KL(Exp(1e-4) ‖ Exp(65504)) = e^t − 1 − t with t = log(6.55e8): ≈ 6.6e8, above
    # float16's largest finite value 65504.
    out = jaxkl.analytic.exponential(jnp.float16(1e-4), jnp.float16(65504.0))
    assert out.dtype == jnp.float16 and float(out) == np.inf


def test_mixed_half_and_float32_promote_to_float32():
    out = jaxkl.analytic.gamma(jnp.bfloat16(2.0), 1.0, jnp.float32(3.0), 1.0)
    assert out.dtype == jnp.float32


# ------------------------------------------------------------------ fit helpers
def test_gaussian_params_refuses_a_non_positive_diagonal():
    with _raises(
        ValueError, "gaussian_params: scale_tril must have a diagonal > 0", r"\[1, 1\] = -1\.0"
    ):
        gaussian_params(jnp.zeros(2), jnp.diag(jnp.array([1.0, -1.0])))
    with _raises(
        ValueError, "gaussian_params: scale_tril must have a diagonal", r"\[0, 0\] = 0\.0"
    ):
        gaussian_params(jnp.zeros(2), jnp.diag(jnp.array([0.0, 1.0])))


def test_gaussian_params_refuses_non_finite_entries():
    with _raises(ValueError, "gaussian_params: loc", FIN, r"loc\[0\] = nan"):
        gaussian_params(jnp.array([np.nan, 0.0]), jnp.eye(2))
    with _raises(ValueError, "gaussian_params: scale_tril must be finite", r"\[1, 0\] = inf"):
        gaussian_params(jnp.zeros(2), jnp.array([[1.0, 0.0], [np.inf, 1.0]]))


def test_gaussian_params_ignores_the_upper_triangle():
    # Only the lower triangle is read (documented): junk above it is no error.
    p = gaussian_params(jnp.zeros(2), jnp.array([[1.0, np.nan], [0.5, 2.0]]))
    assert np.isfinite(np.asarray(jnp.tril(p.raw_scale_tril))).all()


def test_forward_kl_refuses_a_nan_sample():
    q = N(0.0, 1.0)
    with _raises(
        ValueError, "forward_kl: x must not contain NaN", r"x\[1\] = nan \(1 of 3 entries\)"
    ):
        forward_kl(q, jnp.array([0.0, np.nan, 1.0]))
    with _raises(ValueError, "forward_kl: log_p must not contain NaN", r"log_p\[0\] = nan"):
        forward_kl(q, jnp.zeros(2), jnp.array([np.nan, 0.0]))


def test_forward_kl_nan_under_jit_is_documented_nan_and_checked_raises():
    q, x = N(0.0, 1.0), jnp.array([0.0, np.nan, 1.0])
    est = jax.jit(forward_kl)(q, x)
    assert np.isnan(est.value)
    with _raises(ValueError, "forward_kl: x must not contain NaN", r"x\[1\] = nan"):
        jaxkl.checked(forward_kl)(q, x)


def test_forward_kl_accepts_infinite_samples_as_values():
    # A sample at ±inf is a value, not missing data: its cross-entropy term is +inf.
    est = forward_kl(N(0.0, 1.0), jnp.array([0.0, np.inf]))
    assert float(est.value) == np.inf


# ------------------------------------------------------------------ the message format
def test_messages_are_one_line_and_start_with_the_family():
    with pytest.raises(ValueError) as err:
        jaxkl.Gamma(jnp.array([1.0, -1.0]), 1.0)
    text = str(err.value)
    assert "\n" not in text
    assert re.fullmatch(
        r"Gamma: concentration must be > 0 and finite \(not NaN or ±inf\); "
        r"got concentration\[1\] = -1\.0 \(1 of 2 entries\)",
        text,
    )


# ------------------------------------------------------------------ estimators
def test_importance_proposal_missing_q_support_is_refused():
    # Was −0.146 ± 0.004 with ESS ≈ n and k̂ < 0 (truth 0.5): no draw of Exponential(1)
    # lands on the negative half of q = N(0, 1).
    with _raises(ValueError, "importance_kl: KL", "proposal", "must be finite", "= inf"):
        jaxkl.importance_kl(0, N(0.0, 1.0), N(1.0, 1.0), jaxkl.Exponential(1.0), 4000)


def test_importance_categorical_proposal_with_a_masked_category_is_refused():
    # Was 0.302 ± 9e-10 (truth 0.120): the proposal never draws category 1.
    q = jaxkl.Categorical(jnp.zeros(3))
    p = jaxkl.Categorical(jnp.array([1.0, 0.0, 0.0]))
    proposal = jaxkl.Categorical(jnp.array([0.0, -jnp.inf, 0.0]))
    with _raises(ValueError, "importance_kl: KL", "must be finite", "got KL", "= inf"):
        jaxkl.importance_kl(0, q, p, proposal, 4000)
    # The same category masked in q too: covered, accepted, and within 4 standard errors.
    q2 = jaxkl.Categorical(jnp.array([0.0, -jnp.inf, 0.0]))
    est = jaxkl.importance_kl(0, q2, p, proposal, 4000)
    assert abs(float(est.value) - float(jaxkl.kl(q2, p))) < 4 * float(est.stderr)


def test_importance_support_check_under_jit_and_checked():
    def estimate(scale):
        q = N(0.0, scale)
        return jaxkl.importance_kl(0, q, N(1.0, 1.0), jaxkl.Exponential(1.0), 400).value

    assert np.isnan(float(jax.jit(estimate)(1.0)))  # plain jit: NaN, never a wrong number
    with _raises(ValueError, "importance_kl: KL", "must be finite"):
        jaxkl.checked(estimate)(1.0)


def test_importance_wrong_length_callable_names_the_expected_shape():
    q, r = N(0.0, 1.0), N(0.0, 2.0)
    with _raises(ValueError, r"importance_kl: p\(x\) must return log densities of shape \(64,\)"):
        jaxkl.importance_kl(0, q, lambda x: q.log_prob(x)[:-1], r, 64)


def test_mc_kl_scalar_callable_is_refused():
    # Was 15.6 ± 0.2 for a KL of 0.5: the sum over the draws broadcast against each draw.
    p = N(1.0, 1.0)
    with _raises(ValueError, r"mc_kl: p\(x\) must return one log density per draw", "scalar"):
        jaxkl.mc_kl(0, N(0.0, 1.0), lambda x: jnp.sum(p.log_prob(x)), 256)
    # One value per draw is fine, with or without q's batch.
    est = jaxkl.mc_kl(0, N(0.0, 1.0), p.log_prob, 256)
    assert est.value.shape == ()


def test_mc_kl_score_gradient_keeps_support_mismatch_infinite():
    q = jaxkl.Categorical(jnp.zeros(3))
    p = jaxkl.Categorical(jnp.array([0.0, -jnp.inf, 0.0]))
    for gradient in ("score", "score_loo"):
        assert float(jaxkl.mc_kl(0, q, p, 64, gradient=gradient).value) == np.inf


def test_k3_with_log_p_plus_infinity_is_plus_infinity():
    log_q = jnp.zeros(4)
    log_p = jnp.array([0.0, np.inf, 0.0, 0.0])
    assert float(jaxkl.kl_from_log_probs(log_q, log_p, estimator="k3").value) == np.inf
    assert float(jaxkl.per_sample_kl(log_q, log_p, "k3")[1]) == np.inf
    # Finite gradient elsewhere: the unused branch cannot leak inf·0.
    grad = jax.grad(lambda lq: jnp.sum(jaxkl.per_sample_kl(lq, log_p.at[1].set(1.0), "k3")))
    assert np.all(np.isfinite(grad(log_q)))


@pytest.mark.parametrize("estimate", ["mc_kl", "importance_kl"])
def test_num_samples_of_2_to_the_31_is_a_clear_error(estimate):
    args = (0, N(0.0, 1.0), N(1.0, 1.0))
    call = {
        "mc_kl": lambda n: jaxkl.mc_kl(*args, n),
        "importance_kl": lambda n: jaxkl.importance_kl(*args, N(0.0, 2.0), n),
    }[estimate]
    with _raises(ValueError, f"{estimate}: num_samples must be below 2\\*\\*31", "2147483648"):
        call(2**31)


# ------------------------------------------------------------------ extreme values
def test_categorical_logits_near_float32_max():
    # Rows are shifted by their maximum first: was NaN (value and gradient).
    cat = jaxkl.Categorical
    a, b = jnp.array([3e38, -3e38, 0.0]), jnp.zeros(3)
    kl, (ga, gb) = jax.value_and_grad(lambda a, b: jaxkl.kl(cat(a), cat(b)), (0, 1))(a, b)
    np.testing.assert_allclose(float(kl), np.log(3.0), rtol=1e-6)  # p = (1, 0, 0), q uniform
    np.testing.assert_allclose(gb, [-2 / 3, 1 / 3, 1 / 3], rtol=1e-6)  # q − p
    np.testing.assert_array_equal(ga, 0.0)  # p ⊙ (g − E_p g) with p one-hot
    # a has mass where b's logit is 6e38 lower: the true KL exceeds 3e38, +inf in float32.
    assert float(jaxkl.kl(cat(b), cat(a))) == np.inf
    # Equal huge rows: exactly 0; a finite gap of 1e30 stays finite.
    assert float(jaxkl.kl(cat(a), cat(a))) == 0.0
    far = jaxkl.kl(cat(jnp.array([1e30, 0.0, 0.0])), cat(jnp.array([0.0, 1e30, 0.0])))
    np.testing.assert_allclose(float(far), 1e30, rtol=1e-6)


def _bernoulli_mp(a, b):
    """(KL, ∂/∂a, ∂/∂b) of Bernoulli logits in 60 digits: σ(a)(sp(−b) − sp(−a)) +
    σ(−a)(sp(b) − sp(a)), ∂/∂a = (a − b)σ(a)σ(−a), ∂/∂b = σ(b) − σ(a)."""
    import mpmath as mp

    with mp.workdps(60):
        a, b = mp.mpf(float(a)), mp.mpf(float(b))
        sig = lambda x: 1 / (1 + mp.exp(-x))  # noqa: E731
        sp = lambda x: mp.log1p(mp.exp(x)) if x < 0 else x + mp.log1p(mp.exp(-x))  # noqa: E731
        kl = sig(a) * (sp(-b) - sp(-a)) + sig(-a) * (sp(b) - sp(a))
        return float(kl), float((a - b) * sig(a) * sig(-a)), float(sig(b) - sig(a))


@pytest.mark.parametrize(
    "a, b",
    [(3e38, -3e38), (-3e38, 3e38), (3.4e38, -3.4e38), (-1e38, 3e38), (50.0, -3e38), (0.0, 3e38)],
)
def test_bernoulli_logits_near_float32_max_value_and_gradient(a, b):
    """Logits whose difference overflows float32: KL ≈ the larger |logit| (finite), the
    gradient (0, ±1). Were +inf with NaN gradients (the logit gap overflowed)."""
    a, b = np.float32(a), np.float32(b)
    kl, (ga, gb) = jax.value_and_grad(jaxkl.analytic.bernoulli, (0, 1))(a, b)
    ref, ref_a, ref_b = _bernoulli_mp(a, b)
    np.testing.assert_allclose(float(kl), ref, rtol=1e-6)
    np.testing.assert_allclose([float(ga), float(gb)], [ref_a, ref_b], rtol=1e-6, atol=1e-30)


def _categorical_mp(a, b):
    """(KL, ∂/∂a, ∂/∂b) of Categorical logits in 100 digits (logits up to 3.4e38 need
    ~40 digits before the point): ∂/∂a_j = p_j(g_j − KL), g = log p − log q, ∂/∂b = q − p."""
    import mpmath as mp

    with mp.workdps(100):
        a, b = [mp.mpf(float(x)) for x in a], [mp.mpf(float(x)) for x in b]
        lse = lambda x: max(x) + mp.log(sum(mp.exp(v - max(x)) for v in x))  # noqa: E731
        lp, lq = [x - lse(a) for x in a], [x - lse(b) for x in b]
        p, q = [mp.exp(x) for x in lp], [mp.exp(x) for x in lq]
        kl = sum(pk * (x - y) for pk, x, y in zip(p, lp, lq, strict=True))
        ga = [pk * (x - y - kl) for pk, x, y in zip(p, lp, lq, strict=True)]
        return float(kl), [float(x) for x in ga], [float(y - x) for x, y in zip(p, q, strict=True)]


CATEGORICAL_FAR = [
    ([3e38, -3e38], [3e38, 3.4e38]),  # b shifts to (−4e37, 0): a gap the kernel cannot take
    ([-3e38, 3e38], [3.4e38, 3e38]),
    ([3e38, 3e38, -3e38], [3e38, 3.4e38, 3.4e38]),
    ([3.4e38, 0.0, -1e38], [3e38, 3.4e38, -3e38]),
    ([-1e38, 3e38, -1e38], [1.0, 3e38, -1e38]),
    ([3e38, 3e38, 0.0], [3e38, 1.0, -3e38]),
    # Row maxima in range, a very negative finite entry: the range test must read every
    # entry, not only the maxima (NaN when it read the maxima alone).
    ([0.0, 1.0, -3e38], [-1e38, 0.0, 0.0]),
    ([0.0, -1e38, 1.0], [0.0, 0.0, -3e38]),
]


def test_categorical_logits_near_float32_max_against_mpmath():
    """Rows whose logit gaps stay beyond the kernel's range after the shift by the row
    maximum are computed by the textbook form (nothing cancels there): values within 1e-6,
    gradients within 1e-6 of the largest entry, against 100-digit arithmetic. Were NaN
    (value and gradient); 16 kinds of such pairs were found among 3-category logits
    from {0, 1, ±1e38, ±3e38, 3.4e38, −inf}, all checked when this test was written."""
    cat = jaxkl.Categorical
    for a, b in CATEGORICAL_FAR:
        a, b = np.array(a, np.float32), np.array(b, np.float32)
        kl, (ga, gb) = jax.value_and_grad(lambda x, y: jaxkl.kl(cat(x), cat(y)), (0, 1))(a, b)
        ref, ref_a, ref_b = _categorical_mp(a, b)
        np.testing.assert_allclose(float(kl), ref, rtol=1e-6, atol=1e-6)
        for got, want in ((ga, ref_a), (gb, ref_b)):
            scale = max(1.0, float(np.max(np.abs(want))))
            np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-6 * scale)


def test_categorical_support_mismatch_survives_the_shift():
    """a's logit −3e38 is finite (positive mass) where b's is −inf: +inf, although the
    shift by a's maximum (3.4e38) overflows that logit to −inf (was 0.0 in the rewrite's
    first draft, and NaN before)."""
    cat = jaxkl.Categorical
    a, b = jnp.array([-3e38, 3.4e38, 1.0]), jnp.array([-jnp.inf, -1e38, -3e38])
    assert float(jaxkl.kl(cat(a), cat(b))) == np.inf
    # Row maxima in range, a's −1e38 finite where b's is −inf (NaN when the range test read
    # the row maxima alone).
    a, b = jnp.array([0.0, -1e38, -3e38]), jnp.array([0.0, -jnp.inf, 0.0])
    assert float(jaxkl.kl(cat(a), cat(b))) == np.inf


@pytest.mark.parametrize(
    "a, b",
    [
        ((0.0, 1e-30), (0.0, 1e10)),  # width ratio 1e40 overflows float32: was +inf
        ((0.0, 1.0), (-3e38, 3e38)),  # b's width overflows
        ((-3e38, 3e38), (-3.3e38, 3.3e38)),  # both widths overflow: was 0.0
        ((0.0, 1.0), (0.0, 4.0)),
    ],
)
def test_uniform_kl_with_widths_far_apart_or_beyond_float32(a, b):
    lo_a, hi_a, lo_b, hi_b = (np.float32(v) for v in (*a, *b))
    ref = math.log((float(hi_b) - float(lo_b)) / (float(hi_a) - float(lo_a)))
    out = jaxkl.kl(jaxkl.Uniform(lo_a, hi_a), jaxkl.Uniform(lo_b, hi_b))
    np.testing.assert_allclose(float(out), ref, rtol=2e-6)


def test_zero_dimensional_log_probs_name_the_missing_sample_axis():
    with _raises(ValueError, "kl_from_log_probs: log_q and log_p must have a sample axis"):
        jaxkl.kl_from_log_probs(jnp.array(0.0), jnp.array(1.0))


def test_mean_with_stderr_axis_out_of_range_is_a_value_error():
    # Was an IndexError from inside numpy.
    with _raises(ValueError, r"mean_with_stderr: axis 3 out of range for samples of shape \(5,\)"):
        jaxkl.mean_with_stderr(jnp.zeros(5), axis=3)
