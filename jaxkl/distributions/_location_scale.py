"""What location–scale families with a mode at ``loc`` share: the mode and z = (x − loc)/scale."""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["LocationScaleMethods"]


class LocationScaleMethods:
    """Mixin for a family with fields ``loc`` and ``scale`` whose mode is ``loc``.

    Listed before :class:`~jaxkl.distributions.base.Distribution` in the bases, so its
    ``mode`` replaces the base's "no unique mode".
    """

    def mode(self):
        """loc, ``batch_shape``."""
        return self.loc

    def _standardise(self, x):
        """z = (x − loc)/scale, ``[..., *batch_shape]``."""
        x, loc, scale = jnp.broadcast_arrays(jnp.asarray(x, self.dtype), self.loc, self.scale)
        return (x - loc) / scale
