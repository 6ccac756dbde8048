"""The shared base of every jaxkl distribution.

A distribution is a frozen dataclass whose array fields are its parameters. Subclasses
are registered as pytrees automatically, so a distribution passes through ``jit``,
``vmap``, ``grad`` and optax unchanged. Construction converts parameters to one floating
dtype, broadcasts their batch dimensions explicitly and checks their values (see
:mod:`jaxkl._checks`); rebuilding from pytree leaves skips all of that, because leaves
may be tracers or placeholders.

A subclass declares:

* ``_param_event_ndims``: parameter name -> number of trailing event dimensions of that
  parameter (``{"loc": 1, "scale_tril": 2}`` for a full-covariance Gaussian). Parameters
  listed here are converted and broadcast by the base class.
* ``_constraints``: parameter name -> :class:`jaxkl._checks.Constraint` (finite, > 0 and
  finite, …). The base class checks each with :func:`jaxkl._checks.require_values`, whose
  error names the parameter and shows the offending entries. Which parameters may be
  infinite is decided here, per family.
* ``_check_values(self)`` (optional): further checks that relate parameters (Uniform's
  high > low); call ``super()._check_values()`` first.
* ``_sample(key, sample_shape)``, ``log_prob``, ``entropy``, ``mean``, ``variance``.

Fields marked ``dataclasses.field(metadata={"static": True})`` are pytree auxiliary
data (hashable Python values such as ``reinterpreted_batch_ndims``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxkl._checks import Constraint, require_values
from jaxkl._keys import as_key
from jaxkl._shapes import as_float, shape_tuple

__all__ = ["Distribution"]


def _flatten(dist):
    children, child_names, static = [], [], []
    for f in dataclasses.fields(dist):
        if f.metadata.get("static", False):
            static.append((f.name, getattr(dist, f.name)))
        else:
            child_names.append(f.name)
            children.append(getattr(dist, f.name))
    return children, (tuple(child_names), tuple(static))


def _make_unflatten(cls):
    def unflatten(aux, children):
        child_names, static = aux
        obj = object.__new__(cls)
        for name, value in zip(child_names, children, strict=True):
            object.__setattr__(obj, name, value)
        for name, value in static:
            object.__setattr__(obj, name, value)
        return obj

    return unflatten


class Distribution:
    """Base class: parameters as dataclass fields, pytree registered, validated on build.

    Shapes follow the usual convention: ``sample(key, sample_shape)`` returns
    ``sample_shape + batch_shape + event_shape``; ``log_prob(x)`` takes
    ``[..., *batch_shape, *event_shape]`` and returns ``[..., *batch_shape]``.
    """

    reparameterized: ClassVar[bool] = False
    _param_event_ndims: ClassVar[Mapping[str, int]] = {}
    _constraints: ClassVar[Mapping[str, Constraint]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        jax.tree_util.register_pytree_node(cls, _flatten, _make_unflatten(cls))

    # ---------------------------------------------------------------- construction
    def __post_init__(self):
        self._convert_params()
        self._check_values()

    def _convert_params(self) -> None:
        names = list(self._param_event_ndims)
        if not names:
            return
        cls = type(self).__name__
        values = as_float(*(getattr(self, n) for n in names), names=names, where=cls)
        values = values if isinstance(values, tuple) else (values,)
        batch_shapes = {}
        for name, value in zip(names, values, strict=True):
            k = self._param_event_ndims[name]
            if value.ndim < k:
                raise ValueError(
                    f"{cls}: {name} must have at least {k} dimension(s) "
                    f"(shape [..., {', '.join('K' * k)}]); got shape {value.shape}"
                )
            batch_shapes[name] = value.shape[: value.ndim - k]
        try:
            batch = np.broadcast_shapes(*batch_shapes.values())
        except ValueError:
            listed = ", ".join(f"{n} {s}" for n, s in batch_shapes.items())
            raise ValueError(f"{cls}: parameter batch shapes do not broadcast: {listed}") from None
        for name, value in zip(names, values, strict=True):
            k = self._param_event_ndims[name]
            target = tuple(batch) + value.shape[value.ndim - k :]
            if value.shape != target:
                value = jnp.broadcast_to(value, target)
            object.__setattr__(self, name, value)

    def _check_values(self) -> None:
        """Check every parameter against its entry in ``_constraints``."""
        cls = type(self).__name__
        for name, constraint in self._constraints.items():
            require_values(cls, name, getattr(self, name), constraint=constraint)

    # ---------------------------------------------------------------- shapes
    @property
    def batch_shape(self) -> tuple[int, ...]:
        name = next(iter(self._param_event_ndims))
        value = getattr(self, name)
        return tuple(value.shape[: value.ndim - self._param_event_ndims[name]])

    @property
    def event_shape(self) -> tuple[int, ...]:
        return ()

    @property
    def dtype(self):
        """Floating dtype of the parameters (and of samples for continuous families)."""
        return getattr(self, next(iter(self._param_event_ndims))).dtype

    def _check_event(self, x, name: str = "x") -> jax.Array:
        """Assert ``x`` ends with this distribution's event shape (at trace time)."""
        x = jnp.asarray(x)
        event = self.event_shape
        if event:
            try:
                chex.assert_shape(x, (..., *event))
            except AssertionError:
                raise ValueError(
                    f"{type(self).__name__}.log_prob: {name} must have shape "
                    f"[..., {', '.join(map(str, event))}] to match event_shape {event}; "
                    f"got {x.shape}"
                ) from None
        return x

    # ---------------------------------------------------------------- interface
    def sample(self, key, sample_shape=()) -> jax.Array:
        """Draw samples of shape ``sample_shape + batch_shape + event_shape``.

        Args:
          key: typed key, legacy ``uint32[2]`` key, or int seed.
          sample_shape: int or tuple of non-negative ints.

        Raises:
          TypeError: ``key`` is not a key or an int seed, or ``sample_shape`` is not an
            int or a tuple of ints.
          ValueError: the seed is out of range or ``sample_shape`` has a negative entry.
        """
        return self._sample(as_key(key), shape_tuple(sample_shape))

    def _sample(self, key, sample_shape: tuple[int, ...]) -> jax.Array:
        raise NotImplementedError

    def log_prob(self, x) -> jax.Array:
        raise NotImplementedError

    def entropy(self) -> jax.Array:
        raise NotImplementedError

    def mean(self) -> jax.Array:
        raise NotImplementedError

    def variance(self) -> jax.Array:
        raise NotImplementedError

    def stddev(self) -> jax.Array:
        return jnp.sqrt(self.variance())

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            parts.append(f"{f.name}={getattr(v, 'shape', v)}")
        return f"{type(self).__name__}({', '.join(parts)}, batch_shape={self.batch_shape})"
