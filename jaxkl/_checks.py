"""Value checks on parameters: a ``ValueError`` when concrete, checkify under ``checked``.

Constructors call :func:`require` for each constraint. When the condition is concrete
(eager code) a violation raises ``ValueError`` at once. When it is traced (inside ``jit``,
``vmap`` or ``grad``) nothing can be raised at trace time; inside :func:`checked` the
condition becomes a ``checkify.check`` whose failure is raised after the computation.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

__all__ = ["check_sizes", "checked", "is_concrete", "require"]

_CHECKIFY_ACTIVE = contextvars.ContextVar("jaxkl_checkify_active", default=False)


def is_concrete(*xs) -> bool:
    """True when none of ``xs`` is a tracer, so their values can be read now."""
    return not any(isinstance(x, jax.core.Tracer) for x in xs)


def require(ok, message: str) -> None:
    """Raise ``ValueError(message)`` if ``ok`` is concretely false anywhere.

    Under :func:`checked` a traced ``ok`` becomes a runtime ``checkify.check``; in plain
    ``jit`` a traced ``ok`` is not checked (the documented cost of tracing).
    """
    ok = jnp.all(jnp.asarray(ok))
    if is_concrete(ok):
        if not bool(ok):
            raise ValueError(message)
    elif _CHECKIFY_ACTIVE.get():
        checkify.check(ok, message)


@contextlib.contextmanager
def _checks_traced():
    token = _CHECKIFY_ACTIVE.set(True)
    try:
        yield
    finally:
        _CHECKIFY_ACTIVE.reset(token)


def checked(fn):
    """Jit ``fn`` with jaxkl's parameter checks turned into runtime checks.

    Inside plain ``jit`` a distribution built from traced parameters cannot raise at
    construction. ``checked(fn)`` traces ``fn`` with those checks enabled through
    :mod:`jax.experimental.checkify`, runs it compiled, and raises ``ValueError`` naming
    the first violated constraint.

    Args:
      fn: a function of arrays / pytrees, as you would pass to ``jax.jit``.

    Returns:
      A function with the same signature and outputs as ``jax.jit(fn)`` that raises
      ``ValueError`` when a constraint fails on the actual values.

    Example:
      >>> import jaxkl
      >>> f = jaxkl.checked(lambda s: jaxkl.kl(jaxkl.Normal(0.0, s), jaxkl.Normal(0.0, 1.0)))
      >>> float(f(2.0))  # doctest: +ELLIPSIS
      0.8068...
      >>> f(-1.0)  # raises ValueError: Normal: scale must be > 0
      Traceback (most recent call last):
      ...
      ValueError: ...
    """

    def traced(*args, **kwargs):
        with _checks_traced():
            return fn(*args, **kwargs)

    compiled = jax.jit(checkify.checkify(traced, errors=checkify.user_checks))

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        err, out = compiled(*args, **kwargs)
        msg = err.get()
        if msg is not None:
            # checkify appends a source location after the message; keep the message first.
            raise ValueError(msg)
        return out

    return wrapper


def check_sizes(sizes: Sequence[int], n_max: int | None = None) -> np.ndarray:
    """The grid as an int array; strictly increasing, ≥ 1 and ≤ ``n_max``."""
    arr = np.asarray([int(s) for s in sizes])
    if arr.size == 0 or arr[0] < 1 or np.any(np.diff(arr) <= 0):
        raise ValueError(f"sample sizes must be strictly increasing and >= 1; got {list(arr)}")
    if n_max is not None and arr[-1] > n_max:
        raise ValueError(f"largest sample size {arr[-1]} exceeds the {n_max} samples given")
    return arr
