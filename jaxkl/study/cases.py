"""Named KL problems for the studies, built from plain config tables.

A case is a pair (q, p) whose KL(q‖p) is studied, a named importance proposal, and the
truth: the closed form when ``jaxkl.kl`` has one, otherwise numerical quadrature in
float64 (1-D continuous cases only), always labelled with its source.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxkl.analytic.registry import NoAnalyticKL, kl
from jaxkl.distributions import (
    Categorical,
    Distribution,
    Gamma,
    Mixture,
    MultivariateNormalDiag,
    Normal,
)
from jaxkl.study.config import ConfigError
from jaxkl.study.expectations import float64_copy, quadrature_mean

__all__ = ["FAMILIES", "Case", "build_case", "quadrature_kl"]


@dataclasses.dataclass(frozen=True)
class Case:
    """One KL(q‖p) problem of a study.

    Attributes:
      name: the config table name.
      q, p: distributions with batch shape () and equal event shapes.
      proposal: the importance-sampling proposal; ``proposal_name`` says what it is.
      truth: KL(q‖p) as a float; ``truth_source`` says how it was obtained.
      continuous: whether sample-only (k-NN) estimation applies.
      description: one line for reports.
    """

    name: str
    q: Distribution
    p: Distribution
    proposal: Distribution
    proposal_name: str
    truth: float
    truth_source: str
    continuous: bool
    description: str


def _need(spec: Mapping[str, Any], where: str, *keys: str) -> list[Any]:
    missing = [k for k in keys if k not in spec]
    if missing:
        raise ConfigError([(f"{where}.{k}", "missing") for k in missing])
    return [spec[k] for k in keys]


def _normal(spec, where):
    q, p, r = _need(spec, where, "q", "p", "proposal")
    make = lambda t, w: Normal(*_need(t, w, "loc", "scale"))  # noqa: E731
    q, p, r = make(q, f"{where}.q"), make(p, f"{where}.p"), make(r, f"{where}.proposal")
    desc = f"N({float(q.loc):g}, {float(q.scale):g}²) ‖ N({float(p.loc):g}, {float(p.scale):g}²)"
    return q, p, r, desc, True


def _mvn_diag(spec, where):
    dim, q, p, r = _need(spec, where, "dim", "q", "p", "proposal")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ConfigError([(f"{where}.dim", f"must be an integer >= 1; got {dim!r}")])

    def make(t, w):
        loc, scale = _need(t, w, "loc", "scale")
        return MultivariateNormalDiag(jnp.full((dim,), loc), jnp.full((dim,), scale))

    q, p, r = make(q, f"{where}.q"), make(p, f"{where}.p"), make(r, f"{where}.proposal")
    desc = (
        f"diagonal MVN, d = {dim}: N({spec['q']['loc']:g}, {spec['q']['scale']:g}²·I) ‖ "
        f"N({spec['p']['loc']:g}, {spec['p']['scale']:g}²·I)"
    )
    return q, p, r, desc, True


def _gamma(spec, where):
    q, p, r = _need(spec, where, "q", "p", "proposal")
    make = lambda t, w: Gamma(*_need(t, w, "concentration", "rate"))  # noqa: E731
    q, p, r = make(q, f"{where}.q"), make(p, f"{where}.p"), make(r, f"{where}.proposal")
    desc = (
        f"Gamma({float(q.concentration):g}, {float(q.rate):g}) ‖ "
        f"Gamma({float(p.concentration):g}, {float(p.rate):g})"
    )
    return q, p, r, desc, True


def _categorical(spec, where):
    k, seed, q_scale, p_shift, temp = _need(
        spec,
        where,
        "num_categories",
        "logits_seed",
        "q_logit_scale",
        "p_logit_shift",
        "proposal_temperature",
    )
    if not temp > 0:
        raise ConfigError([(f"{where}.proposal_temperature", f"must be > 0; got {temp!r}")])
    rng = np.random.default_rng(seed)
    q_logits = q_scale * rng.standard_normal(k)
    p_logits = q_logits + p_shift * rng.standard_normal(k)
    q, p = Categorical(jnp.asarray(q_logits)), Categorical(jnp.asarray(p_logits))
    r = Categorical(jnp.asarray(q_logits / temp))
    desc = (
        f"Categorical, K = {k} (per-token RLHF case): q logits ~ {q_scale:g}·N(0,1), "
        f"p = q + {p_shift:g}·N(0,1)"
    )
    return q, p, r, desc, False


def _mixture_normal(spec, where):
    q, p, r = _need(spec, where, "q", "p", "proposal")
    weights, locs, scales = _need(q, f"{where}.q", "weights", "locs", "scales")
    if not len(weights) == len(locs) == len(scales) >= 1:
        raise ConfigError([(f"{where}.q", "weights, locs and scales need the same length")])
    if min(weights) <= 0:
        raise ConfigError([(f"{where}.q.weights", "must be > 0")])
    mix = Mixture(
        jnp.log(jnp.asarray(weights, jnp.float32)),
        Normal(jnp.asarray(locs, jnp.float32), jnp.asarray(scales, jnp.float32)),
    )
    make = lambda t, w: Normal(*_need(t, w, "loc", "scale"))  # noqa: E731
    p, r = make(p, f"{where}.p"), make(r, f"{where}.proposal")
    parts = " + ".join(
        f"{w:g}·N({m:g}, {s:g}²)" for w, m, s in zip(weights, locs, scales, strict=True)
    )
    desc = f"mixture {parts} ‖ N({float(p.loc):g}, {float(p.scale):g}²) (no closed form)"
    return mix, p, r, desc, True


FAMILIES: dict[str, Callable] = {
    "normal": _normal,
    "mvn_diag": _mvn_diag,
    "gamma": _gamma,
    "categorical": _categorical,
    "mixture_normal": _mixture_normal,
}


def quadrature_kl(
    q: Distribution, p: Distribution, *, num_points: int = 2**17 + 1, width: float = 40.0
) -> float:
    """KL(q‖p) for 1-D continuous q, p by composite Simpson quadrature in float64.

    Integrates q(x)(log q(x) − log p(x)) on [mean − width·sd, mean + width·sd] of q with
    ``num_points`` points, evaluating jaxkl's log densities with x64 enabled.

    Args:
      q, p: batch shape (), event shape ().
      num_points: odd number of grid points.
      width: half-width of the interval in q's standard deviations.

    Returns:
      The integral as a Python float.

    Example:
      >>> round(quadrature_kl(Normal(0.0, 1.0), Normal(1.0, 1.0)), 10)
      0.5
    """
    if q.event_shape or q.batch_shape or p.event_shape or p.batch_shape:
        raise ValueError("quadrature_kl needs scalar 1-D distributions")
    with jax.enable_x64(True):
        p64 = float64_copy(p)

    def log_ratio(x, log_q):
        with jax.enable_x64(True):
            return log_q - p64.log_prob(x)

    return quadrature_mean(q, log_ratio, num_points=num_points, width=width)


def _family(spec: Mapping[str, Any], where: str) -> str:
    """The case's ``family``, which must be one of :data:`FAMILIES`."""
    (family,) = _need(spec, where, "family")
    if family not in FAMILIES:
        choices = ", ".join(sorted(FAMILIES))
        problem = f"unknown family {family!r}; choose from {choices}"
        raise ConfigError([(f"{where}.family", problem)])
    return family


def _non_finite_keys(spec: Any, where: str) -> list[tuple[str, Any]]:
    """Every number under ``spec`` that is ±inf or NaN, with its dotted key."""
    if isinstance(spec, Mapping):
        return [bad for k, v in spec.items() for bad in _non_finite_keys(v, f"{where}.{k}")]
    if isinstance(spec, list | tuple):
        return [bad for i, v in enumerate(spec) for bad in _non_finite_keys(v, f"{where}[{i}]")]
    if isinstance(spec, float) and not math.isfinite(spec):
        return [(where, spec)]
    return []


def validate_case(name: str, spec: Mapping[str, Any]) -> None:
    """Check a case's config table without computing anything heavy.

    Builds its distributions (their constructors check every parameter) and turns any
    refusal into a ``ConfigError`` naming the case's key and the value.

    Raises:
      ConfigError: a non-finite number, an unknown family, a missing key or a parameter
        its family refuses.
    """
    where = f"cases.{name}"
    bad = _non_finite_keys(spec, where)
    if bad:
        raise ConfigError([(key, f"must be finite; got {value!r}") for key, value in bad])
    family = _family(spec, where)
    try:
        FAMILIES[family](spec, where)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:
        raise ConfigError([(where, str(err).splitlines()[0])]) from None


def build_case(name: str, spec: Mapping[str, Any]) -> Case:
    """Build the case named ``name`` from its config table ``spec`` (needs ``family``).

    Raises:
      ConfigError: unknown family or missing keys, naming the key.
    """
    where = f"cases.{name}"
    family = _family(spec, where)
    q, p, proposal, desc, continuous = FAMILIES[family](spec, where)
    try:
        truth, source = float(kl(q, p)), "closed form (jaxkl.kl)"
    except NoAnalyticKL:
        truth = quadrature_kl(q, p)
        source = "numerical quadrature (Simpson, 2^17+1 points over ±40 sd, float64)"
    return Case(
        name=name,
        q=q,
        p=p,
        proposal=proposal,
        proposal_name=str(spec.get("proposal_name", "proposal")),
        truth=truth,
        truth_source=source,
        continuous=continuous,
        description=desc,
    )
