"""Property: random finite parameters never give NaN from ``kl`` or its gradient.

For every registered pair and every floating dtype (float16, bfloat16, float32, float64),
hypothesis draws batches of valid parameters whose magnitudes are log-uniform over
[e^−L, e^L] (locations and logits: ±sinh of the same range), with L per dtype
(``LOG_RANGE``) such that every gradient of that size is representable. The KL must not be NaN
(+inf is a value: support mismatch or overflow), and where it is finite no entry of its
gradient with respect to any parameter of either distribution may be NaN. Where the KL
overflows to +inf its gradient is not asserted (there is no finite slope to return).

Deterministic (``derandomize=True``) and bounded: ``EXAMPLES`` batches of ``BATCH``
parameter sets per pair and dtype.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import jaxkl
from jaxkl.analytic.cross_family import SUPPORT_MISMATCH_PAIRS

DTYPES = ("float16", "bfloat16", "float32", "float64")
# Log-magnitude range per dtype. The Gaussian KLs hold squared ratios ½(Δμ/σ)², whose
# gradient Δμ²/σ³ reaches e^{5L}, so L = log(max)/5.5 keeps every gradient representable
# (at L = 25 in float32, MultivariateNormalTriL with Δμ = 5e7, σ = 9e-9 has a finite KL,
# 3e31, and a gradient beyond float32 that came out NaN rather than inf): bfloat16 and
# float32 e^±16 ≈ 1.1e-7 … 8.9e6, float64 e^±128 ≈ 2.6e-56 … 3.9e55. float16 is computed
# in float32 (half_precision_in_float32), so it spans its whole normal range,
# e^±9.5 ≈ 7.5e-5 … 13 360 (float16: 6.1e-5 … 65 504).
LOG_RANGE = {"float16": 9.5, "bfloat16": 16.0, "float32": 16.0, "float64": 128.0}
BATCH = 64
EXAMPLES = 4
D = 2  # event size of the multivariate families
K = 3  # categories


def _positive(u, L, dtype):
    return jnp.asarray(np.exp(L * u), dtype)


def _real(u, L, dtype):
    return jnp.asarray(np.sinh(L * u), dtype)


def _uniform(u, L, dtype):
    low = _real(u[:, 0], L, dtype)
    high = jnp.asarray(np.asarray(low, np.float64) + np.exp(L * u[:, 1]), dtype)
    # Rounding to a short dtype can leave high == low: step to the next representable value.
    high = jnp.where(high > low, high, jnp.nextafter(low, jnp.asarray(jnp.inf, dtype)))
    return jaxkl.Uniform(low, high)


def _tril(u, L, dtype):
    scale = np.zeros((u.shape[0], D, D))
    scale[:, np.arange(D), np.arange(D)] = np.exp(L * u[:, D : 2 * D])
    scale[:, 1, 0] = np.sinh(L * u[:, 2 * D])
    return jaxkl.MultivariateNormalTriL(_real(u[:, :D], L, dtype), jnp.asarray(scale, dtype))


def _location_scale(cls):
    return 2, lambda u, L, t: cls(_real(u[:, 0], L, t), _positive(u[:, 1], L, t))


# family -> (how many unit numbers u ∈ [−1, 1] one parameter set uses, builder(u [B, n],
# L, dtype) -> a distribution with batch shape [B]).
FAMILIES = {
    jaxkl.Normal: _location_scale(jaxkl.Normal),
    jaxkl.Laplace: _location_scale(jaxkl.Laplace),
    jaxkl.Gumbel: _location_scale(jaxkl.Gumbel),
    jaxkl.LogNormal: _location_scale(jaxkl.LogNormal),
    jaxkl.Uniform: (2, _uniform),
    jaxkl.Exponential: (1, lambda u, L, t: jaxkl.Exponential(_positive(u[:, 0], L, t))),
    jaxkl.Poisson: (1, lambda u, L, t: jaxkl.Poisson(_positive(u[:, 0], L, t))),
    jaxkl.Bernoulli: (1, lambda u, L, t: jaxkl.Bernoulli(_real(u[:, 0], L, t))),
    jaxkl.Gamma: (
        2,
        lambda u, L, t: jaxkl.Gamma(_positive(u[:, 0], L, t), _positive(u[:, 1], L, t)),
    ),
    jaxkl.Beta: (2, lambda u, L, t: jaxkl.Beta(_positive(u[:, 0], L, t), _positive(u[:, 1], L, t))),
    jaxkl.Dirichlet: (K, lambda u, L, t: jaxkl.Dirichlet(_positive(u, L, t))),
    jaxkl.Categorical: (K, lambda u, L, t: jaxkl.Categorical(_real(u, L, t))),
    jaxkl.MultivariateNormalDiag: (
        2 * D,
        lambda u, L, t: jaxkl.MultivariateNormalDiag(
            _real(u[:, :D], L, t), _positive(u[:, D:], L, t)
        ),
    ),
    jaxkl.MultivariateNormalTriL: (2 * D + 1, _tril),
    jaxkl.Independent: (
        2 * D,
        lambda u, L, t: jaxkl.Independent(
            jaxkl.Normal(_real(u[:, :D], L, t), _positive(u[:, D:], L, t)), 1
        ),
    ),
}

PAIRS = [(a, b) for a, b, _ in jaxkl.registered_pairs()]


def _pair_id(pair):
    return f"{pair[0].__name__}-{pair[1].__name__}"


# The default run (CI) covers float32 and float16 for the pairs that compile in about a
# second; the rest run under --run-slow (make test-all). Pairs whose kernels differentiate
# digamma/gammaln (Beta, Dirichlet, Gamma) or the categorical reductions compile for
# 2–17 s each per dtype (value and gradient; measured single-process on the 2-core
# machine), and bfloat16/float64 double the count. Half-precision values and
# large-concentration gradients of those families are pinned in the default run by
# tests/analytic/test_edge_precision.py and tests/test_bad_inputs.py.
_HEAVY = {jaxkl.Beta, jaxkl.Dirichlet, jaxkl.Gamma, jaxkl.Bernoulli, jaxkl.Categorical}
_DEFAULT_DTYPES = ("float16", "float32")
# float16 is computed in float32 (half_precision_in_float32, one wrapper for every pair),
# on a narrower range (e^±9.5) than the float32 case (e^±16), whose compiled programs it
# shares; its second run costs 0.1-1 s a pair. CI runs float32 for every pair (the
# kernel's own arithmetic over the widest range) and float16 for the support-mismatch
# pairs (no kernel, free) and one pair of each kind of kernel: location-scale
# (Normal-Normal), cross-family (Normal-Laplace), bounded support (Uniform-Uniform),
# discrete (Poisson-Poisson), log-transformed (LogNormal-LogNormal), full-covariance
# (MultivariateNormalDiag-MultivariateNormalTriL) and Independent
# (Independent-MultivariateNormalDiag). --run-slow runs float16 for every pair.
_HALF_CI = {
    (jaxkl.Normal, jaxkl.Normal),
    (jaxkl.Normal, jaxkl.Laplace),
    (jaxkl.Uniform, jaxkl.Uniform),
    (jaxkl.Poisson, jaxkl.Poisson),
    (jaxkl.LogNormal, jaxkl.LogNormal),
    (jaxkl.MultivariateNormalDiag, jaxkl.MultivariateNormalTriL),
    (jaxkl.Independent, jaxkl.MultivariateNormalDiag),
    *SUPPORT_MISMATCH_PAIRS,
}


def _cases():
    for pair in PAIRS:
        for dtype in DTYPES:
            slow = bool(_HEAVY & set(pair)) or dtype not in _DEFAULT_DTYPES
            slow = slow or (dtype == "float16" and pair not in _HALF_CI)
            marks = [pytest.mark.slow] if slow else []
            yield pytest.param(pair, dtype, marks=marks, id=f"{_pair_id(pair)}-{dtype}")


def _total(a, b):
    kl = jaxkl.kl(a, b)
    return jnp.sum(kl), kl


# Eager, not jitted: the kernels' compiled cores are cached by shape and dtype, so the
# float16/bfloat16 runs of a kernel that computes in float32 reuse its float32 programs
# (an outer jit would compile every pair and dtype afresh: 2.5x the CPU time).
_value_and_grad = jax.value_and_grad(_total, argnums=(0, 1), has_aux=True)


def _rows(dist, mask):
    """The first three parameter sets of a batched distribution where ``mask`` holds."""
    leaves = [np.asarray(x, np.float64)[mask][:3].tolist() for x in jax.tree.leaves(dist)]
    return f"{type(dist).__name__}{leaves}"


def _units(n):
    return hnp.arrays(
        np.float64, (BATCH, n), elements=st.floats(-1.0, 1.0, allow_nan=False, width=64)
    )


@pytest.mark.parametrize("pair, dtype", list(_cases()))
def test_kl_and_its_gradient_are_never_nan(pair, dtype):
    cls_a, cls_b = pair
    (n_a, build_a), (n_b, build_b) = FAMILIES[cls_a], FAMILIES[cls_b]
    L = LOG_RANGE[dtype]

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        # No shrinking: the assertion already prints the offending parameter sets, and
        # shrinking the expected failures would cost minutes of re-evaluation.
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(_units(n_a), _units(n_b))
    def check(u_a, u_b):
        a, b = build_a(u_a, L, dtype), build_b(u_b, L, dtype)
        (_, kl), (g_a, g_b) = _value_and_grad(a, b)
        kl = np.asarray(kl, np.float64)
        bad = np.isnan(kl)
        assert not bad.any(), f"NaN KL: a = {_rows(a, bad)}, b = {_rows(b, bad)}"
        finite = np.isfinite(kl)
        for side, grads in (("a", g_a), ("b", g_b)):
            for leaf in jax.tree.leaves(grads):
                g = np.asarray(leaf, np.float64).reshape(BATCH, -1)
                bad = np.isnan(g).any(axis=1) & finite
                assert not bad.any(), (
                    f"NaN gradient w.r.t. {side}: a = {_rows(a, bad)}, b = {_rows(b, bad)}, "
                    f"kl = {kl[bad][:3]}"
                )

    with jax.enable_x64(dtype == "float64"):
        check()
