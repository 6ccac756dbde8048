"""Poisson distribution on {0, 1, 2, …}."""

from __future__ import annotations

import dataclasses
import decimal
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxkl.distributions.base import Distribution
from jaxkl.distributions.parameters import positive
from jaxkl.special import HALF_LOG_2PI, horner, log_ratio, stirling_correction

__all__ = ["Poisson", "poisson_deviance"]

# Entropy: an exact sum over k < _N_TERMS below _ASYMPTOTIC_FROM, the asymptotic series
# above. At rate 64 the mass beyond k = 160 is below 1e-22 (Chernoff: exp(−λ·h(2.5)),
# h(x) = x log x − x + 1), so the truncated sum is exact to float64 rounding.
_ASYMPTOTIC_FROM = 64.0
_N_TERMS = 160
_LOG_FACTORIALS = np.array([math.lgamma(k + 1.0) for k in range(_N_TERMS)])

# H(λ) = ½ log(2πeλ) + Σ_j c_j λ^−j. The coefficients come from expanding
# E[log Γ(X + 1)] = Σ_n ψ^(n−1)(λ + 1)·μ_n(λ)/n! with Stirling's series and the Poisson
# central moments μ_n, in exact rational arithmetic; c_1…c_3 are the textbook −1/12, −1/24,
# −19/360. The series is asymptotic: with terms to λ^−10 the first omitted term,
# 13695779093/720720 · λ^−11, is below 3e-16 for λ ≥ 64.
_ASYMPTOTIC = (
    -1.0 / 12.0,
    -1.0 / 24.0,
    -19.0 / 360.0,
    -9.0 / 80.0,
    -863.0 / 2520.0,
    -1375.0 / 1008.0,
    -33953.0 / 5040.0,
    -57281.0 / 1440.0,
    -3250433.0 / 11880.0,
    -378351.0 / 176.0,
)
_HALF_LOG_2PI_E = 0.5 * math.log(2.0 * math.pi * math.e)


# log p(k) = −½ log(2πk) − stirlerr(k) − D(k, λ) for k ≥ 1 (Loader 2000): the Stirling
# remainder stirlerr(k) = log k! − (k + ½) log k + k − ½ log 2π and the deviance
# D(k, λ) = k log(k/λ) − k + λ ≥ 0 are both small and computed to full relative precision,
# whereas k log λ − λ − log k! cancels catastrophically near k ≈ λ (float32 loses ~3 digits
# at λ = 1e4). stirlerr is tabulated exactly for k < 16 and summed from its series above.
def _stirlerr_table(n: int) -> np.ndarray:
    ctx = decimal.Context(prec=40)
    pi = decimal.Decimal("3.14159265358979323846264338327950288419716939937510")
    half_log_2pi = ctx.divide(ctx.ln(2 * pi), 2)
    out, log_fact = [0.0], decimal.Decimal(0)
    for k in range(1, n):
        log_k = ctx.ln(decimal.Decimal(k))
        log_fact += log_k
        out.append(float(log_fact - (k + decimal.Decimal("0.5")) * log_k + k - half_log_2pi))
    return np.array(out)


# stirlerr(k) is Stirling's correction δ(k) (log k! = log Γ(k) + log k), summed from its
# series from k = 16 on.
_STIRLERR_TABLE_SIZE = 16
_STIRLERR = _stirlerr_table(_STIRLERR_TABLE_SIZE)
# (1 + (t − 1)e^t) / t² = Σ_{n≥2} (n − 1) t^{n−2} / n!, for D(x, λ) = λ·(1 + (t − 1)e^t),
# t = log(x/λ); truncated after t^17 its relative error is below 1e-18 for |t| < ½.
_DEVIANCE_SERIES = tuple((n - 1.0) / math.factorial(n) for n in range(2, 18))
_DEVIANCE_SERIES_RADIUS = 0.5


def _stirlerr(k):
    """Stirling remainder of log k! for integral k ≥ 1 (any value at k = 0)."""
    in_table = k < _STIRLERR_TABLE_SIZE
    table = jnp.asarray(_STIRLERR, k.dtype)[jnp.where(in_table, k, 0).astype(jnp.int32)]
    big = jnp.where(in_table, _STIRLERR_TABLE_SIZE, k)
    return jnp.where(in_table, table, stirling_correction(big))


def poisson_deviance(x, rate):
    """D(x, λ) = x log(x/λ) − x + λ ≥ 0, to full relative precision (also near x = λ).

    It is KL(Poisson(x) ‖ Poisson(λ)) and the saddle-point part of the Poisson log-pmf
    (Loader's bd0). Near x = λ the direct form cancels to O((x − λ)²/λ); there
    D = λ·(1 + (t − 1)e^t), t = log(x/λ), is summed from its Taylor series instead.

    Args:
      x: ``[...]``, ≥ 0 (x = 0 gives λ; negative or NaN gives NaN).
      rate: λ > 0, ``[...]``, the same shape as ``x``.

    Returns:
      ``[...]``.
    """
    positive = x > 0
    # Zero takes the series branch at t = 0 and is replaced at the end.
    xs = jnp.where(positive, x, rate)
    t = log_ratio(xs, rate)
    near = jnp.abs(t) < _DEVIANCE_SERIES_RADIUS
    tn = jnp.where(near, t, 0.0)
    tf = jnp.where(near, 1.0, t)
    series = rate * tn * tn * horner(_DEVIANCE_SERIES, tn)
    direct = xs * tf - (xs - rate)
    return jnp.where(positive, jnp.where(near, series, direct), jnp.where(x == 0, rate, jnp.nan))


def _entropy_by_sum(rate):
    """−Σ_{k<N} p_k log p_k with p normalised over the N terms (for rate < 64)."""
    dtype = rate.dtype
    k = jnp.arange(_N_TERMS, dtype=dtype)
    log_fact = jnp.asarray(_LOG_FACTORIALS, dtype)
    terms_shape = (*((1,) * rate.ndim), _N_TERMS)
    # ℓ_k = log(λ^k / k!) = log p_k + λ. Normalising ℓ numerically rather than subtracting
    # λ makes a rounding error in log λ act as a tiny change of λ instead of an error of
    # order λ·log λ·eps in every term.
    ell = k.reshape(terms_shape) * jnp.log(rate)[..., None] - log_fact.reshape(terms_shape)
    top = jnp.max(ell, axis=-1, keepdims=True)
    # log Σ_k e^{ℓ_k} as top + log1p(rest): rest ≈ λ when λ is small, where a plain
    # logsumexp would round 1 + λ and lose the relative precision of H ≈ λ(1 − log λ).
    is_top = jax.nn.one_hot(jnp.argmax(ell, axis=-1), _N_TERMS, dtype=jnp.bool_)
    rest = jnp.sum(jnp.where(is_top, 0.0, jnp.exp(ell - top)), axis=-1, keepdims=True)
    log_p = (ell - top) - jnp.log1p(rest)
    return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)


def _entropy_asymptotic(rate):
    t = 1.0 / rate
    series = horner(_ASYMPTOTIC, t) * t
    return _HALF_LOG_2PI_E + 0.5 * jnp.log(rate) + series


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Poisson(Distribution):
    """Poisson distribution with mean ``rate`` λ.

    p(k) = λ^k e^(−λ) / k! for k = 0, 1, 2, …; log p(k) = k log λ − λ − log Γ(k + 1).

    Samples come from ``jax.random.poisson`` and are returned as floats in the dtype of
    ``rate`` (integer-valued), so they can be fed back to ``log_prob``; they are not
    differentiable in λ (``reparameterized = False``).

    The entropy has no closed form. For λ < 64 it is the exact sum over k < 160 (the
    neglected tail is below 1e-20 nats); for λ ≥ 64 it is the asymptotic expansion
    H = ½ log(2πeλ) − 1/(12λ) − 1/(24λ²) − 19/(360λ³) − 9/(80λ⁴) − … to order λ^−10,
    whose truncation error is below 3e-16. Both are accurate to a few float rounding
    errors and jittable (no shape depends on λ).

    Args:
      rate: λ > 0 and finite, ``[...]``.

    Example:
      >>> import jaxkl
      >>> d = jaxkl.Poisson(3.0)
      >>> float(d.mean()), round(float(d.log_prob(0.0)), 4), d.sample(0, (5,)).shape
      (3.0, -3.0, (5,))
    """

    rate: jax.Array

    reparameterized = False
    parameters = {"rate": positive()}

    def _sample(self, key, sample_shape):
        shape = sample_shape + self.batch_shape
        # int32 counts overflow only past 2^31; under x64 use int64 to match float64 rates.
        int_dtype = jnp.int64 if self.dtype == jnp.float64 else jnp.int32
        counts = jax.random.poisson(key, jnp.broadcast_to(self.rate, shape), shape, int_dtype)
        return counts.astype(self.dtype)

    def log_prob(self, x):
        """log p(x) = x log λ − λ − log x!, ``[..., *batch]``; −inf off {0, 1, 2, …}.

        Evaluated as −½ log(2πx) − stirlerr(x) − D(x, λ) (see :func:`poisson_deviance`),
        which keeps full relative precision in float32 even at x ≈ λ = 1e4.
        """
        x, rate = jnp.broadcast_arrays(jnp.asarray(x, self.dtype), self.rate)
        valid = (x >= 0) & (x == jnp.floor(x)) & jnp.isfinite(x)
        k = jnp.where(valid & (x > 0), x, 1.0)
        log_p = -HALF_LOG_2PI - 0.5 * jnp.log(k) - _stirlerr(k) - poisson_deviance(k, rate)
        return jnp.where(valid, jnp.where(x > 0, log_p, -rate), -jnp.inf)

    def entropy(self):
        """H = −Σ_k p(k) log p(k) (summed below λ = 64, asymptotic above), ``batch_shape``."""
        rate = self.rate
        big = rate >= _ASYMPTOTIC_FROM
        # Each branch sees a harmless rate where it is not selected (no inf/NaN gradients).
        small_rate = jnp.where(big, 1.0, rate)
        big_rate = jnp.where(big, rate, _ASYMPTOTIC_FROM)
        return jnp.where(big, _entropy_asymptotic(big_rate), _entropy_by_sum(small_rate))

    def mean(self):
        """λ, ``batch_shape``."""
        return self.rate

    def variance(self):
        """λ, ``batch_shape``."""
        return self.rate

    def mode(self):
        """⌊λ⌋, ``batch_shape`` (for integer λ, λ − 1 is a mode as well).

        ⌊λ⌋ is exact for λ < 2^24 in float32.
        """
        return jnp.floor(self.rate)
