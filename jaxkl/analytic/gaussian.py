"""Closed forms for the Gaussian family: Normal, residual (NVAE) Normal, LogNormal, MVNs."""

from __future__ import annotations

import jax.numpy as jnp

from jaxkl._shapes import as_float, broadcast_named
from jaxkl.analytic._math import half_expm1_2t_minus_t, log_ratio
from jaxkl.analytic.registry import register_kl
from jaxkl.distributions.normal import Normal

__all__ = ["normal", "residual_normal"]


def normal(loc_a, scale_a, loc_b, scale_b):
    """KL(N(loc_a, scale_a²) ‖ N(loc_b, scale_b²)).

    KL = ½((μ_a − μ_b)/σ_b)² + ½·expm1(2t) − t,  t = log(σ_a/σ_b),
    which equals the textbook ½(σ_a²/σ_b² + (μ_a−μ_b)²/σ_b² − 1) + log(σ_b/σ_a) but keeps
    full precision in float32 for scale ratios from 1e-6 to 1e6 and near 1.

    Args:
      loc_a, scale_a, loc_b, scale_b: arrays ``[...]`` that broadcast together; scales > 0.

    Returns:
      ``[...]``, the broadcast shape.

    Example:
      >>> float(normal(0.0, 1.0, 1.0, 1.0))
      0.5
    """
    loc_a, scale_a, loc_b, scale_b = as_float(loc_a, scale_a, loc_b, scale_b)
    loc_a, scale_a, loc_b, scale_b = broadcast_named(
        "jaxkl.analytic.normal", loc_a=loc_a, scale_a=scale_a, loc_b=loc_b, scale_b=scale_b
    )
    z = (loc_a - loc_b) / scale_b
    return 0.5 * jnp.square(z) + half_expm1_2t_minus_t(log_ratio(scale_a, scale_b))


def residual_normal(delta_loc, delta_scale, scale_p):
    """NVAE's residual-normal KL: KL(N(μ_p + Δμ, (σ_p·Δσ)²) ‖ N(μ_p, σ_p²)).

    KL = ½(Δμ²/σ_p² + Δσ²) − ½ − log Δσ — the ordinary Gaussian KL with the posterior
    written relative to the prior (Vahdat & Kautz 2020, eq. 2). It is evaluated as
    ½(Δμ/σ_p)² + ½·expm1(2 log Δσ) − log Δσ, which stays accurate in float32 as Δσ → 1
    and Δμ → 0, where the textbook form cancels catastrophically.

    Args:
      delta_loc: Δμ, ``[...]``.
      delta_scale: Δσ > 0, ``[...]``.
      scale_p: σ_p > 0, ``[...]``.

    Returns:
      ``[...]``, the broadcast shape.

    Example:
      >>> round(float(residual_normal(1.0, 1.0, 1.0)), 6)
      0.5
    """
    delta_loc, delta_scale, scale_p = as_float(delta_loc, delta_scale, scale_p)
    delta_loc, delta_scale, scale_p = broadcast_named(
        "jaxkl.analytic.residual_normal",
        delta_loc=delta_loc,
        delta_scale=delta_scale,
        scale_p=scale_p,
    )
    t = log_ratio(delta_scale, jnp.ones_like(delta_scale))
    return 0.5 * jnp.square(delta_loc / scale_p) + half_expm1_2t_minus_t(t)


@register_kl(Normal, Normal)
def _kl_normal_normal(a: Normal, b: Normal):
    return normal(a.loc, a.scale, b.loc, b.scale)


def lognormal(*args, **kwargs):  # PLACEHOLDER
    raise NotImplementedError


def mvn_diag(*args, **kwargs):  # PLACEHOLDER
    raise NotImplementedError


def mvn_tril(*args, **kwargs):  # PLACEHOLDER
    raise NotImplementedError
