"""Gaussian KL precision: float32 extremes against high-precision references; float64 grads.

References never use jaxkl: the univariate ones are evaluated with ``decimal`` at 40
significant digits from the exact float32 inputs, the multivariate ones with numpy/scipy in
float64 from the same float32 inputs, so only the kernel's own rounding is measured.
"""

import decimal

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import solve_triangular

import jaxkl
from jaxkl.analytic._gaussian_scale import gaussian_scale_kl_fusible

_CTX = decimal.Context(prec=40)


def _dec(x) -> decimal.Decimal:
    return decimal.Decimal(float(x))  # exact: every binary float is a finite decimal


def _normal_kl_decimal(loc_a, scale_a, loc_b, scale_b) -> float:
    """½((μa − μb)/σb)² + ½(r² − 1) − ln r, r = σa/σb, in 40-digit decimal arithmetic."""
    with decimal.localcontext(_CTX):
        r = _dec(scale_a) / _dec(scale_b)
        z = (_dec(loc_a) - _dec(loc_b)) / _dec(scale_b)
        half = decimal.Decimal("0.5")
        return float(half * z * z + half * (r * r - 1) - r.ln())


RATIOS = [1e-6, 1e-4, 1e-2, 0.5, 1 - 1e-4, 1 - 1e-6, 1 + 1e-6, 1 + 1e-4, 2.0, 1e2, 1e4, 1e6]


@pytest.mark.parametrize("loc_diff", [0.0, 1e-3, 2.5])
def test_normal_float32_scale_ratios_match_high_precision(loc_diff):
    scale_b = np.array([0.3, 1.0, 7.0], np.float32)
    ratio = np.array(RATIOS, np.float32)
    sa = (ratio[:, None] * scale_b[None, :]).astype(np.float32)
    sb = np.broadcast_to(scale_b, sa.shape).astype(np.float32)
    la = np.full(sa.shape, 0.25 + loc_diff, np.float32)
    lb = np.full(sa.shape, 0.25, np.float32)
    got = np.asarray(jaxkl.analytic.normal(la, sa, lb, sb))
    assert got.dtype == np.float32
    ref = np.vectorize(_normal_kl_decimal)(la, sa, lb, sb)
    assert np.all(ref > 0)
    rel = np.abs(got - ref) / ref
    assert rel.max() < 1e-5, (rel.max(), np.unravel_index(rel.argmax(), rel.shape))


def test_normal_float64_scale_ratios_match_high_precision():
    # float64 uses its own blend constants (more series terms, a steeper weight); a float32
    # constant set would leave ~1e-7 relative error here.
    scale_b = np.array([0.3, 1.0, 7.0])
    ratio = np.array([*RATIOS, 1 - 1e-12, 1 + 1e-12, 0.9, 1.2])
    sa = ratio[:, None] * scale_b[None, :]
    sb = np.broadcast_to(scale_b, sa.shape)
    la, lb = np.full(sa.shape, 0.25), np.full(sa.shape, 0.25)
    with jax.enable_x64(True):
        got = np.asarray(jaxkl.analytic.normal(la, sa, lb, sb))
        assert got.dtype == np.float64
    ref = np.vectorize(_normal_kl_decimal)(la, sa, lb, sb)
    rel = np.abs(got - ref) / ref
    assert rel.max() < 1e-13, (rel.max(), np.unravel_index(rel.argmax(), rel.shape))


def test_normal_scale_term_dense_ratio_scan_float32():
    # A dense scan through the blend region of gaussian_scale_kl (|s| ≈ c, where the series
    # and log r − 2s trade places) and the far tails, not only the RATIOS above.
    rng = np.random.default_rng(7)
    log_r = np.concatenate([np.linspace(-13.8, 13.8, 601), np.linspace(-1.0, 1.0, 401)])
    sb = np.exp(rng.uniform(-4, 4, log_r.size)).astype(np.float32)
    sa = (sb * np.exp(log_r)).astype(np.float32)
    keep = sa != sb
    sa, sb = sa[keep], sb[keep]
    zeros = np.zeros_like(sa)
    got = np.asarray(jaxkl.analytic.normal(zeros, sa, zeros, sb))
    ref = np.array([_normal_kl_decimal(0.0, a, 0.0, b) for a, b in zip(sa, sb, strict=True)])
    rel = np.abs(got - ref) / ref
    assert rel.max() < 2e-6, (rel.max(), sa[rel.argmax()] / sb[rel.argmax()])
    # The MVNTriL kernel's form (t through the reciprocal of b) on the same scan.
    fusible = np.asarray(gaussian_scale_kl_fusible(jnp.asarray(sa), jnp.asarray(sb)))
    rel = np.abs(fusible - ref) / ref
    assert rel.max() < 2e-6, (rel.max(), sa[rel.argmax()] / sb[rel.argmax()])


def test_lognormal_and_mvn_diag_float32_near_equal_scales():
    sb = np.array([0.5, 1.0, 3.0], np.float32)
    sa = (sb * np.float32(1 + 1e-4)).astype(np.float32)
    la = np.array([0.1, -0.2, 0.3], np.float32)
    lb = (la + np.float32(1e-4)).astype(np.float32)
    per_dim = np.array([_normal_kl_decimal(*p) for p in zip(la, sa, lb, sb, strict=True)])
    np.testing.assert_allclose(jaxkl.analytic.lognormal(la, sa, lb, sb), per_dim, rtol=1e-5)
    with decimal.localcontext(_CTX):
        total = float(sum(decimal.Decimal(v) for v in per_dim))
    np.testing.assert_allclose(float(jaxkl.analytic.mvn_diag(la, sa, lb, sb)), total, rtol=1e-5)


def test_residual_normal_float32_beats_textbook_form():
    # NVAE regime: the posterior barely moves off the prior (Δσ → 1, Δμ → 0).
    dm, ds, sp = np.float32(1e-4), np.float32(1 + 1e-3), np.float32(1.0)
    ref = _normal_kl_decimal(dm, sp * ds, 0.0, sp)
    got = float(jaxkl.analytic.residual_normal(dm, ds, sp))
    assert abs(got - ref) / ref < 1e-6
    f32 = jnp.float32
    textbook = float(
        0.5 * (f32(dm) ** 2 / f32(sp) ** 2 + f32(ds) ** 2) - f32(0.5) - jnp.log(f32(ds))
    )
    # ½Δσ² − ½ cancels to ~1e-3 while its float32 rounding is ~3e-8: a few % relative.
    assert abs(textbook - ref) / ref > 1e-3


def _cov_with_condition(rng, d, cond):
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (q * np.logspace(0.0, -np.log10(cond), d)) @ q.T


def _tril_kl_float64(loc_a, La, loc_b, Lb):
    """Float64 reference from explicit covariances: solves and slogdet, no jaxkl."""
    Sa, Sb = La @ La.T, Lb @ Lb.T
    diff = loc_b - loc_a
    return 0.5 * (
        np.trace(np.linalg.solve(Sb, Sa))
        + diff @ np.linalg.solve(Sb, diff)
        - loc_a.shape[-1]
        + np.linalg.slogdet(Sb)[1]
        - np.linalg.slogdet(Sa)[1]
    )


def _tril_kl_float64_stable(loc_a, La, loc_b, Lb):
    """Float64 reference for nearby pairs, where the explicit form above itself cancels."""
    M = solve_triangular(Lb, La, lower=True)
    y = solve_triangular(Lb, loc_b - loc_a, lower=True)
    t = np.log(np.diag(La) / np.diag(Lb))
    return 0.5 * np.sum(np.tril(M, -1) ** 2) + np.sum(0.5 * np.expm1(2 * t) - t) + 0.5 * y @ y


def _ill_conditioned_pair(seed=0, d=64, cond=1e4):
    rng = np.random.default_rng(seed)
    Sa, Sb = _cov_with_condition(rng, d, cond), _cov_with_condition(rng, d, cond)
    La = np.linalg.cholesky(Sa).astype(np.float32)
    Lb = np.linalg.cholesky(Sb).astype(np.float32)
    mu_a, mu_b = rng.normal(size=(2, d)).astype(np.float32)
    return mu_a, La, mu_b, Lb


def test_mvn_tril_d64_condition_1e4_float32_matches_float64():
    mu_a, La, mu_b, Lb = _ill_conditioned_pair()
    assert np.linalg.cond(La.astype(np.float64) @ La.T) == pytest.approx(1e4, rel=1e-2)
    f64 = [np.asarray(v, np.float64) for v in (mu_a, La, mu_b, Lb)]
    for args, ref_args in (((mu_a, La, mu_b, Lb), f64), ((mu_b, Lb, mu_a, La), f64[2:] + f64[:2])):
        got = jaxkl.analytic.mvn_tril(*args)
        assert got.dtype == jnp.float32
        np.testing.assert_allclose(float(got), _tril_kl_float64(*ref_args), rtol=1e-3)
        via_dists = jaxkl.kl(
            jaxkl.MultivariateNormalTriL(args[0], args[1]),
            jaxkl.MultivariateNormalTriL(args[2], args[3]),
        )
        np.testing.assert_allclose(float(via_dists), _tril_kl_float64(*ref_args), rtol=1e-3)


def test_mvn_tril_d64_nearby_pair_float32_keeps_relative_precision():
    # KL ≈ 5e-5: the trace and log-det terms cancel to 1e-5 of their size, so only a form
    # without that cancellation can hold 1e-3 relative in float32.
    mu, La, _, _ = _ill_conditioned_pair(seed=1)
    rng = np.random.default_rng(2)
    Lb = (La * (1 + 1e-4 * np.tril(rng.normal(size=La.shape)))).astype(np.float32)
    ref = _tril_kl_float64_stable(
        mu.astype(np.float64), La.astype(np.float64), mu, Lb.astype(np.float64)
    )
    got = float(jaxkl.analytic.mvn_tril(mu, La, mu, Lb))
    assert 1e-5 < ref < 1e-4
    np.testing.assert_allclose(got, ref, rtol=1e-3)


def test_mvn_tril_float64_mode_matches_numpy_tightly():
    mu_a, La, mu_b, Lb = (
        np.asarray(v, np.float64) for v in _ill_conditioned_pair(seed=3, d=16, cond=1e3)
    )
    with jax.enable_x64(True):
        got = jaxkl.kl(
            jaxkl.MultivariateNormalTriL(mu_a, La), jaxkl.MultivariateNormalTriL(mu_b, Lb)
        )
        assert got.dtype == jnp.float64
    np.testing.assert_allclose(float(got), _tril_kl_float64(mu_a, La, mu_b, Lb), rtol=1e-10)


# ------------------------------------------------------------------ gradients (float64)


def _tril_params(rng, d):
    L = np.tril(rng.normal(scale=0.3, size=(d, d)), -1) + np.diag(
        np.exp(rng.normal(scale=0.3, size=d))
    )
    return rng.normal(size=d), L


def _central_differences(f, params, h=1e-6):
    """∂f/∂θ for every entry of every array in ``params`` (a dict), in float64 numpy."""
    grads = {}
    for name, value in params.items():
        g = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            up, down = dict(params), dict(params)
            up[name] = value.copy()
            down[name] = value.copy()
            up[name][idx] += h
            down[name][idx] -= h
            g[idx] = (float(f(up)) - float(f(down))) / (2 * h)
        grads[name] = g
    return grads


def _gradient_cases():
    rng = np.random.default_rng(4)
    d = 3
    la, La = _tril_params(rng, d)
    lb, Lb = _tril_params(rng, d)
    sa, sb = np.exp(rng.normal(scale=0.3, size=(2, d)))
    N, LN = jaxkl.Normal, jaxkl.LogNormal
    Diag, TriL, Ind = jaxkl.MultivariateNormalDiag, jaxkl.MultivariateNormalTriL, jaxkl.Independent
    return {
        "normal": (
            lambda p: jaxkl.kl(N(p["la"], p["sa"]), N(p["lb"], p["sb"])).sum(),
            dict(la=la, sa=sa, lb=lb, sb=sb),
        ),
        "lognormal": (
            lambda p: jaxkl.kl(LN(p["la"], p["sa"]), LN(p["lb"], p["sb"])).sum(),
            dict(la=la, sa=sa, lb=lb, sb=sb),
        ),
        "residual_normal": (
            lambda p: jaxkl.analytic.residual_normal(p["dm"], p["ds"], p["sp"]).sum(),
            dict(dm=la, ds=sa, sp=sb),
        ),
        "diag-diag": (
            lambda p: jaxkl.kl(Diag(p["la"], p["sa"]), Diag(p["lb"], p["sb"])),
            dict(la=la, sa=sa, lb=lb, sb=sb),
        ),
        "tril-tril": (
            lambda p: jaxkl.kl(TriL(p["la"], p["La"]), TriL(p["lb"], p["Lb"])),
            dict(la=la, La=La, lb=lb, Lb=Lb),
        ),
        "diag-tril": (
            lambda p: jaxkl.kl(Diag(p["la"], p["sa"]), TriL(p["lb"], p["Lb"])),
            dict(la=la, sa=sa, lb=lb, Lb=Lb),
        ),
        "tril-diag": (
            lambda p: jaxkl.kl(TriL(p["la"], p["La"]), Diag(p["lb"], p["sb"])),
            dict(la=la, La=La, lb=lb, sb=sb),
        ),
        "independent": (
            lambda p: jaxkl.kl(Ind(N(p["la"], p["sa"]), 1), Ind(N(p["lb"], p["sb"]), 1)),
            dict(la=la, sa=sa, lb=lb, sb=sb),
        ),
    }


@pytest.mark.parametrize("name", list(_gradient_cases()))
def test_grad_matches_central_differences_in_float64(name):
    f, params = _gradient_cases()[name]
    with jax.enable_x64(True):
        jf = jax.jit(f)
        grads = jax.grad(jf)({k: jnp.asarray(v) for k, v in params.items()})
        fd = _central_differences(jf, params)
    for k, v in params.items():
        g = np.asarray(grads[k])
        if v.ndim == 2:
            # Only the lower triangle is a parameter; the strictly upper part must be 0.
            assert np.all(np.triu(g, 1) == 0), name
            g, ref = np.tril(g), np.tril(fd[k])
        else:
            ref = fd[k]
        np.testing.assert_allclose(g, ref, rtol=1e-6, atol=1e-8, err_msg=f"{name}: d/d{k}")


def test_grad_is_finite_and_zero_at_identical_arguments():
    rng = np.random.default_rng(5)
    loc, L = _tril_params(rng, 3)
    TriL, Diag = jaxkl.MultivariateNormalTriL, jaxkl.MultivariateNormalDiag
    g = jax.grad(lambda p: jaxkl.kl(TriL(p[0], p[1]), TriL(loc, L)))(
        (jnp.asarray(loc), jnp.asarray(L))
    )
    for leaf in g:
        assert np.all(np.isfinite(np.asarray(leaf)))
        np.testing.assert_allclose(leaf, 0.0, atol=1e-5)
    s = np.exp(rng.normal(size=3))
    gd = jax.grad(lambda s_: jaxkl.kl(Diag(loc, s_), Diag(loc, s)))(jnp.asarray(s, jnp.float32))
    assert np.all(np.asarray(gd) == 0.0)


def _residual_kl_50_digits(dm: float, t: float, log_sp: float) -> float:
    """½Δμ²e^{−2ℓ_p} + ½(e^{2t} − 1 − 2t) in 50-digit decimal arithmetic (the oracle)."""
    with decimal.localcontext() as ctx:
        ctx.prec = 50
        d = decimal.Decimal
        dm, t, lp = d(dm), d(t), d(log_sp)
        value = d("0.5") * dm * dm * (-2 * lp).exp() + d("0.5") * ((2 * t).exp() - 1 - 2 * t)
        return float(value)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_residual_normal_from_log_scales_float32_against_50_digits(sign):
    # log Δσ from 1e-8 to 10 (and its negative), Δμ from 0 to 3, log σ_p in −2 … 2.
    ts = sign * np.logspace(-8, 1, 37)
    worst = 0.0
    for dm in (0.0, 1e-4, 0.3, 3.0):
        for log_sp in (-2.0, 0.0, 2.0):
            x32 = np.float32
            got = np.asarray(
                jaxkl.analytic.residual_normal(
                    x32(dm), log_delta_scale=ts.astype(np.float32), log_scale_p=x32(log_sp)
                ),
                np.float64,
            )
            # The oracle takes the float32-rounded inputs: the kernel's error, not the rounding's.
            exact = np.array(
                [
                    _residual_kl_50_digits(float(x32(dm)), float(x32(t)), float(x32(log_sp)))
                    for t in ts
                ]
            )
            worst = max(worst, float(np.max(np.abs(got - exact) / exact)))
    assert worst <= 1e-5, worst


def test_residual_normal_log_form_beats_exponentiating_first():
    t, dm = np.float32(1e-6), np.float32(0.0)
    exact = _residual_kl_50_digits(float(dm), float(t), 0.0)
    via_log = float(jaxkl.analytic.residual_normal(dm, log_delta_scale=t, log_scale_p=0.0))
    via_exp = float(jaxkl.analytic.residual_normal(dm, jnp.exp(t), 1.0))
    assert abs(via_log - exact) / exact < 1e-6
    assert abs(via_exp - exact) / exact > 1e-2  # exp(t) rounds: the 9 % of the issue


def test_residual_normal_needs_exactly_one_of_each_scale():
    with pytest.raises(ValueError, match="exactly one of delta_scale and log_delta_scale"):
        jaxkl.analytic.residual_normal(0.0, 1.0, 1.0, log_delta_scale=0.0)
    with pytest.raises(ValueError, match="exactly one of scale_p and log_scale_p"):
        jaxkl.analytic.residual_normal(0.0, 1.0)
