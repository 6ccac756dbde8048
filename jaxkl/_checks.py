"""Value checks on parameters: a ``ValueError`` when concrete, checkify under ``checked``.

Constructors check each parameter against a :class:`Constraint` with :func:`require_values`
(or a free-form condition with :func:`require`). When the condition is concrete (eager
code) a violation raises ``ValueError`` at once, naming the parameter and showing the
offending entries with their indices (the first few of a batch). When it is traced (inside
``jit``, ``vmap`` or ``grad``) nothing can be raised at trace time; inside :func:`checked`
the condition becomes a ``checkify.check`` whose failure is raised after the computation,
with the first offending entry and the count; in plain ``jit`` it is not checked.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

__all__ = [
    "FINITE",
    "NOT_NAN",
    "NOT_NAN_OR_POS_INF",
    "POSITIVE_FINITE",
    "Constraint",
    "check_sizes",
    "checked",
    "describe_offending",
    "is_concrete",
    "require",
    "require_constraints",
    "require_values",
]

# How many offending entries an error message lists before it only counts the rest.
SHOWN_VALUES = 5

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


@dataclasses.dataclass(frozen=True)
class Constraint:
    """An elementwise constraint on a parameter: ``holds(x)`` -> bool array, and its rule.

    ``rule`` completes the sentence "<parameter> must ...", e.g. "be > 0 and finite".
    """

    rule: str
    holds: Callable[[jax.Array], jax.Array]


FINITE = Constraint("be finite (not NaN or ±inf)", jnp.isfinite)
POSITIVE_FINITE = Constraint(
    "be > 0 and finite (not NaN or ±inf)", lambda x: (x > 0) & jnp.isfinite(x)
)
NOT_NAN = Constraint("not be NaN (±inf allowed)", lambda x: ~jnp.isnan(x))
NOT_NAN_OR_POS_INF = Constraint(
    "not be NaN or +inf (-inf allowed)", lambda x: ~jnp.isnan(x) & (x < jnp.inf)
)


def _format_entry(v) -> str:
    # numpy prints the shortest string that round-trips in the value's own dtype.
    v = np.asarray(v)[()]
    text = str(v)
    if jnp.issubdtype(v.dtype, jnp.floating) and 0 < abs(v) < jnp.finfo(v.dtype).tiny:
        # XLA on CPU flushes subnormals to zero, so "1e-45 must be > 0" needs this.
        text += " (subnormal: computed as 0)"
    return text


def describe_offending(name: str, value, ok, also=None) -> str:
    """'scale = -1.0', or 'scale[1] = -2.0, scale[3] = 0.0 (2 of 4 entries)' for a batch.

    Lists at most ``SHOWN_VALUES`` entries of ``value`` where ``ok`` is false (row-major
    order), each with its index, then how many entries fail in all. ``also`` (name ->
    array of ``value``'s shape) adds the entries of related parameters at the same index,
    e.g. 'high[1] = 0.0 (low[1] = 2.0)'.
    """
    value = np.asarray(value)
    also = {k: np.broadcast_to(np.asarray(v), value.shape) for k, v in (also or {}).items()}
    bad = ~np.broadcast_to(np.asarray(ok, bool), value.shape)

    def entry(idx):
        at = f"[{', '.join(str(int(i)) for i in idx)}]" if idx else ""
        shown = f"{name}{at} = {_format_entry(value[idx])}"
        if also:
            shown += (
                " ("
                + ", ".join(f"{k}{at} = {_format_entry(v[idx])}" for k, v in also.items())
                + ")"
            )
        return shown

    if value.ndim == 0:
        return entry(())
    where = np.argwhere(bad)
    shown = [entry(tuple(idx)) for idx in where[:SHOWN_VALUES]]
    more = ", …" if len(where) > SHOWN_VALUES else ""
    return f"{', '.join(shown)}{more} ({len(where)} of {value.size} entries)"


def require_values(
    where: str, name: str, value, ok=None, *, constraint=None, rule=None, also=None
) -> None:
    """Require ``ok`` (elementwise over ``value``); the error names and shows the failures.

    Either pass ``constraint`` (``ok`` and ``rule`` are then taken from it) or both ``ok``
    (a bool array broadcastable to ``value``'s shape) and ``rule``. The message reads
    "``where``: ``name`` must ``rule``; got ``name``[i, j] = v, …": for example
    ``Normal: scale must be > 0 and finite (not NaN or ±inf); got scale[1] = -2.0
    (1 of 3 entries)``. ``also`` (name -> array) shows related parameters at the same
    indices.

    Raises:
      ValueError: at once when ``ok`` is concrete and false anywhere; under
        :func:`checked` after the computation (with the first failing entry and the
        count); nothing in plain ``jit``.
    """
    if constraint is not None:
        if _hold_everywhere(((value, constraint),)):
            return
        ok, rule = constraint.holds(value), constraint.rule
    message = f"{where}: {name} must {rule}"
    all_ok = jnp.all(jnp.asarray(ok))
    also = also or {}
    if is_concrete(value, all_ok, *also.values()):
        if not bool(all_ok):
            raise ValueError(f"{message}; got {describe_offending(name, value, ok, also)}")
        return
    if not _CHECKIFY_ACTIVE.get():
        return
    value = jnp.asarray(value)
    ok = jnp.broadcast_to(jnp.asarray(ok, bool), value.shape)
    also = {k: jnp.broadcast_to(jnp.asarray(v), value.shape).ravel() for k, v in also.items()}
    # Literal braces in the message would be read as format fields by checkify.
    message = message.replace("{", "{{").replace("}", "}}")
    first = jnp.argmin(ok.ravel())  # the first False in row-major order
    index = jnp.unravel_index(first, value.shape)
    at = "[" + ", ".join(f"{{i{k}}}" for k in range(value.ndim)) + "]" if value.ndim else ""
    shown = f"{name}{at} = {{value}}"
    if also:
        shown += " (" + ", ".join(f"{k}{at} = {{also_{k}}}" for k in also) + ")"
    if value.ndim:
        shown += f" ({{count}} of {value.size} entries)"
    checkify.check(
        all_ok,
        f"{message}; got {shown}",
        value=value.ravel()[first],
        count=jnp.sum(~ok),
        **{f"i{k}": i for k, i in enumerate(index)},
        **{f"also_{k}": v[first] for k, v in also.items()},
    )


def require_constraints(where: str, checks: Sequence[tuple[str, object, Constraint]]) -> None:
    """:func:`require_values` for each ``(name, value, constraint)``, concrete arrays checked
    in one compiled program.

    A constructor's checks of eager parameters of a new shape then compile one program
    instead of one per primitive of every constraint: building ``Normal``, ``Gamma`` or
    ``Categorical`` of a new shape took 104, 108 and 226 ms before (four, four and eight
    compiles) and 33–35 ms after (one compile of 23–27 ms; single runs, 2-core CPU, jaxlib
    0.10.2, 2026-12-07). Where a check fails, or a value is traced, each goes through
    :func:`require_values`, which names the first failure.
    """
    if _hold_everywhere(tuple((value, c) for _, value, c in checks)):
        return
    # ok and rule given directly: the one-program check above already spoke for each value.
    for name, value, constraint in checks:
        require_values(where, name, value, constraint.holds(value), rule=constraint.rule)


def _hold_everywhere(checks: tuple[tuple[object, Constraint], ...]) -> bool:
    """True when every value is a concrete JAX array and satisfies its constraint at every
    entry; False when one fails, when any value is traced or not a JAX array, or when one
    holds a subnormal entry (see :func:`_any_subnormal`): the caller then checks value by
    value.

    Only JAX arrays take this path: a Python or NumPy number is compared by Python or NumPy
    in eager code (1e-300 > 0 there, while as a float32 array it is 0), and jitting the
    check must not change which values pass.
    """
    values = tuple(value for value, _ in checks)
    if not values or not all(
        isinstance(v, jax.Array) and not isinstance(v, jax.core.Tracer) for v in values
    ):
        return False
    # One program needs its inputs on one set of devices, and its verdicts readable here;
    # anything else is checked value by value, as before.
    if len({frozenset(v.devices()) for v in values}) != 1 or not all(
        v.is_fully_addressable for v in values
    ):
        return False
    verdicts = _everywhere_program(tuple(c for _, c in checks))(*values)
    # Inside a trace (jit, grad) the call is staged even on concrete arrays: no verdict
    # exists yet, and require_values decides as it always has.
    if isinstance(verdicts, jax.core.Tracer):
        return False
    return bool(np.all(np.asarray(verdicts)))


@functools.cache
def _everywhere_program(constraints: tuple[Constraint, ...]):
    # The same primitives as evaluating each constraint eagerly (comparisons, isfinite,
    # and, all: exact on every number but a subnormal, which the last entry reports),
    # traced into one program per tuple of constraints and shapes. A tiny XLA:CPU compile
    # costs about 20 ms whatever its size (the four eager ops of Normal's checks 92 ms, the
    # same four jitted together 26 ms: single runs, 2-core CPU, jaxlib 0.10.2), so the
    # number of programs is what costs.
    def everywhere(*values):
        verdicts = [jnp.all(c.holds(v)) for c, v in zip(constraints, values, strict=True)]
        return jnp.stack([*verdicts, ~jnp.any(jnp.stack([_any_subnormal(v) for v in values]))])

    return jax.jit(everywhere)


def _any_subnormal(x) -> jax.Array:
    """Whether a float array holds a subnormal entry, read from its bits.

    Where one does, the one-program verdict is not used: an eager XLA:CPU comparison may
    read a subnormal as 0 (1e-45 > 0 is false eagerly in float32) while the same comparison
    inside a program may not, and which one happens depends on the op and the dtype. The
    value is then checked primitive by primitive, exactly as before. The bits decide, not a
    comparison, so denormals-are-zero cannot hide the subnormal from this test.
    """
    if not jnp.issubdtype(x.dtype, jnp.floating):
        return jnp.zeros((), bool)
    width = jnp.dtype(x.dtype).itemsize * 8
    mantissa = (1 << jnp.finfo(x.dtype).nmant) - 1
    exponent = ((1 << (width - 1)) - 1) & ~mantissa
    uint = jnp.dtype(f"uint{width}")  # float8 formats too: as_float keeps them
    bits = jax.lax.bitcast_convert_type(x, uint)
    return jnp.any(((bits & uint.type(exponent)) == 0) & ((bits & uint.type(mantissa)) != 0))


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
      >>> f(-1.0)  # raises ValueError: Normal: scale must be > 0 ...; got scale = -1.0
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
