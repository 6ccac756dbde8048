"""Gaussian KL from log-scales: float32 precision for tiny log-ratios, gradients, transforms.

The reference is mpmath at 50 digits evaluated on the exact float32 (or float64) inputs,
so only the kernel's rounding is measured. Exponentiating first is checked to fail the
same bound, so the bound can tell the two apart.
"""

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

import jaxkl

mpmath.mp.dps = 50

# log-ratios t = a − b from 1e-8 to 10, both signs; b spans a range of log-scales. In
# float32 a = b + t rounds to b where t is below half an ulp of b (2.4e-7 at b = 2), so
# the smallest t survive only for the log-scales near 0; those pairs must give exactly 0.
T = np.concatenate([-np.logspace(-8, 1, 10), np.logspace(-8, 1, 10)])
B = np.array([-3.1, -0.04, 0.0, 0.3, 2.0])


def _grid(dtype, dloc):
    b = np.broadcast_to(B[None, :], (T.size, B.size)).astype(dtype)
    a = (b.astype(np.float64) + T[:, None]).astype(dtype)
    loc_a = np.full(a.shape, 0.25 + dloc, dtype)
    loc_b = np.full(a.shape, 0.25, dtype)
    return loc_a, a, loc_b, b


def _kl_mp(loc_a, a, loc_b, b) -> float:
    """½((μa − μb)e^{−b})² + ½(e^{2t} − 1) − t, t = a − b, in 50 digits."""
    t = mpmath.mpf(float(a)) - mpmath.mpf(float(b))
    z = (mpmath.mpf(float(loc_a)) - mpmath.mpf(float(loc_b))) * mpmath.exp(-mpmath.mpf(float(b)))
    return float(z * z / 2 + (mpmath.expm1(2 * t)) / 2 - t)


def _rel(got, loc_a, a, loc_b, b):
    """Relative errors where the reference is > 0; identical arguments must give 0."""
    ref = np.vectorize(_kl_mp)(loc_a, a, loc_b, b)
    got = np.asarray(got, np.float64)
    assert np.all(got[ref == 0] == 0)
    return np.abs(got[ref > 0] - ref[ref > 0]) / ref[ref > 0]


@pytest.mark.parametrize("dloc", [0.0, 1e-4])
def test_float32_log_scale_kl_matches_50_digits(dloc):
    loc_a, a, loc_b, b = _grid(np.float32, dloc)
    got = jaxkl.kl(jaxkl.Normal(loc_a, log_scale=a), jaxkl.Normal(loc_b, log_scale=b))
    assert got.dtype == jnp.float32
    rel = _rel(got, loc_a, a, loc_b, b)
    assert rel.size >= 0.9 * a.size and rel.max() <= 1e-5, rel.max()
    if dloc == 0.0:
        # The same laws built from exp(log_scale): the ratio rounds to within an ulp of 1
        # and the bound fails by orders of magnitude.
        naive = jaxkl.kl(jaxkl.Normal(loc_a, np.exp(a)), jaxkl.Normal(loc_b, np.exp(b)))
        assert _rel(naive, loc_a, a, loc_b, b).max() > 1e-2


def test_lognormal_mvn_diag_and_independent_use_the_log_ratio():
    loc_a, a, loc_b, b = _grid(np.float32, 0.0)
    rel = _rel(
        jaxkl.kl(jaxkl.LogNormal(loc_a, log_scale=a), jaxkl.LogNormal(loc_b, log_scale=b)),
        loc_a,
        a,
        loc_b,
        b,
    )
    assert rel.max() <= 1e-5
    # Rows of B as the event: the sum of three per-coordinate KLs, each of one sign.
    mvn_a = jaxkl.MultivariateNormalDiag(loc_a, log_scale_diag=a)
    mvn_b = jaxkl.MultivariateNormalDiag(loc_b, log_scale_diag=b)
    ref = np.vectorize(_kl_mp)(loc_a, a, loc_b, b).sum(-1)
    assert np.all(ref > 0)
    for got in (
        jaxkl.kl(mvn_a, mvn_b),
        jaxkl.kl(jaxkl.Independent(jaxkl.Normal(loc_a, log_scale=a), 1), mvn_b),
    ):
        assert np.max(np.abs(np.asarray(got, np.float64) - ref) / ref) <= 1e-5


def test_unit_prior_given_as_scale_keeps_the_log_path():
    # KL(N(0, e^t) ‖ N(0, 1)) with the prior built from scale = 1: log 1 = 0 exactly.
    t = np.logspace(-8, 1, 10).astype(np.float32)
    got = jaxkl.kl(jaxkl.Normal(0.0, log_scale=t), jaxkl.Normal(0.0, 1.0))
    ref = np.array([float(mpmath.expm1(2 * mpmath.mpf(float(x))) / 2 - float(x)) for x in t])
    assert np.max(np.abs(np.asarray(got, np.float64) - ref) / ref) <= 1e-5


def test_float64_log_scale_kl_matches_50_digits():
    with jax.enable_x64(True):
        loc_a, a, loc_b, b = _grid(np.float64, 1e-4)
        got = jaxkl.kl(jaxkl.Normal(loc_a, log_scale=a), jaxkl.Normal(loc_b, log_scale=b))
        assert got.dtype == jnp.float64
        assert _rel(got, loc_a, a, loc_b, b).max() <= 1e-13


def test_grad_in_log_scales_is_the_analytic_derivative():
    # ∂KL/∂a = expm1(2t); ∂KL/∂b = −expm1(2t) − z², z = (μa − μb)e^{−b}.
    loc_a, a, loc_b, b = _grid(np.float32, 1e-3)

    def f(a, b):
        return jaxkl.kl(jaxkl.Normal(loc_a, log_scale=a), jaxkl.Normal(loc_b, log_scale=b)).sum()

    ga, gb = jax.grad(f, argnums=(0, 1))(jnp.asarray(a), jnp.asarray(b))
    t = a.astype(np.float64) - b.astype(np.float64)
    z2 = np.square((loc_a.astype(np.float64) - loc_b) * np.exp(-b.astype(np.float64)))
    want_a = np.expm1(2 * t)
    np.testing.assert_allclose(ga, want_a, rtol=1e-5, atol=0)
    np.testing.assert_allclose(gb, -want_a - z2, rtol=1e-5, atol=0)


def test_jit_vmap_and_pytree_with_log_scales():
    a = jnp.linspace(-1.0, 1.0, 4)
    q = jaxkl.Normal(jnp.zeros(4), log_scale=a)
    p = jaxkl.Normal(0.0, log_scale=0.0)
    leaves = jax.tree_util.tree_leaves(q)
    assert len(leaves) == 2 and leaves[1] is q.log_scale  # one leaf per parameter
    f = jax.jit(lambda q, p: jaxkl.kl(q, p))  # its own cache
    eager = jaxkl.kl(q, p)
    np.testing.assert_allclose(f(q, p), eager, rtol=1e-6)
    f(jaxkl.Normal(jnp.ones(4), log_scale=a + 1.0), p)
    assert f._cache_size() == 1  # same shapes and forms: no recompile
    per = jax.vmap(lambda d: jaxkl.kl(d, p))(q)
    np.testing.assert_allclose(per, eager, rtol=1e-6)
    # The cotangent of a log-scale Normal is in its log_scale leaf: optax-ready.
    g = jax.grad(lambda d: jaxkl.kl(d, p).sum())(q)
    assert isinstance(g, jaxkl.Normal) and g._scale is None
    np.testing.assert_allclose(g.log_scale, np.expm1(2 * np.asarray(a)), rtol=1e-5)


@pytest.mark.parametrize(
    "build, names",
    [
        (lambda **kw: jaxkl.Normal(0.0, **kw), ("scale", "log_scale")),
        (lambda **kw: jaxkl.LogNormal(0.0, **kw), ("scale", "log_scale")),
        (
            lambda **kw: jaxkl.MultivariateNormalDiag(jnp.zeros(2), **kw),
            ("scale_diag", "log_scale_diag"),
        ),
    ],
)
def test_exactly_one_of_scale_and_log_scale(build, names):
    name, log_name = names
    for kwargs, what in (({}, "neither"), ({name: 1.0, log_name: 0.0}, "both")):
        with pytest.raises(ValueError, match=f"exactly one of {name} and {log_name}; got {what}"):
            build(**kwargs)
    with pytest.raises(ValueError, match=f"{log_name} must be finite"):
        build(**{log_name: jnp.inf})


def test_log_scales_beyond_the_float32_exponent_range_give_no_nan():
    # e^{−log σ_b} overflows below log σ_b = −88.7: equal locations must still give z = 0.
    def f(loc_a, a, b):
        return jaxkl.kl(jaxkl.Normal(loc_a, log_scale=a), jaxkl.Normal(0.0, log_scale=b))

    assert float(f(0.0, -100.0, -100.0)) == 0.0
    grads = jax.grad(f, argnums=(0, 1, 2))(0.0, -99.0, -100.0)
    np.testing.assert_allclose(grads, [0.0, np.expm1(2.0), -np.expm1(2.0)], rtol=1e-6)
