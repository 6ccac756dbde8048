"""A fit loop over optax: ``lax.scan`` over steps, one key per step, a loss history.

The loop is a pure function of arrays, so it composes: ``jax.jit`` compiles all steps into
one program (the step is traced once, whatever the number of steps), and ``jax.vmap``
runs many independent fits at once. The key of step t is ``fold_in(key, t)``, so a fit's
result depends only on its own key, never on how fits are batched.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxkl._keys import as_key
from jaxkl.estimators.estimate import Estimate

__all__ = ["FitResult", "fit", "make_fit", "make_step"]

LossFn = Callable[..., Any]


class FitResult(NamedTuple):
    """The outcome of :func:`fit` (a pytree).

    Attributes:
      params: the parameters after the last step.
      opt_state: the optimiser state after the last step.
      losses: the losses, one per step, stacked on a leading ``[num_steps]`` axis: an
        ``Estimate`` (or whatever estimate type ``loss_fn`` returns) whose ``value`` and
        ``stderr`` are ``[num_steps]`` (``num_samples`` and ``dof`` stay ints), or a
        ``[num_steps]`` array for a scalar loss; entry t is the loss at the parameters
        *before* update t, from the samples that produced that update's gradient.
      params_trace: with ``trace_params=True``, the parameters before each update,
        stacked ``[num_steps, ...]``; otherwise ``None``.
      metrics: with a ``metrics_fn``, its output at the parameters before each update,
        stacked ``[num_steps, ...]``; otherwise ``None``.
    """

    params: Any
    opt_state: Any
    losses: Any
    params_trace: Any = None
    metrics: Any = None


def _strong(tree):
    """Arrays with their weak types made strong (Python scalars become float32/int32 arrays).

    A weakly typed input (``jnp.asarray(0.0)``) comes back from an optimiser update strongly
    typed; fixing the types up front keeps a jitted step from tracing again on its second
    call.
    """

    def fix(x):
        x = jnp.asarray(x)
        return jnp.asarray(x, dtype=x.dtype) if x.weak_type else x

    return jax.tree_util.tree_map(fix, tree)


def _value_and_grad(loss_fn: LossFn, params, key, args):
    def value(p):
        out = loss_fn(p, key, *args)
        v = out.value if isinstance(out, Estimate) else out
        if not isinstance(out, Estimate) and not _is_scalar_array(v):
            raise TypeError(
                "fit: loss_fn must return a scalar (a float or 0-d array) or a jaxkl Estimate "
                f"with a scalar value (e.g. jaxkl.fit.reverse_kl); got {type(out).__name__}"
            )
        if jnp.shape(v) != ():
            raise ValueError(
                f"fit: loss_fn's value must be a scalar; got shape {jnp.shape(v)} "
                "(reduce a batch of losses with a sum or mean first)"
            )
        return v, out

    (_, out), grads = jax.value_and_grad(value, has_aux=True)(params)
    # An Estimate's num_samples and dof are static pytree metadata: they travel through
    # jit and scan unchanged. A plain scalar loss is returned as it is.
    return out, grads


def _is_scalar_array(v) -> bool:
    return isinstance(v, jax.Array | np.ndarray | float | int | np.generic)


def make_step(loss_fn: LossFn, optimizer: optax.GradientTransformation):
    """One jitted optimiser step, for driving a fit from Python (logging, early stopping).

    Args:
      loss_fn: ``(params, key, *args) -> Estimate`` with a scalar value, or a scalar.
      optimizer: an optax ``GradientTransformation``.

    Returns:
      ``step(params, opt_state, key, *args) -> (params, opt_state, estimate)``, jitted; it
      is traced once per set of argument shapes and dtypes (weakly typed inputs such as
      Python floats are made strong first, so the step's own outputs fit the same trace;
      pass keys of one kind, e.g. always typed keys, to avoid a second trace).

    Example:
      >>> import jax, jax.numpy as jnp, optax, jaxkl
      >>> from jaxkl.fit import make_step, reverse_kl
      >>> p = jaxkl.Normal(2.0, 1.0)
      >>> loss = lambda m, key: reverse_kl(key, jaxkl.Normal(m, 1.0), p, 16)
      >>> opt = optax.sgd(0.1)
      >>> step = make_step(loss, opt)
      >>> m, state = jnp.zeros(()), opt.init(jnp.zeros(()))
      >>> for t in range(3):
      ...     m, state, est = step(m, state, jax.random.key(t))
    """

    @jax.jit
    def compiled(params, opt_state, key, *args):
        est, grads = _value_and_grad(loss_fn, params, as_key(key), args)
        updates, opt_state = _optimizer_update(optimizer, grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, est

    def step(params, opt_state, key, *args):
        return compiled(_strong(params), _strong(opt_state), key, *args)

    return step


def _optimizer_update(optimizer, grads, state, params):
    """``optimizer.update`` under the standard dtype promotion rules.

    optax's bias correction raises a float decay to the int32 step count (Adam's
    β^t), a promotion that ``jax_numpy_dtype_promotion="strict"`` rejects: optax's code,
    so it keeps the rules it was written for, whatever the caller has configured.
    """
    with jax.numpy_dtype_promotion("standard"):
        return optimizer.update(grads, state, params)


def fit(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    params,
    key,
    *args,
    num_steps: int,
    trace_params: bool = False,
    metrics_fn: Callable[..., Any] | None = None,
) -> FitResult:
    """Minimise ``loss_fn`` with ``optimizer`` for ``num_steps`` steps under ``lax.scan``.

    Step t draws its Monte Carlo samples with ``fold_in(key, t)``, takes the gradient of
    the estimate's ``value`` with respect to ``params`` and applies the optimiser update.
    Pure and traceable: wrap it in ``jax.jit`` (see :func:`make_fit`) and ``jax.vmap``
    over ``params``, ``key`` and ``args`` for batched fits.

    Args:
      loss_fn: ``(params, key, *args) -> Estimate`` with a scalar ``value``, e.g.
        ``lambda prm, key: reverse_kl(key, gaussian_from_params(prm), p, 64)``, or a
        plain scalar loss (e.g. an exact ``jaxkl.kl``).
      optimizer: an optax ``GradientTransformation`` (learning-rate schedules index by
        the optimiser's own step count, as usual).
      params: the initial parameters, a pytree of arrays.
      key: typed key, legacy key or int seed.
      *args: extra arrays passed to ``loss_fn`` (e.g. the target's parameters, so that one
        compiled fit serves many targets and ``vmap`` can batch over them).
      num_steps: number of updates (static, keyword only), ≥ 1.
      trace_params: also return the parameters before every update.
      metrics_fn: optional ``(params, *args) -> pytree of arrays``, evaluated before every
        update and returned stacked (e.g. the exact KL along the trajectory); it does not
        enter the gradient.

    Returns:
      ``FitResult(params, opt_state, losses, params_trace, metrics)``; ``losses.value``
      and ``losses.stderr`` are ``[num_steps]``.

    Example:
      >>> import optax, jaxkl
      >>> from jaxkl.fit import fit, reverse_kl
      >>> p = jaxkl.Normal(2.0, 1.0)
      >>> loss = lambda m, key: reverse_kl(key, jaxkl.Normal(m, 1.0), p, 16, gradient="stl")
      >>> res = fit(loss, optax.adam(0.1), 0.0, 0, num_steps=300)
      >>> res.losses.value.shape, round(float(res.params), 2)
      ((300,), 2.0)
    """
    if not isinstance(num_steps, int | np.integer) or isinstance(num_steps, bool):
        raise TypeError(f"fit: num_steps must be a Python int; got {type(num_steps).__name__}")
    if num_steps < 1:
        raise ValueError(f"fit: num_steps must be >= 1; got {num_steps}")
    key = as_key(key)
    params = _strong(params)
    opt_state = optimizer.init(params)

    def body(carry, t):
        prm, state = carry
        est, grads = _value_and_grad(loss_fn, prm, jax.random.fold_in(key, t), args)
        updates, state = _optimizer_update(optimizer, grads, state, prm)
        new = optax.apply_updates(prm, updates)
        metrics = None if metrics_fn is None else metrics_fn(prm, *args)
        return (new, state), (est, prm if trace_params else None, metrics)

    (params, opt_state), (losses, trace, metrics) = jax.lax.scan(
        body, (params, opt_state), jnp.arange(num_steps)
    )
    return FitResult(params, opt_state, losses, trace, metrics)


def make_fit(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    num_steps: int,
    *,
    trace_params: bool = False,
    metrics_fn: Callable[..., Any] | None = None,
    batched: bool = False,
):
    """A compiled :func:`fit`: ``(params, key, *args) -> FitResult``.

    The whole optimisation (``num_steps`` steps) is one XLA program; a second call with
    arguments of the same shapes reuses it without tracing again.

    Args:
      loss_fn, optimizer, num_steps, trace_params, metrics_fn: as in :func:`fit`.
      batched: vmap over a leading axis of ``params``, ``key`` and every extra argument,
        so B independent fits run as one program (keys ``[B]``).

    Returns:
      A jitted function ``(params, key, *args) -> FitResult``.

    Example:
      >>> import jax, jax.numpy as jnp, optax, jaxkl
      >>> from jaxkl.fit import make_fit, reverse_kl
      >>> loss = lambda m, key, mu: reverse_kl(key, jaxkl.Normal(m, 1.0),
      ...                                      jaxkl.Normal(mu, 1.0), 16, gradient="stl")
      >>> run = make_fit(loss, optax.adam(0.1), 300, batched=True)
      >>> res = run(jnp.zeros(3), jax.random.split(jax.random.key(0), 3),
      ...           jnp.array([-1.0, 0.5, 2.0]))
      >>> res.params.round(2).tolist()
      [-1.0, 0.5, 2.0]
    """
    one = functools.partial(
        fit,
        loss_fn,
        optimizer,
        num_steps=num_steps,
        trace_params=trace_params,
        metrics_fn=metrics_fn,
    )

    def run(params, key, *args):
        return one(params, key, *args)

    return jax.jit(jax.vmap(run) if batched else run)
