"""Conversion between jaxkl distributions and numpyro, distrax and TFP-on-JAX ones."""

from __future__ import annotations

from jaxkl.convert.foreign import ForeignDistribution
from jaxkl.convert.libraries import LIBRARIES, Library, library_of
from jaxkl.distributions.base import Distribution

__all__ = [
    "UnsupportedDistribution",
    "as_jaxkl",
    "as_sampleable",
    "converters_listing",
    "from_distrax",
    "from_numpyro",
    "from_tfp",
    "qualified_name",
    "to_distrax",
    "to_numpyro",
    "to_tfp",
]


class UnsupportedDistribution(TypeError):
    """A foreign distribution whose family jaxkl has no converter for."""


def qualified_name(obj) -> str:
    """``numpyro.distributions.continuous.StudentT`` rather than a bare class name."""
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def converters_listing() -> str:
    """One line per library: the classes its ``from_…`` converter knows."""
    return "; ".join(
        f"jaxkl.convert.from_{lib.name}: {', '.join(sorted(lib.from_table))}"
        for lib in LIBRARIES.values()
    )


def _from(lib: Library, d) -> Distribution:
    if library_of(d) is not lib:
        raise TypeError(
            f"jaxkl.convert.from_{lib.name}: expected a {lib.name} distribution; got "
            f"{qualified_name(d)}"
        )
    build = lib.from_table.get(type(d).__name__)
    out = None if build is None else build(d, lambda inner: _from(lib, inner))
    if out is None:
        raise UnsupportedDistribution(
            f"jaxkl.convert.from_{lib.name}: no converter for {qualified_name(d)}. "
            f"Converters: {converters_listing()}. Without one, the Monte Carlo estimators "
            "still take it (its own sample and log_prob); jaxkl.kl needs a jaxkl family."
        )
    return out


def _to(lib: Library, d: Distribution):
    if not isinstance(d, Distribution):
        raise TypeError(
            f"jaxkl.convert.to_{lib.name}: expected a jaxkl distribution; got {qualified_name(d)}"
        )
    if isinstance(d, ForeignDistribution):
        return d.inner
    for cls in type(d).__mro__:
        build = lib.to_table.get(cls)
        if build is not None:
            return build(d, lambda inner: _to(lib, inner))
    known = ", ".join(sorted(c.__name__ for c in lib.to_table))
    raise UnsupportedDistribution(
        f"jaxkl.convert.to_{lib.name}: {lib.name} has no counterpart for "
        f"{type(d).__name__} (known: {known})"
    )


def from_numpyro(d) -> Distribution:
    """The jaxkl distribution equal to numpyro's ``d`` (same parameters, same law).

    Knows Normal, LogNormal, Laplace, Gumbel, Uniform, Exponential, Gamma, Beta,
    Dirichlet, Poisson, Bernoulli and Categorical (logits or probs), MultivariateNormal
    (any parameterisation: numpyro keeps ``scale_tril``), Independent (``to_event``) and
    MixtureSameFamily.

    Raises:
      UnsupportedDistribution: another family; the message lists every converter.

    Example:
      >>> import jax.numpy as jnp
      >>> import numpyro.distributions as nd
      >>> from_numpyro(nd.Normal(jnp.zeros(3), 1.0).to_event(1)).event_shape
      (3,)
    """
    return _from(LIBRARIES["numpyro"], d)


def from_distrax(d) -> Distribution:
    """The jaxkl distribution equal to distrax's ``d``.

    Knows Normal, Laplace, Gumbel, Uniform, Gamma, Beta, Dirichlet, Bernoulli,
    Categorical, MultivariateNormalDiag, MultivariateNormalTri (lower factor),
    Independent and MixtureSameFamily.
    """
    return _from(LIBRARIES["distrax"], d)


def from_tfp(d) -> Distribution:
    """The jaxkl distribution equal to TFP-on-JAX's ``d`` (``tfp.substrates.jax``).

    Knows jaxkl's 14 families under TFP's names (MultivariateNormalDiag and
    MultivariateNormalTriL with explicit scales; ``rate`` or ``log_rate``; ``logits`` or
    ``probs``), Independent and MixtureSameFamily.
    """
    return _from(LIBRARIES["tfp"], d)


def to_numpyro(d: Distribution):
    """numpyro's distribution for jaxkl's ``d`` (MultivariateNormalDiag becomes
    ``Normal(loc, scale_diag).to_event(1)``, numpyro's idiom).

    Example:
      >>> import jaxkl
      >>> type(to_numpyro(jaxkl.Bernoulli(0.3))).__name__
      'BernoulliLogits'
    """
    return _to(LIBRARIES["numpyro"], d)


def to_distrax(d: Distribution):
    """distrax's distribution for jaxkl's ``d`` (distrax has no LogNormal, Exponential
    or Poisson)."""
    return _to(LIBRARIES["distrax"], d)


def to_tfp(d: Distribution):
    """TFP-on-JAX's distribution for jaxkl's ``d``."""
    return _to(LIBRARIES["tfp"], d)


def as_jaxkl(d):
    """``d`` itself if it is a jaxkl distribution, its conversion if it is a foreign one.

    Anything else (an array, a callable log density) is returned unchanged.

    Raises:
      UnsupportedDistribution: a foreign distribution of a family jaxkl does not know.
    """
    lib = None if isinstance(d, Distribution) else library_of(d)
    return d if lib is None else _from(lib, d)


def as_sampleable(d):
    """Like :func:`as_jaxkl`, but a foreign family jaxkl does not know is wrapped in a
    :class:`ForeignDistribution` (its own sampler and density) instead of refused."""
    lib = None if isinstance(d, Distribution) else library_of(d)
    if lib is None:
        return d
    try:
        return _from(lib, d)
    except UnsupportedDistribution:
        return ForeignDistribution(d, lib.name)
