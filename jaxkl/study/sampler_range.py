"""Exactly what jax's float32 normal sampler can draw, and what that does to E[p/q].

``jax.random.normal(key, shape, jnp.float32)`` is, in the installed jax
(``jax/_src/random/core.py``: ``_normal_real`` calling ``uniform``/``_uniform``):

1. 32 random bits; the top 23 become the mantissa of a float in [1, 2), minus 1:
   f = m / 2²³ with m uniform on {0, …, 2²³ − 1} (exact in float32);
2. u = max(lo, f·(hi − lo) + lo) in float32, lo = nextafter(−1, 0) = −1 + 2⁻²⁴,
   hi = 1 (hi − lo rounds to 2 in float32, so f·2 is exact and only the sum rounds);
3. z = √2·erfinv(u), in float32.

So a draw is one of 2²³ equally likely values, none outside [√2·erfinv(lo),
√2·erfinv(1 − 3·2⁻²⁴)] ≈ [−5.420, 5.220]. Expectations under the *sampler* (not under the
exact normal law) are therefore finite sums, computed here in float64 over all 2²³
uniforms: step 2 is reproduced bit for bit in float32, step 3 is evaluated in float64
(``scipy.special.erfinv``), the float32 rounding of z being a 2⁻²⁴-relative effect.
``tests/study/test_sampler_range.py`` checks the grid against jax's own draws.

Why it matters: E_q[p/q] = 1 holds only where q's draws reach p's mass. For q = N(0, 1),
p = N(√20, 1) (KL = 10) the sampler's E[p/q] is 0.8162 (:func:`sampler_ratio_mean`), so
k3 = (r − 1) − log r is biased by −0.184 at every N.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import erfinv

from jaxkl.distributions import Mixture, MultivariateNormalDiag, Normal
from jaxkl.distributions.base import Distribution

__all__ = [
    "FLOAT32_NORMAL_SOURCE",
    "SamplerMeans",
    "float32_normal_grid",
    "float32_normal_uniforms",
    "sampler_k1_mean",
    "sampler_means",
    "sampler_ratio_mean",
]

FLOAT32_NORMAL_SOURCE = (
    "exact enumeration of the 2^23 uniforms of jax.random.normal's float32 sampler "
    "(jax/_src/random/core.py: _normal_real, _uniform), z = sqrt(2)·erfinv(u) in float64"
)

_MANTISSA_BITS = 23


@functools.cache
def float32_normal_uniforms() -> np.ndarray:
    """The 2²³ equally likely float32 uniforms u that jax's float32 normal sampler uses."""
    f = np.arange(2**_MANTISSA_BITS, dtype=np.float32) / np.float32(2**_MANTISSA_BITS)
    lo = np.nextafter(np.float32(-1.0), np.float32(0.0))
    hi = np.float32(1.0)
    scale = hi - lo  # float32: rounds to 2.0, as in jax
    return np.maximum(lo, f * scale + lo).astype(np.float32)


@functools.cache
def float32_normal_grid() -> np.ndarray:
    """The 2²³ equally likely standard-normal draws of jax's float32 sampler (float64).

    Example:
      >>> z = float32_normal_grid()
      >>> z.size, round(float(z.min()), 3), round(float(z.max()), 3)
      (8388608, -5.42, 5.22)
    """
    z = np.sqrt(2.0) * erfinv(float32_normal_uniforms().astype(np.float64))
    z.setflags(write=False)
    return z


@dataclasses.dataclass(frozen=True)
class SamplerMeans:
    """Expectations over the float32 sampler of d, with w = a(x)/d(x) (exact enumeration).

    Attributes:
      w: E[w] (1 under the exact law for a normalised a).
      w2: E[w²].
      wf: E[w·(log a − log b)(x)].
      log: E[(log d − log a)(x)].
    """

    w: float
    w2: float
    wf: float
    log: float


def sampler_means(d: Distribution, a: Distribution, b: Distribution) -> SamplerMeans | None:
    """:class:`SamplerMeans` over the float32 sampler of ``d``, or None where not covered.

    Covers scalar Normal and Normal-mixture ``d`` (any ``a``, ``b`` with a ``log_prob``)
    and diagonal Gaussians ``d``, ``a``, ``b`` (independent coordinates: products and sums
    of one-dimensional enumerations).
    """
    dims = _per_dimension(d, a, b)
    if dims is not None:
        parts = [sampler_means(*triple) for triple in dims]
        w = np.array([m.w for m in parts])
        wf = sum(m.wf * float(np.prod(np.delete(w, i))) for i, m in enumerate(parts))
        return SamplerMeans(
            w=float(np.prod(w)),
            w2=float(np.prod([m.w2 for m in parts])),
            wf=float(wf),
            log=float(np.sum([m.log for m in parts])),
        )
    comps = _normal_components(d)
    if comps is None:
        return None
    key = tuple((type(x).__name__, _params(x)) for x in (d, a, b))
    if key not in _CACHE:
        total = np.zeros(4)
        with jax.enable_x64(True):
            d64, a64, b64 = (_float64(x) for x in (d, a, b))
            z = _device_grid()
            for weight, loc, scale in comps:
                total += weight * np.asarray(_means_at(z, loc, scale, d64, a64, b64))
        _CACHE[key] = SamplerMeans(*(float(t) for t in total))
    return _CACHE[key]


_CACHE: dict = {}


@functools.cache
def _device_grid() -> jax.Array:
    """The grid as a float64 device array (made once: 64 MiB), under x64."""
    return jnp.asarray(float32_normal_grid())


def _float64(d: Distribution) -> Distribution:
    """``d`` with float64 parameters; call inside ``jax.enable_x64(True)``."""
    return jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float64)), d)


def _params(d: Distribution) -> tuple:
    return tuple(np.asarray(leaf, np.float64).tobytes() for leaf in jax.tree.leaves(d))


@jax.jit
def _means_at(z, loc, scale, d, a, b):
    x = loc + scale * z
    log_d, log_a, log_b = d.log_prob(x), a.log_prob(x), b.log_prob(x)
    w = jnp.exp(log_a - log_d)
    return jnp.stack(
        [jnp.mean(w), jnp.mean(w * w), jnp.mean(w * (log_a - log_b)), jnp.mean(log_d - log_a)]
    )


def _normal_components(q: Distribution) -> list[tuple[float, float, float]] | None:
    """(weight, loc, scale) of the normal draws behind a scalar q, or None if not normal."""
    if q.batch_shape or q.event_shape:
        return None
    if isinstance(q, Normal):
        return [(1.0, float(q.loc), float(q.scale))]
    if isinstance(q, Mixture) and isinstance(q.components, Normal):
        # Component chosen by jax.random.categorical: probability softmax(logits) (its
        # float32 rounding is a 1e-7-relative effect, far below anything measured here).
        w = np.asarray(jax.nn.softmax(np.asarray(q.mixture_logits, np.float64)))
        locs = np.broadcast_to(np.asarray(q.components.loc, np.float64), w.shape)
        scales = np.broadcast_to(np.asarray(q.components.scale, np.float64), w.shape)
        return [(float(a), float(b), float(c)) for a, b, c in zip(w, locs, scales, strict=True)]
    return None


def _per_dimension(*dists):
    """Scalar Normal triples, one per coordinate, when every distribution is an unbatched
    diagonal Gaussian (else None)."""
    if not all(isinstance(x, MultivariateNormalDiag) and not x.batch_shape for x in dists):
        return None
    per = [
        [Normal(float(m), float(s)) for m, s in zip(x.loc, x.scale_diag, strict=True)]
        for x in dists
    ]
    return list(zip(*per, strict=True))


def sampler_ratio_mean(q: Distribution, p: Distribution) -> float | None:
    """E[p(x)/q(x)] over the float32 sampler of q (exact enumeration), or None.

    Under the exact law it is 1 for any normalised p; the sampler never draws beyond
    ≈ [−5.42, 5.22] standard deviations, so p's mass beyond that is missing.

    Example:
      >>> far = sampler_ratio_mean(Normal(0.0, 1.0), Normal(20.0**0.5, 1.0))
      >>> round(far, 4)
      0.8162
    """
    means = sampler_means(q, p, q)
    return None if means is None else means.w


def sampler_k1_mean(q: Distribution, p: Distribution) -> float | None:
    """E[log q(x) − log p(x)] over the float32 sampler of q (exact enumeration), or None.

    Under the exact law it is KL(q‖p).
    """
    means = sampler_means(q, p, q)
    return None if means is None else means.log
