"""Categorical distribution over {0, …, K−1}: unnormalised logits, or probabilities."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxkl import _random
from jaxkl._checks import require_values
from jaxkl._shapes import as_float
from jaxkl.distributions.base import NOT_GIVEN, Distribution, exactly_one
from jaxkl.distributions.parameters import PROBABILITY, category_logits

__all__ = ["Categorical"]


@dataclasses.dataclass(frozen=True, eq=False, repr=False, init=False)
class Categorical(Distribution):
    """Categorical distribution with P(X = k) = softmax(logits)_k, k ∈ {0, …, K−1}.

    log p(k) = logits_k − logsumexp(logits). The last axis of ``logits`` indexes the
    categories; the event is a single index, so ``event_shape == ()`` and
    ``batch_shape == logits.shape[:-1]``. A logit of −inf gives its category probability 0
    (masking); +inf and NaN are rejected, and every row needs at least one finite logit.

    Samples are ``int32`` indices. ``log_prob`` accepts integer indices or floats with
    integral values; anything else (non-integral, negative, ≥ K, NaN) has log-probability
    −inf. ``mean`` and ``variance`` are those of the index read as a number — meaningful
    only when the category order is. Samples are not differentiable in ``logits``
    (``reparameterized = False``).

    ``probs=p`` builds it from probabilities: the stored parameter (the one pytree leaf)
    is then logits = log p, zeros giving −inf (masked categories). Each row must lie on the
    simplex: entries in [0, 1] and |Σ_k p_k − 1| ≤ √eps of the dtype (3.5e-4 in float32,
    1.5e-8 in float64), which admits the rounding of a softmax over a large vocabulary;
    the row is then normalised exactly by ``log_softmax``.

    Args:
      logits: ``[..., K]``, K ≥ 1; entries < +inf and not NaN; each row has a finite entry.
      probs: ``[..., K]`` on the simplex (see above); instead of ``logits`` (exactly one).
      validate: check parameter values (default True); ``validate=False`` skips the value
        checks (the simplex, the finiteness of logits), not the dtype and shape handling
        (K ≥ 1 is always checked).

    Raises:
      ValueError: both or neither of ``logits`` and ``probs`` are given, or a value is
        invalid (the message shows the offending entries, or the offending row sums).

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxkl
      >>> d = jaxkl.Categorical(jnp.log(jnp.array([0.2, 0.3, 0.5])))
      >>> d.batch_shape, d.event_shape, d.sample(0, (4,)).shape
      ((), (), (4,))
      >>> round(float(d.log_prob(2)), 4), round(float(d.mean()), 4)
      (-0.6931, 1.3)
      >>> e = jaxkl.Categorical(probs=jnp.array([0.2, 0.3, 0.5]))  # the same law
      >>> round(float(e.log_prob(2)), 4), int(e.mode())
      (-0.6931, 2)
    """

    logits: jax.Array

    reparameterized = False
    parameters = {"logits": category_logits()}
    _event_axis_name = "K"

    def __init__(self, logits=NOT_GIVEN, *, probs=None, validate=True):
        logits, probs = exactly_one("Categorical", "logits", logits, "probs", probs)
        if probs is not None:
            probs = as_float(probs, names=["probs"], where="Categorical")
            if probs.ndim < 1:
                raise ValueError(
                    "Categorical: probs must have at least 1 dimension (shape [..., K]); "
                    f"got shape {probs.shape}"
                )
            if validate:
                _check_simplex(probs)
            logits = jnp.log(probs)
        object.__setattr__(self, "logits", logits)
        self.__post_init__(validate)

    def _check_shapes(self):
        if self.logits.shape[-1] < 1:
            raise ValueError(
                f"Categorical: logits need at least one category (shape [..., K] with K ≥ 1); "
                f"got shape {self.logits.shape}"
            )

    @property
    def num_categories(self) -> int:
        """K, the size of the last axis of ``logits``."""
        return self.logits.shape[-1]

    @property
    def probs(self) -> jax.Array:
        """softmax(logits), ``[..., K]``."""
        return jax.nn.softmax(self.logits, axis=-1)

    def log_probs(self) -> jax.Array:
        """Normalised log-probabilities log_softmax(logits), ``[..., K]``."""
        return jax.nn.log_softmax(self.logits, axis=-1)

    def _sample(self, key, sample_shape):
        # Inverse CDF: one uniform and a binary search per draw, O(log K), where Gumbel-max
        # (jax.random.categorical) needs K random numbers per draw — 1000× more work for the
        # K = 1000 vocabularies of the RLHF case. Scaling u by the last CDF value keeps it
        # below the total even when float rounding leaves the total short of 1, so a draw
        # never lands past the end or in a zero-mass category. Float32 resolves category
        # probabilities down to ~1e-7 of the total, as Gumbel-max in float32 does.
        batch = self.batch_shape
        k = self.num_categories
        cdf = jnp.cumsum(self.probs, axis=-1).reshape((-1, k))  # [B, K]
        u = _random.uniform(key, sample_shape + batch, cdf.dtype)
        u = u.reshape((-1, cdf.shape[0])) * cdf[None, :, -1]  # [S, B]
        idx = jax.vmap(
            lambda c, col: jnp.searchsorted(c, col, side="right"), in_axes=(0, 1), out_axes=1
        )(cdf, u)
        return idx.reshape(sample_shape + batch).astype(jnp.int32)

    def log_prob(self, x):
        """log p(x) = log_softmax(logits)[x], ``[..., *batch_shape]``; −inf off {0, …, K−1}."""
        x = jnp.asarray(x)
        if x.dtype == jnp.bool_:
            x = x.astype(jnp.int32)
        batch = self.batch_shape
        try:
            shape = np.broadcast_shapes(x.shape, batch)
        except ValueError:
            raise ValueError(
                f"Categorical.log_prob: x of shape {x.shape} does not broadcast with "
                f"batch_shape {batch}"
            ) from None
        x = jnp.broadcast_to(x, shape)
        k = self.num_categories
        valid = (x >= 0) & (x < k)
        if not jnp.issubdtype(x.dtype, jnp.integer):
            valid = valid & (x == jnp.floor(x))
        idx = jnp.where(valid, x, 0).astype(jnp.int32)
        log_p = self.log_probs()
        # Leading singleton axes let the gather broadcast over sample dims without copying.
        log_p = log_p.reshape((1,) * (len(shape) - len(batch)) + log_p.shape)
        picked = jnp.take_along_axis(log_p, idx[..., None], axis=-1)[..., 0]
        return jnp.where(valid, picked, -jnp.inf)

    def entropy(self):
        """H = −Σ_k p_k log p_k (0·log 0 = 0), in nats, ``batch_shape``."""
        log_p = self.log_probs()
        p = jnp.exp(log_p)
        return -jnp.sum(p * jnp.where(p > 0, log_p, 0.0), axis=-1)

    def _index(self):
        k = jnp.arange(self.num_categories, dtype=self.dtype)
        return jnp.broadcast_to(k, self.logits.shape)

    def mode(self):
        """The most probable index (the first of tied ones), ``int32``, ``batch_shape``."""
        return jnp.argmax(self.logits, axis=-1).astype(jnp.int32)

    def mean(self):
        """E[X] = Σ_k k·p_k of the index, ``batch_shape``."""
        return jnp.sum(self.probs * self._index(), axis=-1)

    def variance(self):
        """Var[X] = Σ_k p_k (k − E[X])² of the index (centred: no cancellation), ``batch_shape``."""
        p = self.probs
        centred = self._index() - jnp.sum(p * self._index(), axis=-1, keepdims=True)
        return jnp.sum(p * jnp.square(centred), axis=-1)


def _check_simplex(probs) -> None:
    """Entries in [0, 1], rows summing to 1 within √eps; the error shows what fails."""
    where = "Categorical"
    require_values(where, "probs", probs, constraint=PROBABILITY)
    total = jnp.sum(probs, axis=-1)
    tol = float(np.sqrt(jnp.finfo(probs.dtype).eps))
    require_values(
        where,
        "probs.sum(-1)",
        total,
        jnp.abs(total - 1.0) <= tol,
        rule=f"be 1 within {tol:.2g} (each row of probs on the simplex)",
    )
