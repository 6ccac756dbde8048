"""Gaussian-family KL: oracles (quadrature, numpy Monte Carlo), properties, transforms, errors.

Float32 extremes and float64 gradients live in test_gaussian_float64.py.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import jaxkl
from jaxkl.distributions.parameters import Parameter
from tests.oracles import mc_kl, quad_kl

Diag = jaxkl.MultivariateNormalDiag
TriL = jaxkl.MultivariateNormalTriL

ORACLE_PAIRS = {
    (jaxkl.Normal, jaxkl.Normal),
    (jaxkl.LogNormal, jaxkl.LogNormal),
    (Diag, Diag),
    (TriL, TriL),
    (Diag, TriL),
    (TriL, Diag),
    (jaxkl.Independent, jaxkl.Independent),
}

PROPERTY = settings(max_examples=25, deadline=None)


def _random_tril(rng, d, *batch):
    """Lower triangular with a positive diagonal, well enough conditioned for d ≤ 8."""
    L = np.tril(rng.normal(scale=0.4, size=(*batch, d, d)), -1)
    return L + np.exp(rng.normal(scale=0.4, size=(*batch, d)))[..., None] * np.eye(d)


def _random_params(kind, rng, d, *batch):
    loc = rng.normal(size=(*batch, d))
    if kind == "diag":
        return loc, np.exp(rng.normal(scale=0.4, size=(*batch, d)))
    return loc, _random_tril(rng, d, *batch)


def _jaxkl_dist(kind, loc, scale):
    return Diag(loc, scale) if kind == "diag" else TriL(loc, scale)


def _np_tril(kind, scale):
    return np.diag(scale) if kind == "diag" else scale


def _textbook_kl(loc_a, cov_a, loc_b, cov_b):
    """Float64 numpy KL with explicit inverse and log-determinants (not how jaxkl does it)."""
    d = loc_a.shape[-1]
    inv_b = np.linalg.inv(cov_b)
    diff = loc_b - loc_a
    return 0.5 * (
        np.trace(inv_b @ cov_a)
        + diff @ inv_b @ diff
        - d
        + np.linalg.slogdet(cov_b)[1]
        - np.linalg.slogdet(cov_a)[1]
    )


# ------------------------------------------------------------------ oracles


def test_normal_matches_quadrature_both_directions():
    rng = np.random.default_rng(0)
    loc = rng.normal(scale=2.0, size=(2, 4))
    scale = np.exp(rng.uniform(-1.5, 1.5, size=(2, 4)))
    for a, b in ((0, 1), (1, 0)):
        got = np.asarray(jaxkl.kl(jaxkl.Normal(loc[a], scale[a]), jaxkl.Normal(loc[b], scale[b])))
        for i in range(4):
            pa, pb = stats.norm(loc[a, i], scale[a, i]), stats.norm(loc[b, i], scale[b, i])
            # ±40σ around a's mean holds all but e^{-800} of a's mass.
            lo, hi = loc[a, i] - 40 * scale[a, i], loc[a, i] + 40 * scale[a, i]
            ref = quad_kl(pa.logpdf, pb.logpdf, lo, hi, points=[loc[a, i]])
            np.testing.assert_allclose(got[i], ref, rtol=2e-5)


def test_lognormal_matches_quadrature_both_directions():
    rng = np.random.default_rng(1)
    loc = rng.uniform(-1.0, 1.0, size=(2, 4))
    scale = np.exp(rng.uniform(-1.0, 0.5, size=(2, 4)))
    for a, b in ((0, 1), (1, 0)):
        got = np.asarray(
            jaxkl.kl(jaxkl.LogNormal(loc[a], scale[a]), jaxkl.LogNormal(loc[b], scale[b]))
        )
        for i in range(4):
            pa = stats.lognorm(s=scale[a, i], scale=np.exp(loc[a, i]))
            pb = stats.lognorm(s=scale[b, i], scale=np.exp(loc[b, i]))
            ref = quad_kl(pa.logpdf, pb.logpdf, 0.0, np.inf)
            np.testing.assert_allclose(got[i], ref, rtol=2e-5)


MVN_CASES = [("diag", "diag", 3), ("tril", "tril", 5), ("diag", "tril", 4), ("tril", "diag", 4)]


@pytest.mark.parametrize("kind_a, kind_b, d", MVN_CASES)
def test_mvn_matches_numpy_monte_carlo_within_5_se(kind_a, kind_b, d):
    rng = np.random.default_rng(100 + d)
    pa = _random_params(kind_a, rng, d)
    pb = _random_params(kind_b, rng, d)
    # Both directions: (a, b) and (b, a) with the families swapped accordingly.
    for (ka, (la, sa)), (kb, (lb, sb)) in (
        ((kind_a, pa), (kind_b, pb)),
        ((kind_b, pb), (kind_a, pa)),
    ):
        La, Lb = _np_tril(ka, sa), _np_tril(kb, sb)
        got = float(jaxkl.kl(_jaxkl_dist(ka, la, sa), _jaxkl_dist(kb, lb, sb)))
        ref_a = stats.multivariate_normal(la, La @ La.T)
        ref_b = stats.multivariate_normal(lb, Lb @ Lb.T)
        mean, se = mc_kl(
            lambda r, n, la=la, La=La: la + r.standard_normal((n, la.shape[0])) @ La.T,
            ref_a.logpdf,
            ref_b.logpdf,
            n=200_000,
            seed=d,
        )
        assert abs(got - mean) < 5 * se, (ka, kb, got, mean, se)
        # The exact float64 textbook form pins the value far tighter than the MC does.
        exact = _textbook_kl(la, La @ La.T, lb, Lb @ Lb.T)
        np.testing.assert_allclose(got, exact, rtol=1e-5)


def test_independent_matches_quadrature_sum():
    rng = np.random.default_rng(2)
    loc = rng.normal(size=(2, 2, 3))
    scale = np.exp(rng.uniform(-1.0, 1.0, size=(2, 2, 3)))
    a = jaxkl.Independent(jaxkl.Normal(loc[0], scale[0]), 1)
    b = jaxkl.Independent(jaxkl.Normal(loc[1], scale[1]), 1)
    got = np.asarray(jaxkl.kl(a, b))
    assert got.shape == (2,)
    for row in range(2):
        ref = 0.0
        for j in range(3):
            pa = stats.norm(loc[0, row, j], scale[0, row, j])
            pb = stats.norm(loc[1, row, j], scale[1, row, j])
            lo, hi = pa.mean() - 40 * pa.std(), pa.mean() + 40 * pa.std()
            ref += quad_kl(pa.logpdf, pb.logpdf, lo, hi, points=[pa.mean()])
        np.testing.assert_allclose(got[row], ref, rtol=2e-5)
    # Two reinterpreted axes of a LogNormal base: the full sum, a scalar.
    la = jaxkl.Independent(jaxkl.LogNormal(loc[0], scale[0]), 2)
    lb = jaxkl.Independent(jaxkl.LogNormal(loc[1], scale[1]), 2)
    ref = sum(
        quad_kl(
            stats.lognorm(s=scale[0, r, j], scale=np.exp(loc[0, r, j])).logpdf,
            stats.lognorm(s=scale[1, r, j], scale=np.exp(loc[1, r, j])).logpdf,
            0.0,
            np.inf,
        )
        for r in range(2)
        for j in range(3)
    )
    np.testing.assert_allclose(jaxkl.kl(la, lb), ref, rtol=2e-5)


# ------------------------------------------------------------------ properties

log_scales = st.floats(-4.0, 4.0)
locs = st.floats(-10.0, 10.0)
seeds = st.integers(0, 2**32 - 1)


@PROPERTY
@given(locs, log_scales, locs, log_scales)
def test_normal_and_lognormal_kl_nonnegative_and_zero_on_diagonal(m1, s1, m2, s2):
    for fam in (jaxkl.Normal, jaxkl.LogNormal):
        a, b = fam(m1, np.exp(s1)), fam(m2, np.exp(s2))
        assert float(jaxkl.kl(a, a)) == 0.0
        assert float(jaxkl.kl(a, b)) >= 0.0


@PROPERTY
@given(seeds, st.sampled_from(["diag", "tril"]), st.sampled_from(["diag", "tril"]))
def test_mvn_kl_nonnegative_and_zero_on_diagonal(seed, kind_a, kind_b):
    rng = np.random.default_rng(seed)
    a = _jaxkl_dist(kind_a, *_random_params(kind_a, rng, 3))
    b = _jaxkl_dist(kind_b, *_random_params(kind_b, rng, 3))
    assert float(jaxkl.kl(a, b)) >= 0.0
    # Exactly zero would need the triangular solve L⁻¹L to return an exact identity.
    assert abs(float(jaxkl.kl(a, a))) <= 1e-6
    assert abs(float(jaxkl.kl(b, b))) <= 1e-6


@PROPERTY
@given(seeds)
def test_diag_and_tril_parameterisations_agree(seed):
    rng = np.random.default_rng(seed)
    la, sa = _random_params("diag", rng, 3)
    lb, Lb = _random_params("tril", rng, 3)
    da, ta = Diag(la, sa), TriL(la, np.diag(sa))
    tb = TriL(lb, Lb)
    db = Diag(lb, np.diag(Lb))
    np.testing.assert_allclose(jaxkl.kl(da, tb), jaxkl.kl(ta, tb), rtol=1e-5)
    np.testing.assert_allclose(jaxkl.kl(tb, da), jaxkl.kl(tb, ta), rtol=1e-5)
    np.testing.assert_allclose(
        jaxkl.kl(da, db), jaxkl.kl(ta, TriL(lb, np.diag(np.diag(Lb)))), rtol=1e-5
    )


@PROPERTY
@given(seeds, st.floats(0.0, 2.0))
def test_kl_invariant_under_shared_affine_map(seed, log_cond):
    rng = np.random.default_rng(seed)
    d = 4
    la, La = _random_params("tril", rng, d)
    lb, Lb = _random_params("tril", rng, d)
    # A = Q₁ diag(λ) Q₂ with condition number 10^log_cond, and a random shift c.
    q1, _ = np.linalg.qr(rng.normal(size=(d, d)))
    q2, _ = np.linalg.qr(rng.normal(size=(d, d)))
    A = q1 @ np.diag(np.logspace(0.0, log_cond, d)) @ q2
    c = rng.normal(size=d)

    def moved(loc, L):
        return A @ loc + c, np.linalg.cholesky(A @ L @ L.T @ A.T)

    with jax.enable_x64(True):
        before = float(jaxkl.kl(TriL(la, La), TriL(lb, Lb)))
        after = float(jaxkl.kl(TriL(*moved(la, La)), TriL(*moved(lb, Lb))))
    np.testing.assert_allclose(after, before, rtol=1e-9)


@PROPERTY
@given(seeds)
def test_independent_normal_equals_mvn_diag(seed):
    rng = np.random.default_rng(seed)
    la, sa = _random_params("diag", rng, 3, 2)
    lb, sb = _random_params("diag", rng, 3, 2)
    x = rng.normal(size=(5, 2, 3))
    ia, ib = (jaxkl.Independent(jaxkl.Normal(l, s), 1) for l, s in ((la, sa), (lb, sb)))
    da, db = Diag(la, sa), Diag(lb, sb)
    assert ia.batch_shape == da.batch_shape and ia.event_shape == da.event_shape
    np.testing.assert_allclose(jaxkl.kl(ia, ib), jaxkl.kl(da, db), rtol=1e-5)
    np.testing.assert_allclose(ia.log_prob(x), da.log_prob(x), rtol=1e-5)
    np.testing.assert_allclose(ia.entropy(), da.entropy(), rtol=1e-5)


@PROPERTY
@given(locs, st.floats(-3.0, 3.0), locs, log_scales)
def test_residual_normal_equals_normal(delta_loc, log_delta_scale, loc_p, log_scale_p):
    ds, sp = np.exp(log_delta_scale), np.exp(log_scale_p)
    with jax.enable_x64(True):
        res = float(jaxkl.analytic.residual_normal(delta_loc, ds, sp))
        ref = float(jaxkl.analytic.normal(loc_p + delta_loc, sp * ds, loc_p, sp))
    np.testing.assert_allclose(res, ref, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ transformations


def _pair_examples():
    rng = np.random.default_rng(5)
    la, sa = _random_params("diag", rng, 3, 2)
    lb, Lb = _random_params("tril", rng, 3, 2)
    return {
        "normal": (jaxkl.Normal(la, sa), jaxkl.Normal(lb, sa[::-1])),
        "lognormal": (jaxkl.LogNormal(la, sa), jaxkl.LogNormal(lb, sa[::-1])),
        "diag-diag": (Diag(la, sa), Diag(lb, sa[::-1])),
        "tril-tril": (TriL(la, Lb[::-1]), TriL(lb, Lb)),
        "diag-tril": (Diag(la, sa), TriL(lb, Lb)),
        "tril-diag": (TriL(lb, Lb), Diag(la, sa)),
        "independent": (
            jaxkl.Independent(jaxkl.Normal(la, sa), 1),
            jaxkl.Independent(jaxkl.Normal(lb, sa[::-1]), 1),
        ),
    }


@pytest.mark.parametrize("name", list(_pair_examples()))
def test_jit_equals_eager_and_vmap_equals_loop(name):
    a, b = _pair_examples()[name]
    eager = np.asarray(jaxkl.kl(a, b))
    assert eager.shape == a.batch_shape and eager.shape[0] == 2 and np.all(np.isfinite(eager))
    np.testing.assert_allclose(jax.jit(jaxkl.kl)(a, b), eager, rtol=1e-6)
    # vmap over the leading batch axis of both distributions (they are pytrees).
    batched = jax.vmap(jaxkl.kl)(a, b)

    def take(d, i):
        return jax.tree_util.tree_map(lambda x: x[i], d)

    loop = np.stack([np.asarray(jaxkl.kl(take(a, i), take(b, i))) for i in range(2)])
    np.testing.assert_allclose(batched, loop, rtol=1e-6)
    np.testing.assert_allclose(loop, eager, rtol=1e-6)


def test_vmap_over_raw_mvn_parameters_equals_python_loop():
    rng = np.random.default_rng(6)
    la, La = _random_params("tril", rng, 4, 8)
    lb, Lb = _random_params("tril", rng, 4, 8)

    def f(la, La, lb, Lb):
        return jaxkl.kl(TriL(la, La), TriL(lb, Lb))

    batched = jax.vmap(f)(la, La, lb, Lb)
    loop = [float(f(la[i], La[i], lb[i], Lb[i])) for i in range(8)]
    np.testing.assert_allclose(batched, loop, rtol=1e-5)


def test_no_retrace_on_second_call_with_same_shapes():
    traces = []

    @jax.jit
    def f(la, La, lb, Lb):
        traces.append(1)
        return jaxkl.kl(TriL(la, La), TriL(lb, Lb)) + jaxkl.analytic.mvn_diag(
            la, jnp.diagonal(La, axis1=-2, axis2=-1), lb, jnp.diagonal(Lb, axis1=-2, axis2=-1)
        )

    rng = np.random.default_rng(7)
    for _ in range(3):
        la, La = _random_params("tril", rng, 3, 2)
        lb, Lb = _random_params("tril", rng, 3, 2)
        f(*(jnp.asarray(v, jnp.float32) for v in (la, La, lb, Lb))).block_until_ready()
    assert len(traces) == 1


def test_kernels_broadcast_batch_shapes():
    rng = np.random.default_rng(8)
    la, La = _random_params("tril", rng, 3, 4, 1)
    lb, Lb = _random_params("tril", rng, 3, 5)
    out = jaxkl.analytic.mvn_tril(la, La, lb, Lb)
    assert out.shape == (4, 5)
    np.testing.assert_allclose(
        out[2, 3], jaxkl.analytic.mvn_tril(la[2, 0], La[2, 0], lb[3], Lb[3]), rtol=1e-6
    )
    ones = np.ones(3)
    diag = jax.eval_shape(lambda: jaxkl.analytic.mvn_diag(np.zeros((4, 1, 3)), ones, ones, ones))
    assert diag.shape == (4, 1)
    logn = jax.eval_shape(lambda: jaxkl.analytic.lognormal(np.zeros(4), 1.0, 0.0, np.ones((2, 1))))
    assert logn.shape == (2, 4)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "kind_a, kind_b", [("diag", "diag"), ("tril", "tril"), ("diag", "tril"), ("tril", "diag")]
)
def test_kl_of_mvns_with_different_d_raises(kind_a, kind_b):
    rng = np.random.default_rng(9)
    a = _jaxkl_dist(kind_a, *_random_params(kind_a, rng, 3))
    b = _jaxkl_dist(kind_b, *_random_params(kind_b, rng, 4))
    with pytest.raises(ValueError, match="event sizes differ: a has d=3, b has d=4"):
        jaxkl.kl(a, b)


def test_kernels_name_each_event_size():
    with pytest.raises(
        ValueError, match=r"mvn_tril: event sizes differ: .*loc_a has d=3.*loc_b has d=4"
    ):
        jaxkl.analytic.mvn_tril(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match=r"mvn_diag: event sizes differ: .*scale_diag_b has d=2"):
        jaxkl.analytic.mvn_diag(np.zeros(3), np.ones(3), np.zeros(3), np.ones(2))
    with pytest.raises(
        ValueError, match=r"mvn_tril: scale_tril_b must have shape \[\.\.\., d, d\]"
    ):
        jaxkl.analytic.mvn_tril(np.zeros(3), np.eye(3), np.zeros(3), np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"mvn_tril: batch shapes do not broadcast"):
        jaxkl.analytic.mvn_tril(np.zeros((2, 3)), np.eye(3), np.zeros((5, 3)), np.eye(3))
    with pytest.raises(ValueError, match=r"jaxkl.analytic.lognormal: shapes do not broadcast"):
        jaxkl.analytic.lognormal(np.zeros(3), 1.0, np.zeros(4), 1.0)


def test_independent_kl_requires_matching_structure():
    base = jaxkl.Normal(jnp.zeros((2, 3)), 1.0)
    with pytest.raises(ValueError, match="reinterpreted_batch_ndims must be equal; got 1 and 2"):
        jaxkl.kl(jaxkl.Independent(base, 1), jaxkl.Independent(base, 2))
    other = jaxkl.Normal(jnp.zeros((2, 4)), 1.0)
    with pytest.raises(ValueError, match=r"event shapes must be equal; got \(3,\) and \(4,\)"):
        jaxkl.kl(jaxkl.Independent(base, 1), jaxkl.Independent(other, 1))


@dataclasses.dataclass(frozen=True, eq=False)
class _NoKLFamily(jaxkl.Distribution):
    loc: jax.Array
    parameters = {"loc": Parameter()}


def test_independent_kl_propagates_missing_base_pair():
    a = jaxkl.Independent(_NoKLFamily(jnp.zeros(3)), 1)
    with pytest.raises(jaxkl.NoAnalyticKL, match="_NoKLFamily"):
        jaxkl.kl(a, a)
