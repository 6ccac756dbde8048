"""KL computations as users misapply them, and what the misapplied numbers converge to.

The discrete-KL functions reproduce, with numpy only, what happens when raw samples or pdf
values at samples are fed to a KL function for discrete distributions
(scipy.stats.entropy, Keras' kl_divergence). For Gaussians, the limits of two ways of
weighting each sample by its density a second time are in closed form: the mean of the
integrand q·log(q/p) over x ~ q (:func:`squared_density_kl`) and the discrete KL of
normalised density values (:func:`discrete_misuse_limit`, with the delta-method stderr
of the finite-n value in :func:`misuse_with_stderr`). The experiments seed_cases and
density_weighting use them to show why the numbers mean nothing; jaxkl's estimators are
the right tools.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxkl.analytic.registry import kl
from jaxkl.distributions import Normal

__all__ = [
    "clipping_discrete_kl",
    "discrete_misuse_limit",
    "misuse_with_stderr",
    "normalising_discrete_kl",
    "squared_density_kl",
]


def normalising_discrete_kl(pk, qk) -> float:
    """What ``scipy.stats.entropy(pk, qk)`` computes: Σ rel_entr(pk/Σpk, qk/Σqk).

    rel_entr(x, y) is x·log(x/y) for x, y > 0, 0 for x = 0 ≤ y, and +inf otherwise.
    """
    p = np.asarray(pk, np.float64)
    q = np.asarray(qk, np.float64)
    p, q = p / p.sum(), q / q.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        both = (p > 0) & (q > 0)
        terms = np.where(both, p * np.log(np.where(both, p / q, 1.0)), np.inf)
        terms = np.where((p == 0) & (q >= 0), 0.0, terms)
    return float(terms.sum())


def clipping_discrete_kl(pk, qk, eps: float) -> float:
    """A Keras-style ``kl_divergence``: clip both vectors to [eps, 1], Σ p·log(p/q)."""
    p = np.clip(np.asarray(pk, np.float64), eps, 1.0)
    q = np.clip(np.asarray(qk, np.float64), eps, 1.0)
    return float(np.sum(p * np.log(p / q)))


def squared_density_kl(loc_a, scale_a, loc_b, scale_b):
    """∫ a(x)² · log(a(x)/b(x)) dx for Gaussians a, b: the limit of mean a·log(a/b), x ~ a.

    = ∫a² · E_{N(m_a, s_a²/2)}[log a − log b]
    = [log(s_b/s_a) − ¼ + (s_a²/2 + (m_a − m_b)²)/(2 s_b²)] / (2√π s_a).

    For s_a = s_b = 1 this is (m_a − m_b)²/(4√π) = KL(a‖b)/(2√π) ≈ 0.282·KL(a‖b).

    Args:
      loc_a, scale_a, loc_b, scale_b: floats or numpy arrays that broadcast.

    Returns:
      The integral, float64, of the broadcast shape.

    Example:
      >>> round(float(squared_density_kl(1.0, 1.0, 0.0, 1.0)), 6)  # 1/(4√π)
      0.141047
    """
    loc_a, scale_a, loc_b, scale_b = np.broadcast_arrays(
        *(np.asarray(v, np.float64) for v in (loc_a, scale_a, loc_b, scale_b))
    )
    mean_log_ratio = (
        np.log(scale_b / scale_a)
        - 0.25
        + (0.5 * scale_a**2 + (loc_a - loc_b) ** 2) / (2.0 * scale_b**2)
    )
    return mean_log_ratio / (2.0 * math.sqrt(math.pi) * scale_a)


def discrete_misuse_limit(loc_a, scale_a, loc_b, scale_b) -> float:
    """What the normalised-density-values KL converges to for Gaussians a, b: KL(ã‖b̃).

    With x ~ a and weights aᵢ ∝ a(xᵢ), bᵢ ∝ b(xᵢ), Σ aᵢ log(aᵢ/bᵢ) tends to
    ∫a² log(a/b)/∫a² + log(∫ab/∫a²) = KL(ã‖b̃) with ã ∝ a², b̃ ∝ a·b: both densities
    multiplied by a once more. For Gaussians ã = N(m_a, s_a²/2) and b̃ = N(m*, v*) with
    v* = s_a² s_b²/(s_a² + s_b²), m* = (m_a s_b² + m_b s_a²)/(s_a² + s_b²); the KL between
    them is jaxkl.kl's (in float64).

    Example:
      >>> round(discrete_misuse_limit(0.0, 1.0, 1.0, 1.0), 12)  # KL(N(0, ½) ‖ N(½, ½))
      0.25
    """
    va, vb = scale_a**2, scale_b**2
    loc_prod = (loc_a * vb + loc_b * va) / (va + vb)
    scale_prod = math.sqrt(va * vb / (va + vb))
    with jax.enable_x64(True):
        sq = Normal(jnp.float64(loc_a), jnp.float64(scale_a / math.sqrt(2.0)))
        prod = Normal(jnp.float64(loc_prod), jnp.float64(scale_prod))
        return float(kl(sq, prod))


def misuse_with_stderr(log_a: np.ndarray, log_b: np.ndarray) -> tuple[float, float]:
    """The discrete-KL misuse on density values a(xᵢ), b(xᵢ), and its delta-method stderr.

    The value is ``scipy.stats.entropy(a(x), b(x))``. Written with sample means,
    value = A/S_a + log(S_b/S_a), A = mean(aᵢ lᵢ), S_a = mean(aᵢ), S_b = mean(bᵢ),
    lᵢ = log a(xᵢ) − log b(xᵢ); its stderr is sd(ψ)/√n with the influence terms
    ψᵢ = (aᵢlᵢ − A)/S_a − (A/S_a² + 1/S_a)(aᵢ − S_a) + (bᵢ − S_b)/S_b.
    """
    log_a, log_b = np.asarray(log_a, np.float64), np.asarray(log_b, np.float64)
    a, b = np.exp(log_a), np.exp(log_b)
    value = normalising_discrete_kl(a, b)
    al = a * (log_a - log_b)
    big_a, s_a, s_b = al.mean(), a.mean(), b.mean()
    psi = (al - big_a) / s_a - (big_a / s_a**2 + 1.0 / s_a) * (a - s_a) + (b - s_b) / s_b
    return value, float(psi.std(ddof=1) / math.sqrt(a.size))
