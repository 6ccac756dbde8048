"""Dirichlet distribution Dirichlet(concentration) on the probability simplex."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax.scipy.special import digamma, xlogy

from jaxkl.distributions.base import Distribution
from jaxkl.distributions.parameters import positive
from jaxkl.special import log_beta, standard_gamma_entropy

__all__ = ["Dirichlet"]


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Dirichlet(Distribution):
    """Dirichlet distribution over K ≥ 2 categories with concentrations a = ``concentration``.

    p(x) = Πₖ xₖ^(aₖ−1) / B(a) on the simplex {x : xₖ ≥ 0, Σₖ xₖ = 1}, where
    B(a) = Πₖ Γ(aₖ) / Γ(Σₖ aₖ).

    Samples are Gₖ / Σⱼ Gⱼ with Gₖ ~ Gamma(aₖ), formed as a softmax of
    ``jax.random.loggamma`` draws so small concentrations do not underflow. Gradients use
    implicit reparameterisation of the gamma variates (Figurnov et al. 2018), so
    ``reparameterized`` is True.

    Args:
      concentration: a > 0 and finite, ``[..., K]`` with K ≥ 2; the last axis is the event axis.

    Example:
      >>> import jaxkl
      >>> d = jaxkl.Dirichlet(jnp.array([1.0, 2.0, 5.0]))
      >>> d.event_shape, d.sample(0, (4,)).shape
      ((3,), (4, 3))

    References:
      M. Figurnov, S. Mohamed, A. Mnih. Implicit Reparameterization Gradients.
      NeurIPS 2018.
    """

    concentration: jax.Array

    reparameterized = True
    parameters = {"concentration": positive(1)}
    _event_axis_name = "K"

    def _check_shapes(self):
        k = self.concentration.shape[-1]
        if k < 2:
            raise ValueError(
                "Dirichlet: concentration must have K >= 2 categories on its last axis; "
                f"got shape {self.concentration.shape}"
            )

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self.concentration.shape[-1],)

    def _sample(self, key, sample_shape):
        shape = (*sample_shape, *self.batch_shape, *self.event_shape)
        conc = jnp.broadcast_to(self.concentration, shape)
        return jax.nn.softmax(jax.random.loggamma(key, conc, shape, self.dtype), axis=-1)

    def log_prob(self, x):
        """log p(x), ``[..., *batch_shape]`` for x ``[..., *batch_shape, K]``.

        −inf where any xₖ lies outside [0, 1]. The constraint Σₖ xₖ = 1 is not checked
        (no tolerance could be right for every dtype and K): off the simplex the density
        formula is evaluated as written.
        """
        x = self._check_event(x)
        x, conc = jnp.broadcast_arrays(jnp.asarray(x, self.dtype), self.concentration)
        inside = jnp.all((x >= 0) & (x <= 1), axis=-1)
        # Double where: xlogy is NaN for negative x and would poison gradients.
        xs = jnp.where((x >= 0) & (x <= 1), x, 0.5)
        unnormalised = jnp.sum(xlogy(conc - 1.0, xs), axis=-1)
        lp = unnormalised - jnp.broadcast_to(log_beta(self.concentration), unnormalised.shape)
        return jnp.where(inside, lp, -jnp.inf)

    def entropy(self):
        """H = log B(a) + (a₀ − K)ψ(a₀) − Σₖ (aₖ − 1)ψ(aₖ), a₀ = Σₖ aₖ, ``batch_shape``.

        Evaluated as Σₖ e(aₖ) − e(a₀) − (K − 1)ψ(a₀) with e(x) = log Γ(x) − (x − 1)ψ(x) + x,
        whose large-x form (Stirling) keeps precision where the textbook terms cancel.
        """
        conc = self.concentration
        total = jnp.sum(conc, axis=-1)
        k = conc.shape[-1]
        e = standard_gamma_entropy
        return jnp.sum(e(conc), axis=-1) - e(total) - (k - 1) * digamma(total)

    def mean(self):
        """aₖ / a₀, ``[..., K]``."""
        conc = self.concentration
        total = jnp.sum(conc, axis=-1, keepdims=True)
        return conc / total

    def mode(self):
        """(aₖ − 1)/(a₀ − K), ``[..., K]``, where every aₖ > 1; NaN rows otherwise.

        With some aₖ ≤ 1 the density is unbounded or maximal on a face of the simplex,
        and no interior mode exists.
        """
        conc = self.concentration
        k = conc.shape[-1]
        total = jnp.sum(conc, axis=-1, keepdims=True)
        interior = jnp.all(conc > 1.0, axis=-1, keepdims=True)
        mode = (conc - 1.0) / jnp.where(interior, total - k, 1.0)
        return jnp.where(interior, mode, jnp.nan)

    def variance(self):
        """aₖ (a₀ − aₖ) / (a₀² (a₀ + 1)), ``[..., K]``."""
        conc = self.concentration
        total = jnp.sum(conc, axis=-1, keepdims=True)
        return conc * (total - conc) / (jnp.square(total) * (total + 1.0))
