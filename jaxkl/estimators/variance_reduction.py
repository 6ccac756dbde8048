"""Variance reduction for Monte Carlo KL: antithetic pairs, randomised QMC, control variate.

All three keep the estimate unbiased (tested to 5 standard errors) and report a standard
error that is honest for the way the samples were built:

* antithetic: x and its reflection 2·mean − x (same law for a symmetric q) are averaged
  into one term, so the n/2 pair-averages are the independent units;
* randomised QMC: a rank-1 lattice shifted by one uniform random vector per randomisation
  and mapped through Φ⁻¹; each randomisation gives an unbiased estimate and the spread of
  the independent randomisations is the standard error (L'Ecuyer & Lemieux 2000);
* control variate: r − 1 with r = p/q has mean zero under q when p is normalised; the
  coefficient is fitted on one half of the samples and applied to the other (cross-fitting),
  so fitting it adds no bias.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtri

from jaxkl.distributions import (
    Laplace,
    MultivariateNormalDiag,
    MultivariateNormalTriL,
    Normal,
    Uniform,
)
from jaxkl.distributions.base import Distribution

__all__ = [
    "SYMMETRIC_FAMILIES",
    "antithetic_sample",
    "control_variate_terms",
    "gaussian_from_standard_normal",
    "lattice",
    "rqmc_standard_normal",
]

# Families whose law is invariant under reflection through the mean.
SYMMETRIC_FAMILIES = (Normal, MultivariateNormalDiag, MultivariateNormalTriL, Laplace, Uniform)
GAUSSIAN_FAMILIES = (Normal, MultivariateNormalDiag, MultivariateNormalTriL)


def antithetic_sample(q: Distribution, key, half: int, extra: tuple[int, ...]) -> jax.Array:
    """``[2, half, *extra, *batch, *event]``: draws x and their reflections 2·mean − x.

    The reflection is pathwise in q's parameters, so reparameterised gradients stay valid.
    """
    if not isinstance(q, SYMMETRIC_FAMILIES):
        names = ", ".join(f.__name__ for f in SYMMETRIC_FAMILIES)
        raise ValueError(
            f"antithetic sampling needs a q symmetric about its mean ({names}); "
            f"got {type(q).__name__}"
        )
    x = q.sample(key, (half, *extra))
    mean = jnp.broadcast_to(q.mean(), x.shape)
    return jnp.stack([x, 2.0 * mean - x])


def lattice(n: int, dim: int) -> np.ndarray:
    """Rank-1 (Korobov) lattice ``{i·z/n mod 1}``, ``[n, dim]``, z = (1, a, a², …) mod n.

    a is the odd integer nearest n·(√5 − 1)/2 (the Fibonacci/golden-ratio choice, optimal in
    two dimensions and a reasonable default above). Any z keeps randomised QMC unbiased;
    the choice only affects how much variance is removed.
    """
    a = round(n * (math.sqrt(5.0) - 1.0) / 2.0) | 1
    z = np.array([pow(a, k, n) if n > 1 else 0 for k in range(dim)], dtype=np.int64)
    i = np.arange(n, dtype=np.int64)[:, None]
    return ((i * z[None, :]) % n) / n


def rqmc_standard_normal(
    key, randomizations: int, per: int, batch: tuple[int, ...], dim: int, dtype
) -> jax.Array:
    """Randomly shifted lattice normals ``[randomizations, per, *batch, dim]``.

    Each randomisation (and each batch member) gets its own uniform shift Δ; points are
    Φ⁻¹(frac(lattice + Δ)). A uniform of exactly 0 (chance 2⁻²⁴ per point in float32)
    would map to −∞, so it is moved up by half the float spacing, as open-interval uniform
    generators do.
    """
    pts = jnp.asarray(lattice(per, dim), dtype)  # [per, dim]
    shift = jax.random.uniform(key, (randomizations, 1, *batch, dim), dtype)
    pts = pts.reshape((1, per) + (1,) * len(batch) + (dim,))
    u = jnp.mod(pts + shift, 1.0)
    tiny = jnp.asarray(0.5 * jnp.finfo(dtype).eps, dtype)
    u = jnp.where(u <= 0.0, tiny, u)
    return ndtri(u)


def gaussian_from_standard_normal(q: Distribution, eps: jax.Array) -> jax.Array:
    """Map standard normals ``[..., *batch, d]`` to draws of a Gaussian q (pathwise).

    Uses the family's own transform (the one its sampler uses). Normal has event shape (),
    so its trailing axis of size 1 is dropped.
    """
    if isinstance(q, Normal):
        return q._from_standard_normal(eps[..., 0])
    if isinstance(q, MultivariateNormalDiag | MultivariateNormalTriL):
        return q._from_standard_normal(eps)
    names = ", ".join(f.__name__ for f in GAUSSIAN_FAMILIES)
    raise ValueError(f"randomised QMC needs a Gaussian q ({names}); got {type(q).__name__}")


def control_variate_terms(k1: jax.Array, log_r: jax.Array) -> jax.Array:
    """k1 − β̂·(r − 1) along axis 0, β̂ cross-fitted on the other half of the samples.

    β* = Cov(k1, r − 1)/Var(r − 1) minimises the variance (β = −1 gives k3 exactly:
    k1 + (r − 1)). Each half's terms use the β̂ estimated on the other half (stopped from
    gradients), so E[term] = KL(q‖p) exactly when p is normalised. With n odd the last
    sample joins the second half.
    """
    c = jnp.expm1(log_r)
    n = k1.shape[0]
    h = n // 2

    def beta(k, cv):
        kc = k - jnp.mean(k, axis=0, keepdims=True)
        cc = cv - jnp.mean(cv, axis=0, keepdims=True)
        var = jnp.sum(cc * cc, axis=0, keepdims=True)
        b = jnp.sum(kc * cc, axis=0, keepdims=True) / jnp.where(var > 0, var, 1.0)
        b = jnp.where((var > 0) & jnp.isfinite(b), b, 0.0)
        return jax.lax.stop_gradient(b)

    b_first, b_second = beta(k1[:h], c[:h]), beta(k1[h:], c[h:])
    first = k1[:h] - b_second * c[:h]
    second = k1[h:] - b_first * c[h:]
    return jnp.concatenate([first, second], axis=0)
