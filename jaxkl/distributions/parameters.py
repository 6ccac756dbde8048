"""A family's parameters, declared: for each, its event rank and the values it may take.

A family lists its parameters once, as ``parameters = {name: spec}`` with the specs below
(``{"loc": real(), "scale": positive()}``). :class:`jaxkl.distributions.Distribution`
derives from that table the conversion to one float dtype, the broadcasting of batch
axes, the value checks with their messages ("Normal: scale must be > 0 and finite (not
NaN or ±inf); got scale = -1.0") and, through :func:`jaxkl.checked`, the same checks at
run time inside ``jit``. Relations between parameters (Uniform's high > low) and shape
rules (Dirichlet's K ≥ 2) stay in the family's ``_check_values``/``_check_shapes``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxkl._checks import FINITE, NOT_NAN, NOT_NAN_OR_POS_INF, POSITIVE_FINITE, Constraint

__all__ = [
    "PROBABILITY",
    "Parameter",
    "category_logits",
    "lower_cholesky",
    "not_nan",
    "positive",
    "real",
]


@dataclasses.dataclass(frozen=True)
class Parameter:
    """One parameter: ``event_rank`` trailing axes are event axes (0 scalar per batch
    entry, 1 a vector ``[..., d]``, 2 a matrix ``[..., d, d]``); every constraint in
    ``constraints`` is checked in turn, each failure with its own message."""

    event_rank: int = 0
    constraints: tuple[Constraint, ...] = ()


PROBABILITY = Constraint("be in [0, 1]", lambda x: (x >= 0) & (x <= 1))
# All -inf in a row of logits leaves no probability mass to normalise.
SOME_MASS_PER_ROW = Constraint(
    "have at least one entry > -inf in every row (all -inf leaves no probability mass)",
    lambda x: jnp.any(x > -jnp.inf, axis=-1, keepdims=True),
)


# Each mask is one compiled program, so eager construction compiles once per shape rather
# than once per primitive.
@jax.jit
def _diagonal_positive(tril):
    diagonal = jnp.broadcast_to(np.eye(tril.shape[-1], dtype=bool), tril.shape)
    return ~diagonal | (tril > 0)


@jax.jit
def _upper_zero(tril):
    d = tril.shape[-1]
    upper = jnp.broadcast_to(np.triu(np.ones((d, d), dtype=bool), k=1), tril.shape)
    return ~upper | (tril == 0)


DIAGONAL_POSITIVE = Constraint("have a diagonal > 0", _diagonal_positive)
LOWER_TRIANGULAR = Constraint(
    "be lower triangular (entries above the diagonal exactly zero)", _upper_zero
)


def real(event_rank: int = 0) -> Parameter:
    """Finite: not NaN, not ±inf."""
    return Parameter(event_rank, (FINITE,))


def positive(event_rank: int = 0) -> Parameter:
    """> 0 and finite; NaN fails (one message for every scale, rate and concentration)."""
    return Parameter(event_rank, (POSITIVE_FINITE,))


def not_nan(event_rank: int = 0) -> Parameter:
    """Anything but NaN: ±inf allowed (Bernoulli logits ±inf are the point masses)."""
    return Parameter(event_rank, (NOT_NAN,))


def category_logits(event_rank: int = 1) -> Parameter:
    """Unnormalised log-probabilities over the last axis: not NaN or +inf, and every row
    with an entry > -inf (-inf masks a category)."""
    return Parameter(event_rank, (NOT_NAN_OR_POS_INF, SOME_MASS_PER_ROW))


def lower_cholesky() -> Parameter:
    """A lower Cholesky factor ``[..., d, d]``: finite, diagonal > 0, zero above it."""
    return Parameter(2, (FINITE, DIAGONAL_POSITIVE, LOWER_TRIANGULAR))
