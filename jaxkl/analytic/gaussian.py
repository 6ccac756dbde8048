"""Closed forms for the Gaussian family: Normal, residual (NVAE) Normal, LogNormal, MVNs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxkl._shapes import as_float, broadcast_named, widen_half
from jaxkl.analytic._gaussian_scale import (
    gaussian_scale_kl,
    gaussian_scale_kl_from_log_ratio,
    gaussian_scale_kl_fusible,
)
from jaxkl.analytic._kernel import event_size, kernel
from jaxkl.special import div, solve_lower

__all__ = ["lognormal", "mvn_diag", "mvn_tril", "normal", "residual_normal"]


def _one_form(where: str, **pairs) -> dict[str, object]:
    """``{name or log_name: value}`` from ``name=(value, log_value)``: exactly one each."""
    given = {}
    for name, (value, log_value) in pairs.items():
        if (value is None) == (log_value is None):
            raise ValueError(f"{where}: pass exactly one of {name} and log_{name}")
        given[name if log_value is None else f"log_{name}"] = (
            value if log_value is None else log_value
        )
    return given


def _prepared(where: str, **arrays):
    """``({name: array}, dtype)``: one float dtype, broadcast, half precision widened."""
    names = list(arrays)
    values = as_float(*arrays.values(), names=names, where=where)
    values = values if isinstance(values, tuple) else (values,)
    values = broadcast_named(where, **dict(zip(names, values, strict=True)))
    values, dtype = widen_half(*values)
    return dict(zip(names, values, strict=True)), dtype


def _location_part(delta_loc, scale, log_scale):
    """½(Δμ/σ)², from log σ when given (Δμ·e^{−log σ} stays finite where σ underflows)."""
    if log_scale is None:
        return 0.5 * jnp.square(div(delta_loc, scale))
    # e^{−log σ} overflows for log σ < −log(finfo.max) (−88.7 in float32); where Δμ = 0
    # the product would be 0·inf = NaN for a true z of 0. The exponent is replaced before
    # exp (not after), so that no inf reaches the gradient either. For Δμ ≠ 0 such a σ is
    # below the dtype's normal range, and z is +inf even where z² would still fit.
    overflow = (delta_loc == 0) & (log_scale < -np.log(jnp.finfo(log_scale.dtype).max))
    z = delta_loc * jnp.exp(-jnp.where(overflow, 0.0, log_scale))
    return 0.5 * jnp.square(z)


def _scale_part(scale_a, scale_b, log_scale_a, log_scale_b):
    """½(r² − 1) − log r, r = σ_a/σ_b, each σ given as itself or as its log (the other None).

    From t = log σ_a − log σ_b when either comes as a log (the log of the other taken
    when it came as σ: log 1 = 0 exactly, the common unit prior), else from the scales.
    Every Gaussian kernel (normal, residual, lognormal, diagonal) goes through here.
    """
    if log_scale_a is None and log_scale_b is None:
        return gaussian_scale_kl(scale_a, scale_b)
    log_a = jnp.log(scale_a) if log_scale_a is None else log_scale_a
    log_b = jnp.log(scale_b) if log_scale_b is None else log_scale_b
    return gaussian_scale_kl_from_log_ratio(log_a - log_b)


def _gaussian_kl(loc_a, loc_b, scale_a=None, scale_b=None, log_scale_a=None, log_scale_b=None):
    """½((μ_a − μ_b)/σ_b)² + ½(r² − 1) − log r, elementwise."""
    return _location_part(loc_a - loc_b, scale_b, log_scale_b) + _scale_part(
        scale_a, scale_b, log_scale_a, log_scale_b
    )


def normal(loc_a, scale_a=None, loc_b=None, scale_b=None, *, log_scale_a=None, log_scale_b=None):
    """KL(N(loc_a, scale_a²) ‖ N(loc_b, scale_b²)).

    KL = ½((μ_a − μ_b)/σ_b)² + ½(r² − 1) − log r,  r = σ_a/σ_b,
    the textbook ½(σ_a²/σ_b² + (μ_a−μ_b)²/σ_b² − 1) + log(σ_b/σ_a) with the scale part
    evaluated by :func:`jaxkl.analytic._gaussian_scale.gaussian_scale_kl`, which keeps full
    precision in float32 for scale ratios from 1e-6 to 1e6 and near 1 (as written, the
    textbook form loses every digit as σ_a → σ_b).

    Each scale may be given as its log instead (``log_scale_a``, ``log_scale_b``). Then
    the scale part is ½(e^{2t} − 1 − 2t) with t = log σ_a − log σ_b formed by one
    subtraction (:func:`jaxkl.analytic._gaussian_scale.gaussian_scale_kl_from_log_ratio`), which
    keeps float32's relative precision for t from 1e-8 to 10 where exponentiating first
    would round the ratio to 1 (tests/analytic/test_log_scale.py, against 50 digits).

    Args:
      loc_a, loc_b: means, ``[...]``.
      scale_a, scale_b: standard deviations > 0, ``[...]``; or ``log_scale_a``,
        ``log_scale_b`` (exactly one of each pair). All broadcast together.

    Returns:
      ``[...]``, the broadcast shape.

    Raises:
      ValueError: both or neither of a scale and its log are given.

    Example:
      >>> float(normal(0.0, 1.0, 1.0, 1.0))
      0.5
      >>> kl = float(normal(0.0, loc_b=0.0, log_scale_a=1e-6, log_scale_b=0.0))
      >>> abs(kl - 1e-12) < 1e-17  # t² + (2/3)t³ + …
      True
    """
    return _univariate_gaussian(
        "jaxkl.analytic.normal", loc_a, scale_a, loc_b, scale_b, log_scale_a, log_scale_b
    )


def _univariate_gaussian(where, loc_a, scale_a, loc_b, scale_b, log_scale_a, log_scale_b):
    """The Gaussian KL of :func:`normal`, named ``where`` in errors (:func:`lognormal` too)."""
    if loc_b is None:
        raise TypeError(f"{where}: loc_b is required")
    scales = _one_form(where, scale_a=(scale_a, log_scale_a), scale_b=(scale_b, log_scale_b))
    v, dtype = _prepared(where, loc_a=loc_a, loc_b=loc_b, **scales)
    return _gaussian_kl(**v).astype(dtype)


def residual_normal(
    delta_loc, delta_scale=None, scale_p=None, *, log_delta_scale=None, log_scale_p=None
):
    """NVAE's residual-normal KL: KL(N(μ_p + Δμ, (σ_p·Δσ)²) ‖ N(μ_p, σ_p²)).

    KL = ½(Δμ²/σ_p² + Δσ²) − ½ − log Δσ — the ordinary Gaussian KL with the posterior
    written relative to the prior (Vahdat & Kautz 2020, eq. 2). Its scale part
    ½(Δσ² − 1) − log Δσ is evaluated by :func:`jaxkl.analytic._gaussian_scale.gaussian_scale_kl`,
    which stays accurate in float32 as Δσ → 1 and Δμ → 0, where the textbook form cancels
    catastrophically.

    Encoders output log-scales. Pass them as ``log_delta_scale`` (t = log Δσ) and
    ``log_scale_p`` instead of exponentiating first: the scale part is then
    ½(e^{2t} − 1 − 2t) = ½·expm1_minus_x(2t), formed from t itself, whereas exp(t)
    rounds to within one float32 ulp of 1 for |t| ≲ 1e-7 and the KL with it
    (``residual_normal(dm, jnp.exp(t), ...)`` is 9 % off at t = 1e-6). This is the
    code path of :func:`normal` with log-scales (one implementation for both).
    tests/analytic/test_gaussian_float64.py checks ≤ 1e-5 relative error in float32
    against 50-digit arithmetic for t from 1e-8 to 10.

    Args:
      delta_loc: Δμ, ``[...]``.
      delta_scale: Δσ > 0, ``[...]``; or ``log_delta_scale`` = log Δσ (exactly one).
      scale_p: σ_p > 0, ``[...]``; or ``log_scale_p`` = log σ_p (exactly one).

    Returns:
      ``[...]``, the broadcast shape.

    Raises:
      ValueError: both or neither of a scale and its log are given.

    Example:
      >>> round(float(residual_normal(1.0, 1.0, 1.0)), 6)
      0.5
      >>> t = 1e-6  # log Δσ; exp(t) would round to 1 + 8 ulp in float32
      >>> kl = float(residual_normal(0.0, log_delta_scale=t, log_scale_p=0.0))
      >>> abs(kl - (t**2 + 2 * t**3 / 3)) < 1e-6 * kl  # ½(e^{2t} − 1 − 2t) by series
      True
    """
    where = "jaxkl.analytic.residual_normal"
    given = _one_form(
        where, delta_scale=(delta_scale, log_delta_scale), scale_p=(scale_p, log_scale_p)
    )
    v, dtype = _prepared(where, delta_loc=delta_loc, **given)
    # The posterior's scale relative to the prior's: σ_a/σ_b = Δσ/1 (log 1 = 0 exactly).
    one = jnp.ones_like(v["delta_loc"])
    kl = _location_part(v["delta_loc"], v.get("scale_p"), v.get("log_scale_p")) + _scale_part(
        v.get("delta_scale", one), one, v.get("log_delta_scale"), None
    )
    return kl.astype(dtype)


def lognormal(loc_a, scale_a=None, loc_b=None, scale_b=None, *, log_scale_a=None, log_scale_b=None):
    """KL(LogNormal(loc_a, scale_a) ‖ LogNormal(loc_b, scale_b)).

    KL is invariant under the bijection x ↦ exp(x) applied to both arguments, so this is
    the normal KL of the underlying normals: ½((μ_a − μ_b)/σ_b)² + ½(r² − 1) − log r with
    r = σ_a/σ_b (see :func:`normal` for how it is evaluated, also from log-scales).

    Args:
      loc_a, loc_b: means of the underlying normals, ``[...]``.
      scale_a, scale_b: their standard deviations > 0, ``[...]``; or ``log_scale_a``,
        ``log_scale_b`` (exactly one of each pair). All broadcast together.

    Returns:
      ``[...]``, the broadcast shape.

    Example:
      >>> float(lognormal(0.0, 1.0, 1.0, 1.0))
      0.5
    """
    return _univariate_gaussian(
        "jaxkl.analytic.lognormal", loc_a, scale_a, loc_b, scale_b, log_scale_a, log_scale_b
    )


def mvn_diag(
    loc_a,
    scale_diag_a=None,
    loc_b=None,
    scale_diag_b=None,
    *,
    log_scale_diag_a=None,
    log_scale_diag_b=None,
):
    """KL(N(loc_a, diag(scale_diag_a²)) ‖ N(loc_b, diag(scale_diag_b²))).

    KL = Σᵢ [½((μ_aᵢ − μ_bᵢ)/s_bᵢ)² + ½(rᵢ² − 1) − log rᵢ],  rᵢ = s_aᵢ/s_bᵢ:
    the sum over coordinates of the univariate KL (see :func:`normal`, also for the
    log-scale form), each term keeping full float32 precision when s_aᵢ ≈ s_bᵢ as well as
    for ratios far from 1.

    Args:
      loc_a, loc_b: means, ``[..., d]``.
      scale_diag_a, scale_diag_b: ``[..., d]``, > 0; or ``log_scale_diag_a``,
        ``log_scale_diag_b`` (exactly one of each pair). One d for all; batch dimensions
        broadcast together.

    Returns:
      ``[...]``, the broadcast batch shape.

    Raises:
      ValueError: the arguments' event sizes d differ (the message names each d), or both
        or neither of a scale and its log are given.

    Example:
      >>> import jax.numpy as jnp
      >>> float(mvn_diag(jnp.zeros(3), jnp.ones(3), jnp.ones(3), jnp.ones(3)))
      1.5
    """
    where = "jaxkl.analytic.mvn_diag"
    if loc_b is None:
        raise TypeError(f"{where}: loc_b is required")
    scales = _one_form(
        where,
        scale_diag_a=(scale_diag_a, log_scale_diag_a),
        scale_diag_b=(scale_diag_b, log_scale_diag_b),
    )
    arrays = dict(loc_a=loc_a, loc_b=loc_b, **scales)
    names = list(arrays)
    converted = as_float(*arrays.values(), names=names, where=where)
    event_size(where, **{n: (x, 1) for n, x in zip(names, converted, strict=True)})
    v, dtype = _prepared(where, **dict(zip(names, converted, strict=True)))
    return _mvn_diag_core(
        v["loc_a"],
        v["loc_b"],
        v.get("scale_diag_a"),
        v.get("scale_diag_b"),
        v.get("log_scale_diag_a"),
        v.get("log_scale_diag_b"),
    ).astype(dtype)


# The arithmetic of each MVN kernel is one jitted function: called eagerly it compiles once
# per shape instead of once per primitive, and inside a caller's jit it is simply inlined.
@jax.jit
def _mvn_diag_core(loc_a, loc_b, scale_a, scale_b, log_scale_a, log_scale_b):
    return jnp.sum(_gaussian_kl(loc_a, loc_b, scale_a, scale_b, log_scale_a, log_scale_b), -1)


def _whitened_kl(m, diag_a, diag_b, y):
    """KL from the whitened quantities M = L_b⁻¹L_a and y = L_b⁻¹(μ_b − μ_a).

    Only the strictly lower triangle of ``m`` is read, so M − I may be passed instead.

    With M lower triangular, Mᵢᵢ = rᵢ = L_aᵢᵢ/L_bᵢᵢ and log det M = Σ log rᵢ:
    ½(‖M‖_F² − d) − log det M = ½ Σ_{i>j} Mᵢⱼ² + Σᵢ (½(rᵢ² − 1) − log rᵢ). Every term is
    ≥ 0 and none cancels (the last by :func:`jaxkl.analytic._gaussian_scale.gaussian_scale_kl`),
    unlike ½(‖M‖_F² − d) − log det M evaluated as written.
    """
    off = jnp.tril(m, -1)
    scale_part = jnp.sum(gaussian_scale_kl(diag_a, diag_b), -1)
    return 0.5 * (jnp.sum(jnp.square(off), (-2, -1)) + jnp.sum(jnp.square(y), -1)) + scale_part


@kernel(event_ranks=(1, 2, 1, 2))
def mvn_tril(loc_a, scale_tril_a, loc_b, scale_tril_b):
    """KL(N(loc_a, L_a L_aᵀ) ‖ N(loc_b, L_b L_bᵀ)) from lower Cholesky factors L.

    KL = ½[‖L_b⁻¹L_a‖_F² + ‖L_b⁻¹(μ_b − μ_a)‖² − d] + Σᵢ log L_bᵢᵢ − Σᵢ log L_aᵢᵢ.
    One triangular solve gives both L_b⁻¹(L_a − L_b) = L_b⁻¹L_a − I and L_b⁻¹(μ_b − μ_a) (no
    inverse is formed; L_a − L_b is exact where the factors are close, so nearby pairs keep
    their relative precision);
    the trace and log-determinant terms are then combined without cancellation as
    ½ Σ_{i>j} (L_b⁻¹L_a)ᵢⱼ² + Σᵢ (½(rᵢ² − 1) − log rᵢ), rᵢ = L_aᵢᵢ/L_bᵢᵢ, which is
    exactly zero for identical arguments and never negative.

    Args:
      loc_a, loc_b: means, ``[..., d]``.
      scale_tril_a, scale_tril_b: lower triangular factors with positive diagonal,
        ``[..., d, d]`` (only the lower triangle is read). Batch dimensions of all four
        arguments broadcast together.

    Returns:
      ``[...]``, the broadcast batch shape. Its gradient in the factors comes from the
      reverse pass of the triangular solve, whose intermediates (L_b⁻ᵀ applied to the
      whitened residuals, up to (|Δμ|/σ)²/σ times L_b's condition number) can leave the
      float range before the gradient itself does: those entries may then be ±inf or NaN,
      while the KL and its gradient in the means stay right
      (``tests/analytic/test_extreme_scales.py``).

    Raises:
      ValueError: the event sizes d differ (the message names each d) or the batch
        shapes do not broadcast.

    Example:
      >>> import jax.numpy as jnp
      >>> float(mvn_tril(jnp.zeros(2), jnp.eye(2), jnp.ones(2), jnp.eye(2)))
      1.0

    References:
      C. E. Rasmussen and C. K. I. Williams, *Gaussian Processes for Machine Learning*
      (MIT Press, 2006), appendix A.5 (KL between Gaussians).
    """
    return _mvn_tril_core(loc_a, scale_tril_a, loc_b, scale_tril_b)


# Event sizes up to this are solved by the unrolled forward substitution
# (_tril_kl_unrolled); larger ones by one triangular solve (jaxkl.special.solve_lower).
_UNROLL_TRIL_D = 16


@jax.jit
def _mvn_tril_core(loc_a, scale_tril_a, loc_b, scale_tril_b):
    d = loc_a.shape[-1]
    if d <= _UNROLL_TRIL_D:
        return _tril_kl_small(loc_a, scale_tril_a, loc_b, scale_tril_b)
    return _tril_kl_solve(loc_a, scale_tril_a, loc_b, scale_tril_b)


@jax.custom_jvp
def _tril_kl_small(loc_a, scale_tril_a, loc_b, scale_tril_b):
    """Values from :func:`_tril_kl_unrolled`, derivatives from :func:`_tril_kl_solve`."""
    return _tril_kl_unrolled(loc_a, scale_tril_a, loc_b, scale_tril_b)


@_tril_kl_small.defjvp
def _tril_kl_small_jvp(primals, tangents):
    # Differentiating the unrolled substitution would trace ~d³ operations per derivative
    # (10 s to compile a gradient at d = 8, minutes at d = 16); the solve path's derivative
    # is the same function's and compiles in well under a second.
    _, tangent = jax.jvp(_tril_kl_solve, primals, tangents)
    return _tril_kl_unrolled(*primals), tangent


def _tril_kl_solve(loc_a, scale_tril_a, loc_b, scale_tril_b):
    """KL of two MVNTriLs through one triangular solve of the whole batch (any d)."""
    d = loc_a.shape[-1]
    # Both right-hand sides in one solve: [L_a − L_b | μ_b − μ_a]. L_b⁻¹(L_a − L_b) = M − I has
    # the off-diagonal of M = L_b⁻¹L_a, formed from L_a − L_b, which is exact where the
    # factors are close: solving with L_a itself left rounding errors of size eps·|L| in
    # entries of size |L_a − L_b| (up to 2e-2 relative error in float32 for nearby pairs).
    # Masking makes the upper triangles unread, so their gradients are exactly zero.
    delta = jnp.tril(scale_tril_a) - jnp.tril(scale_tril_b)
    rhs = jnp.concatenate([delta, (loc_b - loc_a)[..., None]], axis=-1)
    sol = solve_lower(scale_tril_b, rhs)
    diag_a = jnp.diagonal(scale_tril_a, axis1=-2, axis2=-1)
    diag_b = jnp.diagonal(scale_tril_b, axis1=-2, axis2=-1)
    return _whitened_kl(sol[..., :d], diag_a, diag_b, sol[..., d])


def _tril_kl_unrolled(loc_a, scale_tril_a, loc_b, scale_tril_b):
    """:func:`_tril_kl_solve` as forward substitution unrolled over d, vectorised over the batch.

    The same quantities, in the same order of operations: column c of M − I = L_b⁻¹(L_a − L_b)
    and y = L_b⁻¹(μ_b − μ_a) by xᵢ = (rᵢ − Σ_{c≤j<i} L_bᵢⱼ xⱼ)·(1/L_bᵢᵢ) (the entries
    above row c of column c are exactly 0 and skipped, as are their zero products), then
    ½(Σ_{i>c} xᵢ² + ‖y‖²) + Σᵢ (½(rᵢ² − 1) − log rᵢ). Division is by a multiplication with
    the reciprocal (one more rounding: xᵢ within ~1 ulp of the solve's) and the scale part
    is :func:`jaxkl.analytic._gaussian_scale.gaussian_scale_kl_fusible`, because XLA:CPU
    fuses all of this into one loop over the batch only without multi-use divisions
    (derivatives come from the solve path, :func:`_tril_kl_small`). One batch member's
    work is ~d³/3 scalar operations in registers: 7–30× faster than the LAPACK trsm that
    the solve path used then, for d ≤ 16 on the 2-core CPU (``benchmarks.throughput``,
    analytic section); compile time grows as d³ (≈ 2 s at d = 16, hence the limit).
    """
    d = loc_a.shape[-1]

    def lb(i, j):
        return scale_tril_b[..., i, j]

    one = jnp.ones((), scale_tril_b.dtype)
    inv = [div(one, lb(i, i)) for i in range(d)]
    total = 0.0
    for c in range(d):  # column c of M − I
        x = {c: (scale_tril_a[..., c, c] - lb(c, c)) * inv[c]}
        for i in range(c + 1, d):
            acc = scale_tril_a[..., i, c] - lb(i, c)
            for j in range(c, i):
                acc = acc - lb(i, j) * x[j]
            x[i] = acc * inv[i]
            total = total + x[i] * x[i]
    x = []
    for i in range(d):  # y
        acc = loc_b[..., i] - loc_a[..., i]
        for j in range(i):
            acc = acc - lb(i, j) * x[j]
        x.append(acc * inv[i])
        total = total + x[i] * x[i]
    scale_part = 0.0
    for i in range(d):
        scale_part = scale_part + gaussian_scale_kl_fusible(scale_tril_a[..., i, i], lb(i, i))
    return 0.5 * total + scale_part


@kernel(event_ranks=(1, 1, 1, 2), where="KL(MultivariateNormalDiag ‖ MultivariateNormalTriL)")
def _mvn_diag_tril(loc_a, scale_diag_a, loc_b, scale_tril_b):
    """KL(N(loc_a, diag(s_a²)) ‖ N(loc_b, L_b L_bᵀ)): :func:`mvn_tril` with L_a = diag(s_a)."""
    return _mvn_diag_tril_core(loc_a, scale_diag_a, loc_b, scale_tril_b)


@jax.jit
def _mvn_diag_tril_core(loc_a, scale_diag_a, loc_b, scale_tril_b):
    eye = jnp.broadcast_to(
        jnp.eye(scale_diag_a.shape[-1], dtype=scale_diag_a.dtype), scale_tril_b.shape
    )
    return _mvn_tril_core(loc_a, scale_diag_a[..., :, None] * eye, loc_b, scale_tril_b)


@kernel(event_ranks=(1, 2, 1, 1), where="KL(MultivariateNormalTriL ‖ MultivariateNormalDiag)")
def _mvn_tril_diag(loc_a, scale_tril_a, loc_b, scale_diag_b):
    """KL(N(loc_a, L_a L_aᵀ) ‖ N(loc_b, diag(s_b²))): the solve by diag(s_b) is division."""
    return _mvn_tril_diag_core(loc_a, scale_tril_a, loc_b, scale_diag_b)


@jax.jit
def _mvn_tril_diag_core(loc_a, scale_tril_a, loc_b, scale_diag_b):
    m = div(scale_tril_a, scale_diag_b[..., :, None])
    y = div(loc_b - loc_a, scale_diag_b)
    diag_a = jnp.diagonal(scale_tril_a, axis1=-2, axis2=-1)
    return _whitened_kl(m, diag_a, scale_diag_b, y)
