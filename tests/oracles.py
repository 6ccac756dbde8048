"""Independent oracles for closed-form KL: quadrature, summation, large Monte Carlo.

They use scipy / numpy densities, never jaxkl's own, so a wrong closed form and a wrong
log_prob cannot agree by accident.
"""

from __future__ import annotations

import numpy as np
from scipy import integrate


def quad_kl(logpdf_a, logpdf_b, lo: float, hi: float, points=None) -> float:
    """KL(a‖b) = ∫ a(x)(log a(x) − log b(x)) dx over a's support [lo, hi] (may be ±inf).

    Returns +inf when b has zero density where a has mass.
    """

    def integrand(x):
        la = logpdf_a(x)
        if not np.isfinite(la):
            return 0.0
        lb = logpdf_b(x)
        if lb == -np.inf:
            return np.inf
        return np.exp(la) * (la - lb)

    val, _ = integrate.quad(integrand, lo, hi, points=points, limit=500, epsabs=1e-12, epsrel=1e-10)
    return float(val)


def sum_kl(logpmf_a, logpmf_b, support) -> float:
    """KL(a‖b) = Σ a(k)(log a(k) − log b(k)) over an explicit support array."""
    la = np.asarray(logpmf_a(support), dtype=np.float64)
    lb = np.asarray(logpmf_b(support), dtype=np.float64)
    pa = np.exp(la)
    mask = pa > 0
    if np.any(np.isneginf(lb[mask])):
        return np.inf
    return float(np.sum(pa[mask] * (la[mask] - lb[mask])))


def mc_kl(sample_a, logpdf_a, logpdf_b, n: int = 2_000_000, seed: int = 0):
    """Large Monte Carlo KL(a‖b) with numpy/scipy: returns (mean, standard error).

    Args:
      sample_a: ``(rng, n) -> [n, ...]`` draws from a.
      logpdf_a, logpdf_b: vectorised log densities of a sample array.
    """
    rng = np.random.default_rng(seed)
    x = sample_a(rng, n)
    d = np.asarray(logpdf_a(x), np.float64) - np.asarray(logpdf_b(x), np.float64)
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(n))
