"""KL between Independent distributions: the base KL summed over the reinterpreted axes."""

from __future__ import annotations

import jax.numpy as jnp

from jaxkl.analytic.registry import NoAnalyticKL, kl
from jaxkl.distributions.independent import Independent
from jaxkl.distributions.mvn_diag import MultivariateNormalDiag
from jaxkl.distributions.normal import Normal

__all__: list[str] = []


def _kl_independent_independent(a: Independent, b: Independent):
    """KL(Independent(p, n) ‖ Independent(q, n)) = Σ over the n reinterpreted axes of KL(p‖q).

    The coordinates of the event are independent under both laws, so the KL of the
    product is the sum of the per-coordinate KLs. The base pair dispatches through the
    registry; ``NoAnalyticKL`` from there propagates unchanged.

    Raises:
      ValueError: the two reinterpreted_batch_ndims differ or the event shapes differ.
    """
    n = a.reinterpreted_batch_ndims
    if n != b.reinterpreted_batch_ndims:
        raise ValueError(
            "KL(Independent ‖ Independent): reinterpreted_batch_ndims must be equal; "
            f"got {n} and {b.reinterpreted_batch_ndims}"
        )
    if a.event_shape != b.event_shape:
        raise ValueError(
            "KL(Independent ‖ Independent): event shapes must be equal; "
            f"got {a.event_shape} and {b.event_shape}"
        )
    per_coordinate = kl(a.base, b.base)
    # Equal event shapes make the last n axes of the base KL exactly the reinterpreted ones.
    return jnp.sum(per_coordinate, axis=tuple(range(-n, 0))) if n else per_coordinate


def _as_mvn_diag(d: Independent, other) -> MultivariateNormalDiag:
    """Independent(Normal, 1) is MultivariateNormalDiag under another name."""
    if isinstance(d.base, Normal) and d.reinterpreted_batch_ndims == 1:
        base = d.base
        if base._log_scale is not None:  # keep the log form: the kernel uses it directly
            return MultivariateNormalDiag(base.loc, log_scale_diag=base.log_scale, validate=False)
        return MultivariateNormalDiag(base.loc, base.scale, validate=False)
    raise NoAnalyticKL(
        f"no closed-form KL between Independent({type(d.base).__name__}, "
        f"{d.reinterpreted_batch_ndims}) and {type(other).__name__}: only "
        "Independent(Normal, 1) is a MultivariateNormalDiag. Use jaxkl.mc_kl."
    )


def _kl_independent_mvndiag(a: Independent, b: MultivariateNormalDiag):
    """KL(Independent(Normal, 1) ‖ MultivariateNormalDiag): the same law, its kernel."""
    return kl(_as_mvn_diag(a, b), b)


def _kl_mvndiag_independent(a: MultivariateNormalDiag, b: Independent):
    """KL(MultivariateNormalDiag ‖ Independent(Normal, 1)): the same law, its kernel."""
    return kl(a, _as_mvn_diag(b, a))
