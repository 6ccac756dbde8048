"""Dispatch of closed-form KL divergences by the pair of distribution types."""

from __future__ import annotations

import functools
from collections.abc import Callable

from jaxkl.convert import UnsupportedDistribution, as_jaxkl, qualified_name
from jaxkl.distributions.base import Distribution

__all__ = ["NoAnalyticKL", "kl", "register_kl", "registered_pairs"]

_REGISTRY: dict[tuple[type, type], Callable] = {}


class NoAnalyticKL(NotImplementedError):
    """No closed-form KL is registered for this pair of distribution types."""


def register_kl(type_a: type, type_b: type, *, override: bool = False):
    """Register ``fn(a, b) -> KL(a‖b)`` for ``a: type_a``, ``b: type_b``.

    When several registered pairs match, the most specific wins: the pair whose types are
    closest to the arguments' own types along their method-resolution orders.

    A pair that is already registered (jaxkl's own included) is refused, so a second
    registration cannot silently replace a tested kernel; pass ``override=True`` to
    replace it on purpose.

    Raises:
      ValueError: the pair is registered and ``override`` is False.

    Example:
      >>> import jaxkl
      >>> class Halfnormal(jaxkl.Normal):  # a subclass inherits Normal's pairs
      ...     pass
      >>> @jaxkl.register_kl(Halfnormal, Halfnormal)
      ... def _kl_halfnormal(a, b):
      ...     return jaxkl.analytic.normal(0.0, a.scale, 0.0, b.scale)
    """

    def decorator(fn: Callable) -> Callable:
        existing = _REGISTRY.get((type_a, type_b))
        if existing is not None and not override:
            raise ValueError(
                f"register_kl: KL({type_a.__name__} ‖ {type_b.__name__}) is already "
                f"registered ({existing.__module__}.{existing.__qualname__}); pass "
                "override=True to replace it"
            )
        _REGISTRY[(type_a, type_b)] = fn
        _dispatch.cache_clear()
        return fn

    return decorator


@functools.cache
def _dispatch(type_a: type, type_b: type) -> Callable | None:
    matches = [
        (ta, tb) for ta, tb in _REGISTRY if issubclass(type_a, ta) and issubclass(type_b, tb)
    ]
    if not matches:
        return None
    mro_a, mro_b = type_a.__mro__, type_b.__mro__
    best = min(
        matches,
        key=lambda pair: (mro_a.index(pair[0]) + mro_b.index(pair[1]), mro_a.index(pair[0])),
    )
    return _REGISTRY[best]


def registered_pairs() -> list[tuple[type, type, Callable]]:
    """All registered ``(type_a, type_b, fn)``, sorted by the types' names."""
    pairs = [(ta, tb, fn) for (ta, tb), fn in _REGISTRY.items()]
    return sorted(pairs, key=lambda t: (t[0].__name__, t[1].__name__))


def _missing_message(a, b) -> str:
    ta, tb = type(a), type(b)
    related = [
        f"{x.__name__}‖{y.__name__}"
        for x, y, _ in registered_pairs()
        if {x, y} & {ta, tb} or issubclass(ta, x) or issubclass(tb, y)
    ]
    listed = ", ".join(related) if related else "none"
    return (
        f"no closed-form KL is registered for KL({ta.__name__} ‖ {tb.__name__}). "
        f"Registered pairs involving {ta.__name__} or {tb.__name__}: {listed}. "
        f"For a Monte Carlo estimate with a standard error use "
        f"jaxkl.mc_kl(key, q, p, num_samples); to add a closed form use "
        f"@jaxkl.register_kl({ta.__name__}, {tb.__name__})."
    )


def _as_jaxkl_pair(a, b):
    """numpyro, distrax and TFP distributions of known families become jaxkl's."""
    try:
        return as_jaxkl(a), as_jaxkl(b)
    except UnsupportedDistribution as err:
        raise NoAnalyticKL(
            f"no closed-form KL for KL({qualified_name(a)} ‖ {qualified_name(b)}): {err}"
        ) from None


def kl(a, b):
    """Closed-form KL(a‖b) = E_a[log a(x) − log b(x)].

    Args:
      a: a distribution with batch shape ``A``: jaxkl's, or numpyro's, distrax's or
        TFP-on-JAX's of a family jaxkl knows (converted by :mod:`jaxkl.convert`).
      b: a distribution with batch shape ``B`` and the same event shape.

    Returns:
      Array of shape ``broadcast(A, B)``. ``+inf`` where a's support is not contained in
      b's (for example KL(Normal ‖ Exponential)).

    Raises:
      NoAnalyticKL: no closed form is registered for the pair, or a foreign family has no
        converter; the message lists the registered pairs for either type (or the
        converters, with module-qualified type names) and points to ``jaxkl.mc_kl``.
      TypeError: a or b is not a jaxkl distribution nor a convertible foreign one (and
        no pair is registered for its type).

    Example:
      >>> import jaxkl
      >>> float(jaxkl.kl(jaxkl.Normal(0.0, 1.0), jaxkl.Normal(1.0, 1.0)))
      0.5
    """
    a, b = _as_jaxkl_pair(a, b)
    fn = _dispatch(type(a), type(b))
    if fn is None:
        not_distributions = [
            f"{side} is {type(x).__name__}"
            for side, x in (("a", a), ("b", b))
            if not isinstance(x, Distribution)
        ]
        if not_distributions:
            raise TypeError(
                f"jaxkl.kl takes two jaxkl distributions, e.g. "
                f"kl(jaxkl.Normal(0.0, 1.0), jaxkl.Normal(1.0, 2.0)); "
                f"{' and '.join(not_distributions)}. For raw parameter arrays call a kernel "
                f"from jaxkl.analytic (e.g. jaxkl.analytic.normal(loc_a, scale_a, loc_b, "
                f"scale_b)); for log-probabilities use jaxkl.kl_from_log_probs."
            )
        raise NoAnalyticKL(_missing_message(a, b))
    return fn(a, b)
