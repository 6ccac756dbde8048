"""A foreign distribution seen through jaxkl's interface, for the Monte Carlo estimators.

Families jaxkl knows are converted (see :mod:`jaxkl.convert.convert`); anything else
that can ``sample`` and ``log_prob`` is wrapped here, so ``mc_kl`` and ``importance_kl``
take it with its own sampler, its own densities and its own reparameterisation flag.
"""

from __future__ import annotations

import dataclasses

import jax

from jaxkl.convert.libraries import LIBRARIES
from jaxkl.distributions.base import Distribution

__all__ = ["ForeignDistribution"]


@dataclasses.dataclass(frozen=True)
class ForeignDistribution(Distribution):
    """``inner`` (a numpyro, distrax or TFP distribution) with jaxkl's interface.

    ``sample(key, shape)`` calls the library's own sampler in its own key convention,
    ``log_prob`` its own density; ``reparameterized`` is the library's flag (numpyro's
    ``has_rsample``, TFP's ``reparameterization_type``; distrax keeps none: floating
    samples count as reparameterised). ``inner`` is a pytree child, so the wrapper passes
    through ``jit`` and ``vmap`` as the foreign object does.

    Args:
      inner: the foreign distribution.
      library: ``"numpyro"``, ``"distrax"`` or ``"tfp"``.
    """

    inner: object
    library: str = dataclasses.field(metadata={"static": True})

    def __post_init__(self, validate: bool):
        if self.library not in LIBRARIES:
            raise ValueError(
                f"ForeignDistribution: library must be one of {sorted(LIBRARIES)}; "
                f"got {self.library!r}"
            )

    @property
    def _lib(self):
        return LIBRARIES[self.library]

    @property
    def reparameterized(self) -> bool:  # type: ignore[override]
        return self._lib.reparameterized(self.inner)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.inner.batch_shape)

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.inner.event_shape)

    @property
    def dtype(self):
        """The dtype of a draw (the libraries differ in where they keep it)."""
        return jax.eval_shape(lambda: self._sample(jax.random.key(0), ())).dtype

    # The foreign code runs under JAX's default rank and dtype promotion: jaxkl's own code
    # (and its test suite) forbids implicit promotion of either, but the libraries rely on
    # both internally (numpyro's Bernoulli mixes bool with float, TFP's Categorical int32
    # with float).
    def _sample(self, key, sample_shape):
        with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
            return self._lib.draw(self.inner, key, tuple(sample_shape))

    def log_prob(self, x):
        with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
            return self.inner.log_prob(x)

    def __repr__(self) -> str:
        name = f"{type(self.inner).__module__}.{type(self.inner).__qualname__}"
        return f"ForeignDistribution({name}, batch_shape={self.batch_shape})"
