"""Gamma distribution Gamma(concentration, rate) on (0, ∞)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax.scipy.special import gammainc, gammaln, xlogy

from jaxkl import _random
from jaxkl._shapes import common_float_dtype
from jaxkl.distributions.base import Distribution
from jaxkl.distributions.parameters import positive
from jaxkl.special import standard_gamma_entropy

__all__ = ["Gamma"]


def standard_gamma(key, alpha: jax.Array) -> jax.Array:
    """Gamma(α, 1) draws of ``alpha``'s shape, with implicit reparameterisation gradients.

    Marsaglia & Tsang (2000) rejection sampling run on the whole array at once: each round
    draws a normal and a uniform for every entry and keeps the first accepted candidate
    (acceptance ≥ 95% per round), looping while any entry is still open. This is several
    times faster on CPU than ``jax.random.gamma``, whose per-element loops split a key per
    element. α < 1 uses Gamma(α) = Gamma(α + 1)·U^{1/α}, in log space so that tiny draws
    stay representable as long as the dtype allows.

    Gradients: dx/dα = −(∂F/∂α)(x)/p(x) (implicit reparameterisation, Figurnov et al.
    2018) from ``jax.lax.random_gamma_grad``, attached by a custom JVP so it is computed
    only when something differentiates (first derivatives; higher ones are not exact).
    """
    alpha = jnp.asarray(alpha, common_float_dtype(alpha))
    alpha_sg = jax.lax.stop_gradient(alpha)
    dtype = alpha_sg.dtype
    boost = alpha_sg < 1.0
    a = jnp.where(boost, alpha_sg + 1.0, alpha_sg)
    d = a - 1.0 / 3.0
    c = jax.lax.rsqrt(9.0 * d)
    key_loop, key_boost = jax.random.split(key)
    tiny = jnp.finfo(dtype).tiny

    def body(state):
        key, x, done = state
        key, kz, ku = jax.random.split(key, 3)
        z = _random.normal(kz, alpha_sg.shape, dtype)
        log_u = jnp.log(_random.uniform(ku, alpha_sg.shape, dtype, minval=tiny))
        v = (1.0 + c * z) ** 3
        positive = v > 0
        log_v = jnp.log(jnp.where(positive, v, 1.0))
        accept = positive & (log_u < 0.5 * z * z + d - d * v + d * log_v) & ~done
        return key, jnp.where(accept, d * v, x), done | accept

    init = (key_loop, jnp.ones_like(alpha_sg), jnp.zeros(alpha_sg.shape, bool))
    _, x, _ = jax.lax.while_loop(lambda s: ~jnp.all(s[2]), body, init)
    log_u = jnp.log(_random.uniform(key_boost, alpha_sg.shape, dtype, minval=tiny))
    log_x = jnp.log(x) + jnp.where(boost, log_u / alpha_sg, 0.0)
    return _with_implicit_gradient(alpha, jnp.exp(log_x))


@jax.custom_jvp
def _with_implicit_gradient(alpha, x):
    """x, differentiating as a Gamma(α, 1) draw does with respect to α."""
    del alpha
    return x


@_with_implicit_gradient.defjvp
def _with_implicit_gradient_jvp(primals, tangents):
    # Only evaluated under differentiation: random_gamma_grad is far dearer than a draw.
    alpha, x = primals
    alpha_dot, _ = tangents  # x is a function of the key alone: its own tangent is zero
    dx = jax.lax.random_gamma_grad(alpha, x)
    dx = jnp.where(x > 0, dx, 0.0)  # underflowed draws (tiny α) have no usable slope
    return x, dx * alpha_dot


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Gamma(Distribution):
    """Gamma distribution with shape ``concentration`` α and inverse scale ``rate`` β.

    p(x) = β^α x^(α−1) e^(−βx) / Γ(α) for x ≥ 0, and 0 for x < 0.

    Samples are ``jax.random.gamma(key, α) / β``. Their gradient with respect to α uses
    implicit reparameterisation (dx/dα = −(∂F/∂α)/p(x) with F the CDF; Figurnov et al.
    2018), see :func:`standard_gamma`, so ``reparameterized`` is True.

    In float32 a Gamma(α, 1) variate below ~1.2e-38 underflows to 0. That happens with
    probability ≈ 1.2e-38^α / Γ(α + 1): about 1% of draws for α = 0.05 and 40% for
    α = 0.01. At 0 the density is +inf for α < 1, so Monte Carlo averages of
    ``log_prob`` over such samples are not finite; use float64 for α ≲ 0.1.

    Args:
      concentration: α > 0 and finite, ``[...]``.
      rate: β > 0 and finite, ``[...]``. Broadcasts with ``concentration``.

    Example:
      >>> import jaxkl
      >>> d = jaxkl.Gamma(2.0, 4.0)
      >>> float(d.mean()), d.sample(0, (3,)).shape
      (0.5, (3,))

    References:
      M. Figurnov, S. Mohamed, A. Mnih. Implicit Reparameterization Gradients.
      NeurIPS 2018.
    """

    concentration: jax.Array
    rate: jax.Array

    reparameterized = True
    parameters = {"concentration": positive(), "rate": positive()}

    def _sample(self, key, sample_shape):
        shape = sample_shape + self.batch_shape
        conc = jnp.broadcast_to(self.concentration, shape)
        g = standard_gamma(key, conc)
        return g / jnp.broadcast_to(self.rate, shape)

    def log_prob(self, x):
        """log p(x), ``[..., *batch_shape]``; −inf for x < 0.

        At x = 0 the value is +inf for α < 1, log β for α = 1 and −inf for α > 1.
        """
        x, conc, rate = jnp.broadcast_arrays(
            jnp.asarray(x, self.dtype), self.concentration, self.rate
        )
        inside = x >= 0
        # Double where: xlogy at x < 0 is NaN and would poison gradients through the
        # discarded branch.
        xs = jnp.where(inside, x, 1.0)
        lp = xlogy(conc - 1.0, xs) - rate * xs + conc * jnp.log(rate) - gammaln(conc)
        return jnp.where(inside, lp, -jnp.inf)

    def entropy(self):
        """H = α − log β + log Γ(α) + (1 − α) ψ(α), ``batch_shape``.

        For α ≥ 10 the α·log α parts cancel analytically (Stirling series), so large
        concentrations keep full relative precision in float32.
        """
        return standard_gamma_entropy(self.concentration) - jnp.log(self.rate)

    def mean(self):
        """α / β, ``batch_shape``."""
        return self.concentration / self.rate

    def variance(self):
        """α / β², ``batch_shape``."""
        return self.concentration / jnp.square(self.rate)

    def mode(self):
        """(α − 1)/β for α ≥ 1; 0 for α < 1, where the density grows without bound at 0."""
        return jnp.maximum(self.concentration - 1.0, 0.0) / self.rate

    def cdf(self, x):
        """P(α, βx), the regularised lower incomplete gamma function; 0 for x ≤ 0."""
        x, conc, rate = jnp.broadcast_arrays(
            jnp.asarray(x, self.dtype), self.concentration, self.rate
        )
        return jnp.where(x > 0, gammainc(conc, rate * jnp.maximum(x, 0.0)), 0.0)

    def log_cdf(self, x):
        """log of :meth:`cdf` (−inf where the CDF underflows, below ~1e-38 in float32)."""
        return jnp.log(self.cdf(x))
