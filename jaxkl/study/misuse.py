"""Discrete-KL functions as users misapply them to samples or density values.

They reproduce, with numpy only, what happens when raw samples or pdf values at samples
are fed to a KL function for discrete distributions (scipy.stats.entropy, Keras'
kl_divergence). The experiments seed_cases and density_weighting use them to show why
the numbers mean nothing; jaxkl's estimators are the right tools.
"""

from __future__ import annotations

import numpy as np

__all__ = ["clipping_discrete_kl", "normalising_discrete_kl"]


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
