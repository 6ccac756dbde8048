"""Bernoulli distribution on {0, 1}, parameterised by its logit (or built from p)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxkl import _random
from jaxkl._checks import require_values
from jaxkl._shapes import as_float
from jaxkl.distributions.base import NOT_GIVEN, Distribution, exactly_one
from jaxkl.distributions.parameters import PROBABILITY, not_nan

__all__ = ["Bernoulli"]


def _logit(p):
    """log p − log1p(−p): ∓inf at p = 0, 1 (kept, not clamped), no 0/0 in between."""
    return jnp.log(p) - jnp.log1p(-p)


def _xlogx_safe(p, log_p):
    """p·log p with the 0·log 0 = 0 convention and no NaN in value or gradient."""
    return p * jnp.where(p > 0, log_p, 0.0)


@dataclasses.dataclass(frozen=True, eq=False, repr=False, init=False)
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

    ``probs=p`` builds the same distribution from P(X = 1) = p: the stored parameter (the
    one pytree leaf) is then ℓ = log p − log1p(−p), exact zeros and ones giving ℓ = ∓inf.
    σ(ℓ) returns p to within |ℓ| + 2 units of roundoff relative (p = 1e-30 in float32:
    ℓ ≈ −69, about 4e-6 relative).

    Args:
      logits: ℓ, ``[...]``, not NaN (±inf allowed).
      probs: p = P(X = 1), ``[...]``, in [0, 1]; instead of ``logits`` (exactly one).
      validate: check parameter values (default True); ``validate=False`` skips the value
        checks (p in [0, 1], logits not NaN), not the dtype and shape handling.

    Raises:
      ValueError: both or neither of ``logits`` and ``probs`` are given, or a value is
        invalid (the message shows the offending entries).

    Example:
      >>> import jaxkl
      >>> d = jaxkl.Bernoulli(0.0)
      >>> float(d.mean()), round(float(d.log_prob(1.0)), 4), d.sample(0, (3,)).shape
      (0.5, -0.6931, (3,))
      >>> import jax.numpy as jnp
      >>> float(jaxkl.Bernoulli(probs=0.25).logits) == float(jnp.log(1 / 3))
      True
    """

    logits: jax.Array

    reparameterized = False
    parameters = {"logits": not_nan()}

    def __init__(self, logits=NOT_GIVEN, *, probs=None, validate=True):
        logits, probs = exactly_one("Bernoulli", "logits", logits, "probs", probs)
        if probs is not None:
            probs = as_float(probs, names=["probs"], where="Bernoulli")
            if validate:
                require_values("Bernoulli", "probs", probs, constraint=PROBABILITY)
            logits = _logit(probs)
        object.__setattr__(self, "logits", logits)
        self.__post_init__(validate)

    @property
    def probs(self) -> jax.Array:
        """P(X = 1) = σ(logits), ``batch_shape``."""
        return jax.nn.sigmoid(self.logits)

    def _sample(self, key, sample_shape):
        shape = sample_shape + self.batch_shape
        u = _random.uniform(key, shape, self.dtype)
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

    def mode(self):
        """1. where p > ½ (ℓ > 0), else 0. (ties at p = ½ give 0), ``batch_shape``."""
        return (self.logits > 0).astype(self.dtype)

    def variance(self):
        """p(1 − p) = σ(ℓ)·σ(−ℓ) (no cancellation in 1 − p), ``batch_shape``."""
        return jax.nn.sigmoid(self.logits) * jax.nn.sigmoid(-self.logits)
