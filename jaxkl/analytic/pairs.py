"""Which kernel computes KL(a ‖ b) for each pair of families: one table, registered.

A kernel takes raw parameter arrays; a row of :data:`PAIRS` says which kernel serves a
pair of distribution types and how its arguments are read from the two distributions.
Importing :mod:`jaxkl.analytic` registers every row with :func:`register_kl`, which
refuses a pair registered twice, so the table cannot silently shadow itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from jaxkl.analytic import (
    cross_family,
    discrete,
    gamma_family,
    gaussian,
    independent,
    location_scale,
)
from jaxkl.analytic.registry import register_kl
from jaxkl.distributions.bernoulli import Bernoulli
from jaxkl.distributions.beta import Beta
from jaxkl.distributions.categorical import Categorical
from jaxkl.distributions.dirichlet import Dirichlet
from jaxkl.distributions.exponential import Exponential
from jaxkl.distributions.gamma import Gamma
from jaxkl.distributions.gumbel import Gumbel
from jaxkl.distributions.independent import Independent
from jaxkl.distributions.laplace import Laplace
from jaxkl.distributions.lognormal import LogNormal
from jaxkl.distributions.mvn_diag import MultivariateNormalDiag
from jaxkl.distributions.mvn_tril import MultivariateNormalTriL
from jaxkl.distributions.normal import Normal
from jaxkl.distributions.poisson import Poisson
from jaxkl.distributions.uniform import Uniform

__all__ = ["KERNEL_PARAMETERS", "PAIRS", "Pair"]

Arguments = tuple[tuple, dict]


def in_order(a, b, names_a, names_b) -> Arguments:
    """a's parameters then b's, positionally."""
    return (*(getattr(a, n) for n in names_a), *(getattr(b, n) for n in names_b)), {}


def _stored_scale(d, name: str, suffix: str) -> dict:
    """``{name+suffix: σ}`` or ``{log_name+suffix: log σ}``: the form ``d`` stores."""
    log = getattr(d, f"_log_{name}")
    if log is not None:
        return {f"log_{name}{suffix}": log}
    return {f"{name}{suffix}": getattr(d, f"_{name}")}


def stored_scale_form(a, b, names_a, names_b) -> Arguments:
    """Location, and the scale in the form each distribution stores: a scale given as
    its log reaches the Gaussian kernels as ``log_scale_*`` (no exp, no underflow)."""
    (loc_a, scale_a), (loc_b, scale_b) = names_a, names_b
    kwargs = {f"{loc_b}_b": getattr(b, loc_b)}
    kwargs |= _stored_scale(a, scale_a, "_a") | _stored_scale(b, scale_b, "_b")
    return (getattr(a, loc_a),), kwargs


def same_event(a, b) -> None:
    if a.event_shape != b.event_shape:
        raise ValueError(
            f"KL({type(a).__name__} ‖ {type(b).__name__}): event sizes differ: "
            f"a has d={a.event_shape[0]}, b has d={b.event_shape[0]}"
        )


def same_categories(a, b) -> None:
    if a.num_categories != b.num_categories:
        raise ValueError(
            "kl(Categorical, Categorical): number of categories differs: "
            f"a has K={a.num_categories}, b has K={b.num_categories}"
        )


class Pair(NamedTuple):
    """KL(type_a ‖ type_b) = kernel(*args, **kwargs) with ``read(a, b, names_a, names_b)``
    giving the arguments from :data:`KERNEL_PARAMETERS`; ``read=None``: the kernel takes
    the two distributions themselves. ``check(a, b)`` runs first when given."""

    type_a: type
    type_b: type
    kernel: Callable
    read: Callable[..., Arguments] | None = in_order
    check: Callable[[object, object], None] | None = None


MVN_DIAG, MVN_TRIL = MultivariateNormalDiag, MultivariateNormalTriL

PAIRS: tuple[Pair, ...] = (
    # Same family.
    Pair(Bernoulli, Bernoulli, discrete.bernoulli),
    Pair(Beta, Beta, gamma_family.beta),
    Pair(Categorical, Categorical, discrete.categorical, check=same_categories),
    Pair(Dirichlet, Dirichlet, gamma_family.dirichlet),
    Pair(Exponential, Exponential, gamma_family.exponential),
    Pair(Gamma, Gamma, gamma_family.gamma),
    Pair(Gumbel, Gumbel, location_scale.gumbel),
    Pair(Laplace, Laplace, location_scale.laplace),
    Pair(LogNormal, LogNormal, gaussian.lognormal, stored_scale_form),
    Pair(MVN_DIAG, MVN_DIAG, gaussian.mvn_diag, stored_scale_form, check=same_event),
    Pair(MVN_TRIL, MVN_TRIL, gaussian.mvn_tril, check=same_event),
    Pair(Normal, Normal, gaussian.normal, stored_scale_form),
    Pair(Poisson, Poisson, discrete.poisson),
    Pair(Uniform, Uniform, location_scale.uniform),
    # Across families.
    Pair(Bernoulli, Poisson, discrete.bernoulli_poisson),
    Pair(Beta, Uniform, cross_family.beta_uniform),
    Pair(Exponential, Gamma, gamma_family.exponential_gamma),
    Pair(Exponential, Normal, cross_family.exponential_normal),
    Pair(Gamma, Exponential, gamma_family.gamma_exponential),
    Pair(Gamma, Normal, cross_family.gamma_normal),
    Pair(Laplace, Normal, cross_family.laplace_normal),
    Pair(MVN_DIAG, MVN_TRIL, gaussian._mvn_diag_tril, check=same_event),
    Pair(MVN_TRIL, MVN_DIAG, gaussian._mvn_tril_diag, check=same_event),
    Pair(Normal, Laplace, cross_family.normal_laplace),
    Pair(Uniform, Normal, cross_family.uniform_normal),
    # Through another registered pair.
    Pair(Independent, Independent, independent._kl_independent_independent, read=None),
    Pair(Independent, MVN_DIAG, independent._kl_independent_mvndiag, read=None),
    Pair(MVN_DIAG, Independent, independent._kl_mvndiag_independent, read=None),
    # +inf: a's support is never inside b's.
    *(
        Pair(type_a, type_b, cross_family._infinite_kl, read=None)
        for type_a, type_b in cross_family.SUPPORT_MISMATCH_PAIRS
    ),
)


# The attributes each family's kernels take, in the order of the kernels' arguments (a
# kernel for (a, b) takes a's, then b's): read from the family's own parameter table by
# ``canonical_parameters`` (a scale stored as its log is still passed as ``scale``; the
# Gaussian pairs' ``stored_scale_form`` reads the stored form instead).
KERNEL_PARAMETERS: dict[type, tuple[str, ...]] = {
    family: family.canonical_parameters()
    for pair in PAIRS
    if pair.read is not None
    for family in (pair.type_a, pair.type_b)
}


def _adapter(pair: Pair) -> Callable:
    """``fn(a, b)`` for the registry: check, read the arguments, call the kernel."""
    if pair.read is None and pair.check is None:
        return pair.kernel
    names_a = KERNEL_PARAMETERS.get(pair.type_a, ())
    names_b = KERNEL_PARAMETERS.get(pair.type_b, ())

    def kl_pair(a, b):
        if pair.check is not None:
            pair.check(a, b)
        if pair.read is None:
            return pair.kernel(a, b)
        args, kwargs = pair.read(a, b, names_a, names_b)
        return pair.kernel(*args, **kwargs)

    # The registry names an existing entry by these when it refuses to replace it.
    kl_pair.__name__ = f"kl_{pair.type_a.__name__}_{pair.type_b.__name__}"
    kl_pair.__qualname__ = f"PAIRS[{pair.type_a.__name__}, {pair.type_b.__name__}]"
    return kl_pair


for _pair in PAIRS:
    register_kl(_pair.type_a, _pair.type_b)(_adapter(_pair))
