"""Monte Carlo KL(q‖p) from samples of q: the k1, k2 and k3 estimators.

With x ~ q and log r = log p(x) − log q(x):

* k1 = −log r                 unbiased, can be negative, variance ~ 2·KL for close pairs;
* k2 = ½ (log r)²             biased (E k2 = KL + O(KL^{3/2})), low variance, ≥ 0;
* k3 = (r − 1) − log r        unbiased when p is normalised, ≥ 0, = expm1(log r) − log r.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxkl._checks import is_concrete
from jaxkl._keys import as_key
from jaxkl.distributions.base import Distribution
from jaxkl.estimators.estimate import Estimate, mean_with_stderr
from jaxkl.estimators.variance_reduction import (
    antithetic_sample,
    control_variate_terms,
    gaussian_from_standard_normal,
    rqmc_standard_normal,
)

__all__ = ["ESTIMATORS", "GRADIENTS", "kl_from_log_probs", "mc_kl", "per_sample_kl"]

ESTIMATORS = ("k1", "k2", "k3")
GRADIENTS = ("reparam", "stl", "score")


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


def per_sample_kl(log_q: jax.Array, log_p: jax.Array, estimator: str = "k1") -> jax.Array:
    """The per-sample terms of estimator k1, k2 or k3 (elementwise, no averaging).

    Args:
      log_q: log q(x) at samples x ~ q, any shape.
      log_p: log p(x) at the same samples, same shape.
      estimator: "k1", "k2" or "k3".

    Returns:
      Array of the same shape: −log r, ½(log r)² or expm1(log r) − log r.

    Example:
      >>> terms = per_sample_kl(jnp.array([0.0, 0.0]), jnp.array([-1.0, 1.0]), "k3")
      >>> [round(float(t), 4) for t in terms]  # e^{∓1} − 1 ± 1
      [0.3679, 0.7183]
    """
    _check_choice("estimator", estimator, ESTIMATORS)
    log_r = log_p - log_q
    if estimator == "k1":
        return -log_r
    if estimator == "k2":
        return 0.5 * jnp.square(log_r)
    # k3 = (r − 1) − log r; expm1 keeps precision when r ≈ 1. No clamp: log r above
    # ~88.7 (float32) or ~709.8 (float64) overflows to +inf, which is the honest value.
    return jnp.expm1(log_r) - log_r


def kl_from_log_probs(log_q, log_p, *, estimator: str = "k1", axis: int = 0) -> Estimate:
    """KL(q‖p) from log densities evaluated at samples already drawn from q.

    The per-token RLHF case: ``log_q`` and ``log_p`` are the policy's and the reference's
    log probabilities of sampled tokens. The estimate is the mean of the per-sample terms
    (see :func:`per_sample_kl`) along ``axis``, with its standard error.

    Gradients with the samples held fixed (``stop_gradient`` on x, as in RLHF losses): the
    expected gradient with respect to q's parameters θ is

    ===========  ==========================================  =========================
    estimator    E_q[∇θ k]                                   so, used as a loss, it is
    ===========  ==========================================  =========================
    k1           E_q[∇θ log q] = 0                           no gradient signal at all
    k2           E_q[(log q − log p) ∇θ log q] = ∇θ KL(q‖p)  honest for KL(q‖p)
    k3           E_q[(1 − p/q) ∇θ log q] = ∇θ KL(p‖q)        the *forward* KL's gradient
    ===========  ==========================================  =========================

    (k2's expected gradient is the score-function gradient of the reverse KL; k3's value
    estimates KL(q‖p) but its gradient follows the forward KL.) Each line is checked by a
    test that averages gradients over many replicates.

    Args:
      log_q: ``[..., n, ...]`` log q(x_i) for x_i ~ q.
      log_p: same shape, log p(x_i); an unnormalised p gives k1 an offset of −log Z and
        makes k3 biased.
      estimator: "k1", "k2" or "k3".
      axis: the sample axis.

    Returns:
      ``Estimate`` with ``value`` and ``stderr`` of the shape of ``log_q`` without ``axis``.
      k3 is +inf where log p − log q exceeds the dtype's ``log(max)`` (≈ 88.7 in float32,
      ≈ 709.8 in float64): r itself is not representable there.

    Raises:
      ValueError: shapes differ, there is no sample along ``axis``, or (for concrete
        inputs) a log density is NaN.

    Example:
      >>> import jax, jaxkl
      >>> q, p = jaxkl.Normal(0.0, 1.0), jaxkl.Normal(1.0, 1.0)
      >>> x = q.sample(0, (10_000,))
      >>> est = jaxkl.kl_from_log_probs(q.log_prob(x), p.log_prob(x), estimator="k3")
      >>> abs(float(est.value) - 0.5) < 5 * float(est.stderr)
      True
    """
    _check_choice("estimator", estimator, ESTIMATORS)
    log_q, log_p = jnp.asarray(log_q), jnp.asarray(log_p)
    if log_q.shape != log_p.shape:
        raise ValueError(
            f"kl_from_log_probs: log_q and log_p must have the same shape; "
            f"got log_q {log_q.shape} and log_p {log_p.shape}"
        )
    if not -log_q.ndim <= axis < max(log_q.ndim, 1):
        raise ValueError(f"kl_from_log_probs: axis {axis} out of range for shape {log_q.shape}")
    for name, arr in (("log_q", log_q), ("log_p", log_p)):
        if is_concrete(arr) and bool(jnp.any(jnp.isnan(arr))):
            raise ValueError(f"kl_from_log_probs: {name} contains NaN")
    return mean_with_stderr(per_sample_kl(log_q, log_p, estimator), axis=axis)


def _log_density_of(p, event_shape: tuple[int, ...]) -> Callable[[jax.Array], jax.Array]:
    if isinstance(p, Distribution):
        if tuple(p.event_shape) != tuple(event_shape):
            raise ValueError(
                f"mc_kl: p's event shape {tuple(p.event_shape)} differs from q's "
                f"{tuple(event_shape)}"
            )
        return p.log_prob
    if callable(p):
        return p
    raise TypeError(
        "mc_kl: p must be a jaxkl distribution or a callable log density x -> log p(x); "
        f"got {type(p).__name__}"
    )


def mc_kl(
    key,
    q: Distribution,
    p,
    num_samples: int,
    *,
    estimator: str = "k1",
    gradient: str = "reparam",
    antithetic: bool = False,
    qmc: bool = False,
    qmc_randomizations: int = 16,
    control_variate: bool = False,
) -> Estimate:
    """Monte Carlo estimate of KL(q‖p) from ``num_samples`` draws x ~ q, with stderr.

    KL(q‖p) = E_q[log q(x) − log p(x)], estimated by the mean of k1, k2 or k3 (see
    :func:`per_sample_kl`) with standard error = sample sd / √n.

    ``gradient`` chooses what ``jax.grad`` of the value means (the value is the same):

    * ``"reparam"`` — pathwise: x = T_θ(ε) depends on q's parameters (needs
      ``q.reparameterized``). Unbiased for ∇E_q[k]: that is ∇KL(q‖p) for k1 and k3
      (unbiased estimators), but ∇E_q[k2] ≠ ∇KL(q‖p) for k2.
    * ``"stl"`` — sticking the landing (Roeder et al. 2017), k1 only: as "reparam" but
      the parameters inside log q are stopped, dropping the direct term ∇θ log q, whose
      expectation is zero; its variance vanishes as q → p. For k2 and k3 the dropped
      direct term does not average to zero (for k3 it is E_q[(1 − r)∇θ log q] =
      ∇KL(p‖q)), so those combinations are refused rather than silently biased.
    * ``"score"`` — score-function surrogate k + sg(k)·(log q − sg(log q)), for q that
      cannot be reparameterised (Bernoulli, Categorical, Poisson, Mixture weights).

    Variance reduction (each keeps the estimate unbiased; see
    :mod:`jaxkl.estimators.variance_reduction`):

    * ``antithetic=True`` — n/2 draws and their reflections through q's mean (q symmetric:
      Normal, MVNs, Laplace, Uniform); the n/2 pair averages are the independent terms.
      Exact (zero variance) for k1 on equal-scale Gaussians, where k1 is linear in x.
    * ``qmc=True`` — randomised quasi-Monte Carlo for Gaussian q: ``qmc_randomizations``
      independent random shifts of a rank-1 lattice of n / qmc_randomizations points; the
      standard error comes from the spread of the randomisations.
    * ``control_variate=True`` — k1 only: k1 − β̂(r − 1) with β̂ cross-fitted on the other
      half of the samples (β = −1 is k3). Needs a normalised p.

    Args:
      key: typed key, legacy key or int seed.
      q: the distribution sampled, batch shape ``Bq``, event shape ``E``.
      p: a distribution with event shape ``E`` (batch ``Bp``), or a callable
        ``x [n, *B, *E] -> log p(x) [n, *B]``. With an unnormalised p (log p + log Z) the
        result estimates KL(q‖p) − log Z for k1 (and k3 is then biased).
      num_samples: n ≥ 1 (static). n = 1 gives ``stderr = inf``.
      estimator: "k1" (default), "k2" or "k3".
      gradient: "reparam" (default), "stl" or "score".
      antithetic: pair each draw with its reflection (n must be even).
      qmc: randomised lattice points instead of i.i.d. draws (n divisible by
        ``qmc_randomizations``, which must be ≥ 2).
      qmc_randomizations: independent randomisations for QMC's standard error.
      control_variate: add the cross-fitted control variate r − 1 (k1 only, n ≥ 4).

    Returns:
      ``Estimate(value, stderr, num_samples)``; value and stderr have shape
      ``broadcast(Bq, Bp)``.

    Example:
      >>> import jaxkl
      >>> q, p = jaxkl.Normal(0.0, 1.0), jaxkl.Normal(1.0, 1.0)
      >>> est = jaxkl.mc_kl(0, q, p, 4096, estimator="k3")
      >>> abs(float(est.value) - 0.5) < 5 * float(est.stderr)
      True
    """
    _check_choice("estimator", estimator, ESTIMATORS)
    _check_choice("gradient", gradient, GRADIENTS)
    if not isinstance(num_samples, int | np.integer) or isinstance(num_samples, bool):
        raise TypeError(f"mc_kl: num_samples must be a Python int; got {type(num_samples)}")
    if num_samples < 1:
        raise ValueError(f"mc_kl: num_samples must be >= 1; got {num_samples}")
    if not isinstance(q, Distribution):
        raise TypeError(f"mc_kl: q must be a jaxkl distribution; got {type(q).__name__}")
    if gradient == "stl" and estimator != "k1":
        raise ValueError(
            f"mc_kl: gradient='stl' is unbiased only with estimator='k1' (for {estimator} the "
            "dropped term ∇θ log q does not average to zero); use gradient='reparam'"
        )
    if gradient in ("reparam", "stl") and not q.reparameterized:
        raise ValueError(
            f"mc_kl: {type(q).__name__} cannot be reparameterised; use gradient='score'"
        )
    _check_variance_reduction(
        q, num_samples, estimator, antithetic, qmc, qmc_randomizations, control_variate
    )
    log_p_fn = _log_density_of(p, q.event_shape)
    key = as_key(key)

    q_batch = tuple(q.batch_shape)
    batch = q_batch
    if isinstance(p, Distribution):
        try:
            batch = tuple(np.broadcast_shapes(q_batch, tuple(p.batch_shape)))
        except ValueError:
            raise ValueError(
                f"mc_kl: batch shapes of q {q_batch} and p {tuple(p.batch_shape)} do not broadcast"
            ) from None
    # Leading batch axes that p has and q lacks become extra sample axes, so each batch
    # member gets its own draws.
    extra = batch[: len(batch) - len(q_batch)]
    # Sample axes: [n] plain; [2, n/2] antithetic; [m, n/m] QMC. Terms are reduced to the
    # independent units (pair averages, per-randomisation means) before the stderr.
    if antithetic:
        x = antithetic_sample(q, key, num_samples // 2, extra)
    elif qmc:
        m = qmc_randomizations
        dim = q.event_shape[-1] if q.event_shape else 1
        eps = rqmc_standard_normal(key, m, num_samples // m, extra + q_batch, dim, q.dtype)
        x = gaussian_from_standard_normal(q, eps)
    else:
        x = q.sample(key, (num_samples, *extra))
    if gradient == "score":
        x = jax.lax.stop_gradient(x)
    q_for_density = jax.lax.stop_gradient(q) if gradient == "stl" else q
    log_q = q_for_density.log_prob(x)
    log_p = jnp.asarray(log_p_fn(x))
    try:
        shape = np.broadcast_shapes(log_q.shape, log_p.shape)
    except ValueError:
        raise ValueError(
            f"mc_kl: log p(x) has shape {log_p.shape}, which does not match log q(x) {log_q.shape}"
        ) from None
    log_q, log_p = jnp.broadcast_to(log_q, shape), jnp.broadcast_to(log_p, shape)
    terms = per_sample_kl(log_q, log_p, estimator)
    if control_variate:
        terms = control_variate_terms(terms, log_p - log_q)
    if gradient == "score":
        # Value unchanged (the added term is exactly 0); gradient gains k·∇log q.
        terms = terms + jax.lax.stop_gradient(terms) * (log_q - jax.lax.stop_gradient(log_q))
    if antithetic or qmc:
        units = mean_with_stderr(jnp.mean(terms, axis=1 if qmc else 0), axis=0)
        return Estimate(units.value, units.stderr, num_samples)
    return mean_with_stderr(terms, axis=0)


def _check_variance_reduction(
    q, n, estimator, antithetic, qmc, randomizations, control_variate
) -> None:
    if antithetic and qmc:
        raise ValueError("mc_kl: choose one of antithetic=True and qmc=True, not both")
    if antithetic and n % 2:
        raise ValueError(f"mc_kl: antithetic=True needs an even num_samples; got {n}")
    if qmc:
        if randomizations < 2:
            raise ValueError(
                f"mc_kl: qmc_randomizations must be >= 2 for a standard error; got {randomizations}"
            )
        if n % randomizations:
            raise ValueError(
                f"mc_kl: num_samples ({n}) must be a multiple of qmc_randomizations "
                f"({randomizations})"
            )
    if control_variate:
        if estimator != "k1":
            raise ValueError(
                "mc_kl: control_variate=True applies to estimator='k1' (k3 already is k1 "
                f"plus the control variate r − 1); got {estimator!r}"
            )
        if antithetic or qmc:
            raise ValueError("mc_kl: control_variate=True combines with plain sampling only")
        if n < 4:
            raise ValueError(f"mc_kl: control_variate=True needs num_samples >= 4; got {n}")
