"""Finite mixture of distributions of one family, mixed along a batch axis."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxkl import _random
from jaxkl.distributions.base import Distribution
from jaxkl.distributions.parameters import real

__all__ = ["Mixture"]


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Mixture(Distribution):
    """Mixture p(x) = Σ_k w_k p_k(x) with weights w = softmax(mixture_logits).

    The K components are one jaxkl distribution whose last batch axis is the mixture axis:
    ``components.batch_shape == (*C, K)``. With ``mixture_logits`` of shape ``[*L, K]`` the
    mixture has ``batch_shape = broadcast(L, C)`` and ``event_shape =
    components.event_shape``.

    * ``log_prob(x) = logsumexp_k(log_softmax(mixture_logits)_k + log p_k(x))``.
    * ``sample`` draws a component index per sample with ``jax.random.categorical`` and a
      draw from every component, then keeps the chosen one: it costs K times the random
      numbers of one draw (simple, branch-free and vectorised; fine for moderate K).
      Samples are not differentiable in the parameters (``reparameterized = False``).
    * ``mean`` is Σ_k w_k μ_k; ``variance`` is elementwise over the event (the diagonal of
      the covariance for vector events), by the law of total variance
      Σ_k w_k (σ_k² + (μ_k − μ)²), written centred to avoid cancellation; for vector
      events ``covariance`` is the full matrix Σ_k w_k (Σ_k + (μ_k − μ)(μ_k − μ)ᵀ).
    * ``mode`` has no closed form (a mixture may have several) and raises.
    * ``entropy`` has no closed form and raises ``NotImplementedError``; estimate it by
      Monte Carlo as ``-mixture.log_prob(mixture.sample(key, n)).mean(0)``. Likewise no
      closed-form KL is registered: use ``jaxkl.mc_kl``.

    Args:
      mixture_logits: ``[..., K]``, finite.
      components: a jaxkl distribution with ``batch_shape [..., K]``; a pytree child, so
        the mixture passes through ``jit``/``vmap``/``grad`` like its components.

    Example:
      >>> import jax.numpy as jnp
      >>> import jaxkl
      >>> m = jaxkl.Mixture(jnp.zeros(2), jaxkl.Normal(jnp.array([-1.0, 1.0]), 0.5))
      >>> m.batch_shape, m.event_shape, float(m.mean()), float(m.variance())
      ((), (), 0.0, 1.25)
      >>> m.sample(0, (3,)).shape
      (3,)
      >>> m2 = jaxkl.Mixture(jnp.zeros(2), jaxkl.MultivariateNormalDiag(jnp.eye(2), 0.5))
      >>> m2.covariance().tolist()  # 0.25·I + ¼ (e₀ − e₁)(e₀ − e₁)ᵀ
      [[0.5, -0.25], [-0.25, 0.5]]
    """

    mixture_logits: jax.Array
    components: Distribution

    reparameterized = False
    parameters = {"mixture_logits": real(1)}

    def __post_init__(self, validate: bool):
        if not isinstance(self.components, Distribution):
            raise ValueError(
                "Mixture: components must be a jaxkl Distribution whose last batch axis is "
                f"the mixture axis; got {type(self.components).__name__}"
            )
        component_batch = self.components.batch_shape
        if len(component_batch) < 1:
            raise ValueError(
                "Mixture: components need a batch axis to mix over (batch_shape [..., K]); "
                f"got {type(self.components).__name__} with batch_shape {component_batch}"
            )
        self._convert_params()
        k_logits, k_components = self.mixture_logits.shape[-1], component_batch[-1]
        if k_logits != k_components:
            raise ValueError(
                f"Mixture: number of components differs: mixture_logits has K={k_logits} "
                f"(shape {self.mixture_logits.shape}) but components have K={k_components} "
                f"(batch_shape {component_batch})"
            )
        try:
            np.broadcast_shapes(self.mixture_logits.shape[:-1], component_batch[:-1])
        except ValueError:
            raise ValueError(
                "Mixture: batch shapes do not broadcast: mixture_logits "
                f"{self.mixture_logits.shape[:-1]} (+ K) vs components {component_batch[:-1]} "
                "(+ K)"
            ) from None
        if validate:
            self._check_values()

    # ------------------------------------------------------------------ shapes
    @property
    def num_components(self) -> int:
        """K, the size of the mixture axis."""
        return self.mixture_logits.shape[-1]

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(
            np.broadcast_shapes(self.mixture_logits.shape[:-1], self.components.batch_shape[:-1])
        )

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.components.event_shape)

    @property
    def dtype(self):
        """The components' dtype (that of their parameters)."""
        return self.components.dtype

    @property
    def weights(self) -> jax.Array:
        """softmax(mixture_logits), ``[..., K]``."""
        return jax.nn.softmax(self.mixture_logits, axis=-1)

    # ------------------------------------------------------------------ helpers
    def _weights_for(self, values: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Weights and per-component ``values`` ``[*C, K, *E]``, broadcast together."""
        w = self.weights
        w = w.reshape(w.shape + (1,) * len(self.event_shape))
        return jnp.broadcast_arrays(w, values)

    def _draw_all_components(self, key, sample_shape):
        """One draw from every component: ``sample_shape + batch_shape + (K,) + event``.

        Component batch axes that the mixture broadcasts (size 1 in the components, larger
        in ``mixture_logits``) are drawn as extra sample axes and moved into place, so
        every mixture batch entry gets independent draws.
        """
        batch = self.batch_shape
        inner = self.components.batch_shape[:-1]
        padded = (1,) * (len(batch) - len(inner)) + tuple(inner)
        extra_axes = [i for i, (b, c) in enumerate(zip(batch, padded, strict=True)) if c != b]
        extra = tuple(batch[i] for i in extra_axes)
        draws = self.components.sample(key, sample_shape + extra)
        s, m = len(sample_shape), len(extra)
        draws = draws.reshape(
            sample_shape + extra + padded + (self.num_components,) + self.event_shape
        )
        draws = jnp.squeeze(draws, axis=tuple(s + m + i for i in extra_axes))
        return jnp.moveaxis(draws, tuple(range(s, s + m)), tuple(s + i for i in extra_axes))

    # ------------------------------------------------------------------ interface
    def _sample(self, key, sample_shape):
        key_index, key_draws = jax.random.split(key)
        batch, event = self.batch_shape, self.event_shape
        index = _random.categorical(key_index, self.mixture_logits, sample_shape + batch)
        draws = self._draw_all_components(key_draws, sample_shape)
        index = index.reshape(index.shape + (1,) * (1 + len(event)))
        index = jnp.broadcast_to(index, sample_shape + batch + (1,) + event)
        axis = len(sample_shape) + len(batch)
        return jnp.take_along_axis(draws, index, axis=axis).squeeze(axis)

    def log_prob(self, x):
        """log Σ_k w_k p_k(x), ``[..., *batch_shape]`` for x ``[..., *batch_shape, *event]``."""
        x = self._check_event(x)
        # A size-1 mixture axis just before the event lets x broadcast against all K.
        x = jnp.expand_dims(x, x.ndim - len(self.event_shape))
        per_component = self.components.log_prob(x)
        log_w = jax.nn.log_softmax(self.mixture_logits, axis=-1)
        per_component, log_w = jnp.broadcast_arrays(per_component, log_w)
        return jax.nn.logsumexp(per_component + log_w, axis=-1)

    def mean(self):
        """Σ_k w_k μ_k, ``batch_shape + event_shape``."""
        w, mu = self._weights_for(self.components.mean())
        return jnp.sum(w * mu, axis=-1 - len(self.event_shape))

    def variance(self):
        """Σ_k w_k (σ_k² + (μ_k − μ)²) elementwise, ``batch_shape + event_shape``."""
        axis = -1 - len(self.event_shape)
        w, mu = self._weights_for(self.components.mean())
        var = jnp.broadcast_to(self.components.variance(), mu.shape)
        mean = jnp.sum(w * mu, axis=axis, keepdims=True)
        return jnp.sum(w * (var + jnp.square(mu - mean)), axis=axis)

    def covariance(self):
        """Σ_k w_k (Σ_k + (μ_k − μ)(μ_k − μ)ᵀ), ``batch_shape + [d, d]``: total covariance.

        For vector events ``[d]`` with components that have ``covariance()``; centred at μ
        before the outer product, so no E[xxᵀ] − μμᵀ cancellation.

        Raises:
          ValueError: the event is not a vector (use ``variance()`` for scalar events).
          NotImplementedError: the components have no ``covariance()``.
        """
        if len(self.event_shape) != 1:
            raise ValueError(
                "Mixture.covariance: needs vector events [d]; got event_shape "
                f"{self.event_shape} (for scalar events variance() is the covariance)"
            )
        if not hasattr(self.components, "covariance"):
            raise NotImplementedError(
                f"Mixture.covariance: components ({type(self.components).__name__}) have no "
                "covariance(); variance() gives its diagonal"
            )
        w, mu = self._weights_for(self.components.mean())  # [*B, K, d]
        centred = mu - jnp.sum(w * mu, axis=-2, keepdims=True)
        outer = centred[..., :, None] * centred[..., None, :]  # [*B, K, d, d]
        within = jnp.broadcast_to(self.components.covariance(), outer.shape)
        w = jnp.broadcast_to(w[..., :1, None], outer.shape)
        return jnp.sum(w * (within + outer), axis=-3)

    def mode(self):
        """Not available in closed form (a mixture may have several modes): raises."""
        raise NotImplementedError(
            "Mixture.mode has no closed form (a mixture can have several modes); search "
            "log_prob numerically, e.g. from each component's mode"
        )

    def entropy(self):
        """Not available in closed form: raises ``NotImplementedError``."""
        raise NotImplementedError(
            "Mixture.entropy has no closed form. Estimate it by Monte Carlo: "
            "x = mixture.sample(key, n); h = -mixture.log_prob(x).mean(0) "
            "(jaxkl.mean_with_stderr(-mixture.log_prob(x)) gives a standard error)."
        )
