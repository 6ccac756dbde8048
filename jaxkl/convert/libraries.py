"""What jaxkl knows of each foreign library: how to recognise it, draw from it, convert.

One :class:`Library` value per library. Its tables map the library's class names to a
builder of the jaxkl distribution (``from_table``) and jaxkl types to a builder of the
library's (``to_table``); builders import the library lazily, so none of the three is a
runtime dependency of jaxkl.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable

import jax.numpy as jnp

from jaxkl import distributions as jd

__all__ = ["LIBRARIES", "Library", "library_of"]


@dataclasses.dataclass(frozen=True)
class Library:
    """A foreign distribution library: recognition, key convention and converters."""

    name: str  # as in the public converters: from_<name> / to_<name>
    module_root: str  # the top-level package its distribution classes live in
    distributions_module: str  # where to_<name> finds the classes it builds
    draw: Callable  # (dist, key, sample_shape) -> samples, in the library's convention
    reparameterized: Callable  # dist -> bool, from the library's own flag
    from_table: dict[str, Callable]
    to_table: dict[type, Callable]

    def module(self):
        return importlib.import_module(self.distributions_module)


def library_of(obj) -> Library | None:
    """The :class:`Library` whose classes ``obj`` is an instance of, or None."""
    root = type(obj).__module__.split(".", 1)[0]
    for lib in LIBRARIES.values():
        if root == lib.module_root:
            return lib
    return None


def _param(d, name: str):
    """A TFP parameter as given to its constructor (TFP keeps them in ``parameters``)."""
    return d.parameters[name]


def _from_probs_or_logits(cls, probs, logits):
    """``cls(probs=…)`` when the foreign object was built from probabilities (jaxkl takes
    their log itself, exact zeros giving −inf), else ``cls(logits)``."""
    return cls(logits) if probs is None else cls(probs=probs)


# Families whose parameters every library names as jaxkl does, in jaxkl's order.
_SIMPLE: dict[type, tuple[str, ...]] = {
    jd.Normal: ("loc", "scale"),
    jd.LogNormal: ("loc", "scale"),
    jd.Laplace: ("loc", "scale"),
    jd.Gumbel: ("loc", "scale"),
    jd.Uniform: ("low", "high"),
    jd.Exponential: ("rate",),
    jd.Gamma: ("concentration", "rate"),
    jd.Beta: ("concentration1", "concentration0"),
    jd.Dirichlet: ("concentration",),
    jd.Poisson: ("rate",),
}


def _simple_from(families, rename=None) -> dict[str, Callable]:
    """Builders of jaxkl's ``families`` from objects with the same attribute names."""
    rename = rename or {}

    def builder(cls, fields):
        return lambda d, c: cls(*(getattr(d, rename.get(f, f)) for f in fields))

    return {cls.__name__: builder(cls, _SIMPLE[cls]) for cls in families}


def _simple_to(module: Callable, families) -> dict[type, Callable]:
    """Builders of the library's namesakes of jaxkl's ``families`` (same argument order)."""

    def builder(cls, fields):
        return lambda d, c: getattr(module(), cls.__name__)(*(getattr(d, f) for f in fields))

    return {cls: builder(cls, _SIMPLE[cls]) for cls in families}


# ------------------------------------------------------------------------- numpyro
def _numpyro_from() -> dict[str, Callable]:
    def mixture(d, convert):
        return jd.Mixture(d.mixing_distribution.logits, convert(d.component_distribution))

    def independent(d, convert):
        return jd.Independent(convert(d.base_dist), d.reinterpreted_batch_ndims)

    return {
        **_simple_from(_SIMPLE),
        "BernoulliLogits": lambda d, c: jd.Bernoulli(d.logits),
        # From probs, not numpyro's logits: those are clamped to [eps, 1 − eps] first, so
        # p = 0 would become a logit of −16 (float32) instead of −inf.
        "BernoulliProbs": lambda d, c: jd.Bernoulli(probs=d.probs),
        "CategoricalLogits": lambda d, c: jd.Categorical(d.logits),
        "CategoricalProbs": lambda d, c: jd.Categorical(probs=d.probs),
        "MultivariateNormal": lambda d, c: jd.MultivariateNormalTriL(d.loc, d.scale_tril),
        "Independent": independent,
        "MixtureSameFamily": mixture,
    }


def _numpyro_to() -> dict[type, Callable]:
    def m():
        return importlib.import_module("numpyro.distributions")

    return {
        **_simple_to(m, _SIMPLE),
        jd.Bernoulli: lambda d, c: m().BernoulliLogits(d.logits),
        jd.Categorical: lambda d, c: m().CategoricalLogits(d.logits),
        # numpyro has no diagonal MVN class: its idiom is Normal(...).to_event(1).
        jd.MultivariateNormalDiag: lambda d, c: m().Normal(d.loc, d.scale_diag).to_event(1),
        jd.MultivariateNormalTriL: lambda d, c: m().MultivariateNormal(
            d.loc, scale_tril=d.scale_tril
        ),
        jd.Independent: lambda d, c: m().Independent(c(d.base), d.reinterpreted_batch_ndims),
        jd.Mixture: lambda d, c: m().MixtureSameFamily(
            m().CategoricalLogits(d.mixture_logits), c(d.components)
        ),
    }


# ------------------------------------------------------------------------- distrax
_DISTRAX_LACKS = (jd.LogNormal, jd.Exponential, jd.Poisson)


def _distrax_from() -> dict[str, Callable]:
    def tri(d, convert):
        if not d.is_lower:
            return None  # an upper factor is not the Cholesky factor jaxkl keeps
        return jd.MultivariateNormalTriL(d.loc, d.scale_tri)

    return {
        **_simple_from([f for f in _SIMPLE if f not in (*_DISTRAX_LACKS, jd.Beta)]),
        **_simple_from([jd.Beta], rename={"concentration1": "alpha", "concentration0": "beta"}),
        "Bernoulli": lambda d, c: _from_probs_or_logits(jd.Bernoulli, d._probs, d.logits),
        "Categorical": lambda d, c: _from_probs_or_logits(jd.Categorical, d._probs, d.logits),
        "MultivariateNormalDiag": lambda d, c: jd.MultivariateNormalDiag(d.loc, d.scale_diag),
        "MultivariateNormalTri": tri,
        "Independent": lambda d, c: jd.Independent(c(d.distribution), d.reinterpreted_batch_ndims),
        "MixtureSameFamily": lambda d, c: jd.Mixture(
            d.mixture_distribution.logits, c(d.components_distribution)
        ),
    }


def _distrax_to() -> dict[type, Callable]:
    def m():
        return importlib.import_module("distrax")

    return {
        **_simple_to(m, [f for f in _SIMPLE if f not in _DISTRAX_LACKS]),
        jd.Bernoulli: lambda d, c: m().Bernoulli(logits=d.logits),
        jd.Categorical: lambda d, c: m().Categorical(logits=d.logits),
        jd.MultivariateNormalDiag: lambda d, c: m().MultivariateNormalDiag(d.loc, d.scale_diag),
        jd.MultivariateNormalTriL: lambda d, c: m().MultivariateNormalTri(
            d.loc, d.scale_tril, is_lower=True
        ),
        jd.Independent: lambda d, c: m().Independent(c(d.base), d.reinterpreted_batch_ndims),
        jd.Mixture: lambda d, c: m().MixtureSameFamily(
            m().Categorical(logits=d.mixture_logits), c(d.components)
        ),
    }


# ----------------------------------------------------------------------------- TFP
def _tfp_rate(d):
    """TFP families take ``rate`` or ``log_rate``; whichever was given."""
    rate = _param(d, "rate")
    return jnp.exp(_param(d, "log_rate")) if rate is None else rate


def _tfp_from() -> dict[str, Callable]:
    def mvn_diag(d, convert):
        loc, scale = _param(d, "loc"), _param(d, "scale_diag")
        if scale is None:
            return None  # identity scale: the event size is not in the parameters
        return jd.MultivariateNormalDiag(jnp.zeros_like(scale) if loc is None else loc, scale)

    def mvn_tril(d, convert):
        loc, scale = _param(d, "loc"), _param(d, "scale_tril")
        if scale is None:
            return None
        return jd.MultivariateNormalTriL(jnp.zeros(scale.shape[:-1]) if loc is None else loc, scale)

    def independent(d, convert):
        n = _param(d, "reinterpreted_batch_ndims")
        base = convert(d.distribution)
        return jd.Independent(base, len(base.batch_shape) if n is None else n)

    return {
        # TFP's rate families may hold log_rate instead of rate.
        **_simple_from([f for f in _SIMPLE if f not in (jd.Exponential, jd.Gamma, jd.Poisson)]),
        "Exponential": lambda d, c: jd.Exponential(_tfp_rate(d)),
        "Gamma": lambda d, c: jd.Gamma(d.concentration, _tfp_rate(d)),
        "Poisson": lambda d, c: jd.Poisson(_tfp_rate(d)),
        "Bernoulli": lambda d, c: _from_probs_or_logits(
            jd.Bernoulli, _param(d, "probs"), d.logits_parameter()
        ),
        "Categorical": lambda d, c: _from_probs_or_logits(
            jd.Categorical, _param(d, "probs"), d.logits_parameter()
        ),
        "MultivariateNormalDiag": mvn_diag,
        "MultivariateNormalTriL": mvn_tril,
        "Independent": independent,
        "MixtureSameFamily": lambda d, c: jd.Mixture(
            d.mixture_distribution.logits_parameter(), c(d.components_distribution)
        ),
    }


def _tfp_to() -> dict[type, Callable]:
    def m():
        return importlib.import_module("tensorflow_probability.substrates.jax.distributions")

    return {
        **_simple_to(m, _SIMPLE),
        jd.Bernoulli: lambda d, c: m().Bernoulli(logits=d.logits),
        jd.Categorical: lambda d, c: m().Categorical(logits=d.logits),
        jd.MultivariateNormalDiag: lambda d, c: m().MultivariateNormalDiag(d.loc, d.scale_diag),
        jd.MultivariateNormalTriL: lambda d, c: m().MultivariateNormalTriL(d.loc, d.scale_tril),
        jd.Independent: lambda d, c: m().Independent(c(d.base), d.reinterpreted_batch_ndims),
        jd.Mixture: lambda d, c: m().MixtureSameFamily(
            m().Categorical(logits=d.mixture_logits), c(d.components)
        ),
    }


def _tfp_reparameterized(d) -> bool:
    tfd = importlib.import_module("tensorflow_probability.substrates.jax.distributions")
    return d.reparameterization_type == tfd.FULLY_REPARAMETERIZED


def _distrax_reparameterized(d) -> bool:
    # distrax keeps no flag: its continuous samplers are differentiable transforms of
    # parameter-free noise, its discrete ones return integers or booleans.
    return bool(jnp.issubdtype(d.dtype, jnp.floating))


LIBRARIES: dict[str, Library] = {
    "numpyro": Library(
        name="numpyro",
        module_root="numpyro",
        distributions_module="numpyro.distributions",
        draw=lambda d, key, shape: d.sample(key, shape),
        reparameterized=lambda d: bool(d.has_rsample),
        from_table=_numpyro_from(),
        to_table=_numpyro_to(),
    ),
    "distrax": Library(
        name="distrax",
        module_root="distrax",
        distributions_module="distrax",
        draw=lambda d, key, shape: d.sample(seed=key, sample_shape=shape),
        reparameterized=_distrax_reparameterized,
        from_table=_distrax_from(),
        to_table=_distrax_to(),
    ),
    "tfp": Library(
        name="tfp",
        module_root="tensorflow_probability",
        distributions_module="tensorflow_probability.substrates.jax.distributions",
        draw=lambda d, key, shape: d.sample(shape, seed=key),
        reparameterized=_tfp_reparameterized,
        from_table=_tfp_from(),
        to_table=_tfp_to(),
    ),
}
