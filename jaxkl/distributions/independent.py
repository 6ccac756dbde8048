"""Independent: reinterpret trailing batch axes of a distribution as event axes."""

from __future__ import annotations

import dataclasses
import numbers

import jax
import jax.numpy as jnp

from jaxkl.distributions.base import Distribution

__all__ = ["Independent"]


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Independent(Distribution):
    """The product of ``base``'s last ``reinterpreted_batch_ndims`` batch axes as one event.

    With base batch shape ``B + R`` (``len(R) = reinterpreted_batch_ndims``) and base event
    shape ``E``, the result has batch shape ``B`` and event shape ``R + E``, and
    log p(x) = Σ_{r ∈ R} log p_base(x)_r. Entropy and KL sum over ``R`` in the same way.
    ``Independent(Normal(loc, scale), 1)`` is the same law as
    ``MultivariateNormalDiag(loc, scale)``.

    Args:
      base: any jaxkl distribution; it is a pytree child, so ``Independent`` passes through
        ``jit``/``vmap``/``grad`` like its base.
      reinterpreted_batch_ndims: static int, ``0 <= n <= len(base.batch_shape)``.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxkl
      >>> d = jaxkl.Independent(jaxkl.Normal(jnp.zeros((4, 3)), 1.0), 1)
      >>> d.batch_shape, d.event_shape, d.log_prob(jnp.zeros(3)).shape
      ((4,), (3,), (4,))
    """

    base: Distribution
    reinterpreted_batch_ndims: int = dataclasses.field(metadata={"static": True})

    def __post_init__(self, validate: bool):
        if not isinstance(self.base, Distribution):
            raise ValueError(
                f"Independent: base must be a jaxkl Distribution; got {type(self.base).__name__}"
            )
        n = self.reinterpreted_batch_ndims
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise ValueError(f"Independent: reinterpreted_batch_ndims must be an int; got {n!r}")
        n = int(n)
        base_batch = self.base.batch_shape
        if not 0 <= n <= len(base_batch):
            raise ValueError(
                "Independent: reinterpreted_batch_ndims must be between 0 and "
                f"len(base.batch_shape) = {len(base_batch)} (base batch_shape {base_batch}); "
                f"got {n}"
            )
        # A plain int keeps the pytree auxiliary data hashable and comparable.
        object.__setattr__(self, "reinterpreted_batch_ndims", n)

    @property
    def reparameterized(self) -> bool:  # type: ignore[override]
        """Whether samples are differentiable in the parameters: that of ``base``."""
        return self.base.reparameterized

    @property
    def batch_shape(self):
        shape = self.base.batch_shape
        return tuple(shape[: len(shape) - self.reinterpreted_batch_ndims])

    @property
    def event_shape(self):
        shape = self.base.batch_shape
        return tuple(shape[len(shape) - self.reinterpreted_batch_ndims :]) + tuple(
            self.base.event_shape
        )

    @property
    def dtype(self):
        return self.base.dtype

    def _reduce(self, x: jax.Array) -> jax.Array:
        n = self.reinterpreted_batch_ndims
        return jnp.sum(x, axis=tuple(range(-n, 0))) if n else x

    def _sample(self, key, sample_shape):
        return self.base._sample(key, sample_shape)

    def log_prob(self, x):
        x = self._check_event(x)
        return self._reduce(self.base.log_prob(x))

    def entropy(self):
        return self._reduce(self.base.entropy())

    def mean(self):
        return self.base.mean()

    def variance(self):
        return self.base.variance()

    def mode(self):
        """The base's mode: independent coordinates are maximised one by one."""
        return self.base.mode()

    def covariance(self):
        """diag(variance), ``batch_shape + [d, d]``, for a vector event of scalar coordinates.

        Raises:
          NotImplementedError: the event is not one axis of scalar base coordinates.
        """
        if self.reinterpreted_batch_ndims != 1 or self.base.event_shape != ():
            raise NotImplementedError(
                "Independent.covariance: defined for one reinterpreted axis of a univariate "
                f"base; got {self.reinterpreted_batch_ndims} axes of {type(self.base).__name__}"
            )
        var = self.variance()
        eye = jnp.eye(var.shape[-1], dtype=var.dtype)
        return var[..., :, None] * jnp.broadcast_to(eye, var.shape + var.shape[-1:])
