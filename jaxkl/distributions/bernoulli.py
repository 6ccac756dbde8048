"""Bernoulli distribution on {0, 1}, parameterised by its logit."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxkl._checks import NOT_NAN
from jaxkl.distributions.base import Distribution

__all__ = ["Bernoulli"]


def _xlogx_safe(p, log_p):
    """p·log p with the 0·log 0 = 0 convention and no NaN in value or gradient."""
    return p * jnp.where(p > 0, log_p, 0.0)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Bernoulli(Distribution):
    """Bernoulli distribution with P(X = 1) = σ(logits) = 1 / (1 + e^(−logits)).

    p(1) = σ(ℓ), p(0) = σ(−ℓ) = 1 − σ(ℓ). Everything is computed from the logit ℓ through
    log σ(ℓ) = −softplus(−ℓ) and log σ(−ℓ) = −softplus(ℓ), so log-probabilities, entropy and
    variance stay finite and accurate for |ℓ| up to the float range (σ(−50) ≈ 2e-22 is
    kept, not rounded to 1 − 1). Logits of ±inf are allowed and mean p = 1 or p = 0.

    Samples are floats (the dtype of ``logits``) equal to 0. or 1., so they can be fed
    straight back to ``log_prob`` or mixed with continuous code. They are drawn as
    ``u < σ(ℓ)`` with ``u`` uniform on [0, 1); the uniform's grid (2^-23 in float32) bounds
    how finely probabilities below ~1e-7 are resolved. Samples are not differentiable in
    ``logits`` (``reparameterized = False``).

    Args:
      logits: ℓ, ``[...]``, not NaN (±inf allowed).

    Example:
      >>> import jaxkl
      >>> d = jaxkl.Bernoulli(0.0)
      >>> float(d.mean()), round(float(d.log_prob(1.0)), 4), d.sample(0, (3,)).shape
      (0.5, -0.6931, (3,))
    """

    logits: jax.Array

    reparameterized = False
    _param_event_ndims = {"logits": 0}

    _constraints = {"logits": NOT_NAN}

    @property
    def probs(self) -> jax.Array:
        """P(X = 1) = σ(logits), ``batch_shape``."""
        return jax.nn.sigmoid(self.logits)

    def _sample(self, key, sample_shape):
        shape = sample_shape + self.batch_shape
        u = jax.random.uniform(key, shape, self.dtype)
        return (u < jnp.broadcast_to(self.probs, shape)).astype(self.dtype)

    def log_prob(self, x):
        """log p(x) = log σ(ℓ) at x = 1, log σ(−ℓ) at x = 0, −inf elsewhere; ``[..., *batch]``."""
        x, logits = jnp.broadcast_arrays(jnp.asarray(x, self.dtype), self.logits)
        log_p1 = jax.nn.log_sigmoid(logits)
        log_p0 = jax.nn.log_sigmoid(-logits)
        return jnp.where(x == 1, log_p1, jnp.where(x == 0, log_p0, -jnp.inf))

    def entropy(self):
        """H = −p log p − (1 − p) log(1 − p), in nats, ``batch_shape``; 0 at ℓ = ±inf."""
        p1, p0 = jax.nn.sigmoid(self.logits), jax.nn.sigmoid(-self.logits)
        return -(
            _xlogx_safe(p1, jax.nn.log_sigmoid(self.logits))
            + _xlogx_safe(p0, jax.nn.log_sigmoid(-self.logits))
        )

    def mean(self):
        """p = σ(ℓ), ``batch_shape``."""
        return self.probs

    def variance(self):
        """p(1 − p) = σ(ℓ)·σ(−ℓ) (no cancellation in 1 − p), ``batch_shape``."""
        return jax.nn.sigmoid(self.logits) * jax.nn.sigmoid(-self.logits)
