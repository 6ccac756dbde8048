"""The shared base of every jaxkl distribution.

A distribution is a frozen dataclass whose array fields are its parameters. Subclasses
are registered as pytrees automatically, so a distribution passes through ``jit``,
``vmap``, ``grad`` and optax unchanged. Construction converts parameters to one floating
dtype, broadcasts their batch dimensions explicitly and checks their values (see
:mod:`jaxkl._checks`); rebuilding from pytree leaves skips all of that, because leaves
may be tracers or placeholders.

A subclass declares:

* ``parameters``: parameter name -> :class:`jaxkl.distributions.parameters.Parameter`,
  its event rank (trailing event dimensions: ``{"loc": real(1), "scale_tril":
  lower_cholesky()}`` for a full-covariance Gaussian) and its constraints (finite, > 0
  and finite, …). From this one table the base class converts every parameter to one
  floating dtype, broadcasts their batch dimensions, and checks each constraint with
  :func:`jaxkl._checks.require_values`, whose error names the parameter and shows the
  offending entries (at run time under :func:`jaxkl.checked`). Which parameters may be
  infinite is decided here, per family.
* ``_check_shapes(self)`` (optional): checks that shapes and sizes agree (the event size
  d of ``loc`` and ``scale_diag``). These always run: a wrong shape gives a wrong number.
* ``_check_values(self)`` (optional): further checks that relate parameter values
  (Uniform's high > low); call ``super()._check_values()`` first. Value checks are
  skipped when the distribution is built with ``validate=False``.
* ``_sample(key, sample_shape)``, ``log_prob``, ``entropy``, ``mean``, ``variance``.

Every constructor takes a keyword ``validate`` (default True). ``validate=False`` skips
the value checks, for hot loops whose parameters are known to be valid (one reduction and
one host round trip per parameter saved per construction); the conversion to one float
dtype, the broadcasting and the shape checks still run, because without them the
numbers would be wrong rather than merely unchecked. It also turns off the runtime checks
that :func:`jaxkl.checked` would otherwise add for that distribution.

A parameter offered in two forms (``scale`` or ``log_scale``; ``logits`` or ``probs``)
is stored once, in the form given, so that ``grad`` and optax see exactly one leaf per
parameter. For the scale families the form given is a pair of fields ``_scale`` and
``_log_scale`` of which exactly one holds an array (the other is None, an empty pytree);
:func:`scale_properties` derives the public ``scale`` and ``log_scale`` from whichever is
stored. Error messages name parameters without the leading underscore.

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

from jaxkl._checks import require_constraints
from jaxkl._keys import as_key
from jaxkl._shapes import as_float, shape_tuple
from jaxkl.distributions.parameters import Parameter

__all__ = [
    "NOT_GIVEN",
    "Distribution",
    "exactly_one",
    "init_location_scale",
    "public_name",
    "scale_properties",
]

# Default of the optional forms of a parameter: None means "not given" as well, but an
# explicit None for the usual form, with no alternative, is a type error (as it was before
# the alternative existed), not a missing argument.
NOT_GIVEN = object()


def public_name(name: str) -> str:
    """The parameter name users see: the field name without its storage underscore."""
    return name.lstrip("_")


def exactly_one(where: str, name: str, value, alt_name: str, alt_value):
    """``(value, None)`` or ``(None, alt_value)``: the one form of a parameter given.

    Raises:
      ValueError: both forms, or neither, are given (the message names both).
      TypeError: ``name`` is explicitly None and ``alt_name`` is not given.
    """
    given = value is not NOT_GIVEN and value is not None
    if given and alt_value is not None:
        raise ValueError(f"{where}: pass exactly one of {name} and {alt_name}; got both")
    if alt_value is not None:
        return None, alt_value
    if value is NOT_GIVEN:
        raise ValueError(f"{where}: pass exactly one of {name} and {alt_name}; got neither")
    if value is None:
        raise TypeError(
            f"{where}: {name} must be a real number or an array of real numbers; got "
            f"NoneType (or pass {alt_name}=…)"
        )
    return value, None


def init_location_scale(dist, loc, scale, log_scale, validate: bool) -> None:
    """Fill ``loc`` and one of ``_scale``/``_log_scale`` of a frozen ``dist``, then build it.

    The constructor body of the families parameterised by ``loc`` and ``scale`` or
    ``log_scale`` (Normal, LogNormal); raises as :func:`exactly_one`.
    """
    scale, log_scale = exactly_one(type(dist).__name__, "scale", scale, "log_scale", log_scale)
    object.__setattr__(dist, "loc", loc)
    object.__setattr__(dist, "_scale", scale)
    object.__setattr__(dist, "_log_scale", log_scale)
    dist.__post_init__(validate)


def scale_properties(name: str, log_name: str) -> tuple[property, property]:
    """Public ``name`` and ``log_name`` properties over the fields ``_name``/``_log_name``.

    Whichever field holds the array is returned as is; the other form is derived from it
    (exp or log). Kernels that can use the log directly read ``_log_name`` to learn
    whether it was given.
    """

    def value(self):
        stored = getattr(self, "_" + name)
        return jnp.exp(getattr(self, "_" + log_name)) if stored is None else stored

    def log_value(self):
        stored = getattr(self, "_" + log_name)
        return jnp.log(getattr(self, "_" + name)) if stored is None else stored

    value.__doc__ = f"{name}, ``[...]``: as given, or exp({log_name})."
    log_value.__doc__ = f"{log_name}, ``[...]``: as given, or log({name})."
    return property(value), property(log_value)


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


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Distribution:
    """Base class: parameters as dataclass fields, pytree registered, validated on build.

    Shapes follow the usual convention: ``sample(key, sample_shape)`` returns
    ``sample_shape + batch_shape + event_shape``; ``log_prob(x)`` takes
    ``[..., *batch_shape, *event_shape]`` and returns ``[..., *batch_shape]``.
    """

    _: dataclasses.KW_ONLY
    validate: dataclasses.InitVar[bool] = True

    reparameterized: ClassVar[bool] = False
    parameters: ClassVar[Mapping[str, Parameter]] = {}
    # What the event axes of parameters are called in messages: d for vectors, K for
    # categories.
    _event_axis_name: ClassVar[str] = "d"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        jax.tree_util.register_pytree_node(cls, _flatten, _make_unflatten(cls))

    @classmethod
    def canonical_parameters(cls) -> tuple[str, ...]:
        """The family's parameters by public name, each once, in its usual form.

        A parameter stored in two forms (``_scale`` or ``_log_scale``) is named once, by
        its usual form (``scale``): the alternative ``_log_<name>`` field is the same
        parameter. The order is that of ``parameters``, which is the order the analytic
        kernels take them in.

        Example:
          >>> from jaxkl import Normal
          >>> Normal.canonical_parameters()
          ('loc', 'scale')
        """
        names = tuple(cls.parameters)
        alternatives = {f"_log_{public_name(n)}" for n in names}
        return tuple(public_name(n) for n in names if n not in alternatives)

    # ---------------------------------------------------------------- construction
    def __post_init__(self, validate: bool):
        self._convert_params()
        self._check_shapes()
        if validate:
            self._check_values()

    def _convert_params(self) -> None:
        # A parameter absent in this form (the other form was given) is None.
        names = [n for n in self.parameters if getattr(self, n) is not None]
        if not names:
            return
        cls = type(self).__name__
        values = as_float(
            *(getattr(self, n) for n in names), names=[public_name(n) for n in names], where=cls
        )
        values = values if isinstance(values, tuple) else (values,)
        batch_shapes = {}
        for name, value in zip(names, values, strict=True):
            k = self.parameters[name].event_rank
            if value.ndim < k:
                axes = ", ".join(self._event_axis_name * k)
                raise ValueError(
                    f"{cls}: {public_name(name)} must have at least {k} dimension(s) "
                    f"(shape [..., {axes}]); got shape {value.shape}"
                )
            batch_shapes[name] = value.shape[: value.ndim - k]
        try:
            batch = np.broadcast_shapes(*batch_shapes.values())
        except ValueError:
            listed = ", ".join(f"{public_name(n)} {s}" for n, s in batch_shapes.items())
            raise ValueError(f"{cls}: parameter batch shapes do not broadcast: {listed}") from None
        for name, value in zip(names, values, strict=True):
            k = self.parameters[name].event_rank
            target = tuple(batch) + value.shape[value.ndim - k :]
            if value.shape != target:
                value = jnp.broadcast_to(value, target)
            object.__setattr__(self, name, value)

    def _check_shapes(self) -> None:
        """Check that the parameters' shapes agree beyond broadcasting (none by default)."""

    def _check_values(self) -> None:
        """Check every parameter given against the constraints in ``parameters``."""
        require_constraints(
            type(self).__name__,
            [
                (public_name(name), value, constraint)
                for name, parameter in self.parameters.items()
                if (value := getattr(self, name)) is not None
                for constraint in parameter.constraints
            ],
        )

    # ---------------------------------------------------------------- shapes
    @property
    def batch_shape(self) -> tuple[int, ...]:
        name = next(iter(self.parameters))
        value = getattr(self, name)
        return tuple(value.shape[: value.ndim - self.parameters[name].event_rank])

    @property
    def event_shape(self) -> tuple[int, ...]:
        return ()

    @property
    def dtype(self):
        """Floating dtype of the parameters (and of samples for continuous families)."""
        return getattr(self, next(iter(self.parameters))).dtype

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

    def mode(self) -> jax.Array:
        """The most probable value, ``batch_shape + event_shape``."""
        raise NotImplementedError(f"{type(self).__name__} has no mode() (no unique mode)")

    def cdf(self, x) -> jax.Array:
        """P(X ≤ x), ``[..., *batch_shape]``; univariate families with a closed form."""
        raise NotImplementedError(f"{type(self).__name__} has no cdf() in closed form")

    def log_cdf(self, x) -> jax.Array:
        """log P(X ≤ x), ``[..., *batch_shape]``."""
        raise NotImplementedError(f"{type(self).__name__} has no log_cdf() in closed form")

    def icdf(self, p) -> jax.Array:
        """The quantile: the x with P(X ≤ x) = p, ``[..., *batch_shape]``."""
        raise NotImplementedError(f"{type(self).__name__} has no icdf() in closed form")

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is not None:
                parts.append(f"{public_name(f.name)}={getattr(v, 'shape', v)}")
        return f"{type(self).__name__}({', '.join(parts)}, batch_shape={self.batch_shape})"


# An InitVar's default is also left as a class attribute; ``dist.validate`` would then read
# True whatever was passed. Construction reads the default from the field, not from here.
del Distribution.validate
