"""The seed cases' computations: Normal KLs both ways, and the discrete-KL misuse.

(a) KL between two normals in both directions from ``jaxkl.kl`` (float32 and float64),
cross-checked by trapezoid quadrature with plain numpy densities (independent of jaxkl);
then the numbers a discrete KL gives when fed samples or density values at samples, and
what they converge to as n → ∞. ``experiments/seed_cases.py`` runs and reports them; the
NVAE residual part (b) is :mod:`jaxkl.study.residual_precision`.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxkl.analytic.registry import kl
from jaxkl.distributions import Normal
from jaxkl.study.misuse import clipping_discrete_kl, normalising_discrete_kl

__all__ = ["CASES", "analytic_case", "grid", "misuse_case", "misuse_limits", "normal_logpdf"]

CASES = ("symmetric", "asymmetric")

# Densities here are plain numpy float64, independent of jaxkl, so the quadrature columns
# are a genuine cross-check of jaxkl.kl.


def normal_logpdf(x, loc, scale):
    z = (x - loc) / scale
    return -0.5 * z * z - math.log(scale) - 0.5 * math.log(2 * math.pi)


def grid(case: dict[str, float], quad: dict[str, Any]) -> np.ndarray:
    w = quad["half_width"]
    lo = min(case["loc_a"] - w * case["scale_a"], case["loc_b"] - w * case["scale_b"])
    hi = max(case["loc_a"] + w * case["scale_a"], case["loc_b"] + w * case["scale_b"])
    return np.linspace(lo, hi, quad["points"])


def analytic_case(case: dict[str, float], quad: dict[str, Any]) -> dict[str, Any]:
    a = Normal(case["loc_a"], case["scale_a"])
    b = Normal(case["loc_b"], case["scale_b"])
    x = grid(case, quad)
    la = normal_logpdf(x, case["loc_a"], case["scale_a"])
    lb = normal_logpdf(x, case["loc_b"], case["scale_b"])
    out = {
        "kl_ab": float(kl(a, b)),
        "kl_ba": float(kl(b, a)),
        # The area under each integrand curve drawn in the figure.
        "quad_ab": float(np.trapezoid(np.exp(la) * (la - lb), x)),
        "quad_ba": float(np.trapezoid(np.exp(lb) * (lb - la), x)),
    }
    with jax.enable_x64(True):
        out["kl_ab_f64"] = float(kl(Normal(*_f64(a)), Normal(*_f64(b))))
        out["kl_ba_f64"] = float(kl(Normal(*_f64(b)), Normal(*_f64(a))))
    return out


def _f64(d: Normal):
    return jnp.asarray(float(d.loc), jnp.float64), jnp.asarray(float(d.scale), jnp.float64)


def misuse_case(case, cfg, seed: int, case_index: int) -> dict[str, Any]:
    """Discrete KLs of samples and of density values at samples, per sample size."""
    eps = cfg["misuse"]["clip_eps"]
    rows = []
    for j, n in enumerate(cfg["misuse"]["sample_sizes"]):
        rng = np.random.default_rng([seed, case_index, j])
        x = rng.normal(case["loc_a"], case["scale_a"], n)  # x ~ a
        y = rng.normal(case["loc_b"], case["scale_b"], n)  # y ~ b
        pa_x = np.exp(normal_logpdf(x, case["loc_a"], case["scale_a"]))
        pb_x = np.exp(normal_logpdf(x, case["loc_b"], case["scale_b"]))
        pa_y = np.exp(normal_logpdf(y, case["loc_a"], case["scale_a"]))
        pb_y = np.exp(normal_logpdf(y, case["loc_b"], case["scale_b"]))
        rows.append(
            {
                "n": n,
                "negative_fraction": float(np.mean(np.concatenate([x, y]) < 0)),
                "entropy_samples_ab": normalising_discrete_kl(x, y),
                "entropy_samples_ba": normalising_discrete_kl(y, x),
                "entropy_pdf_ab": normalising_discrete_kl(pa_x, pb_x),
                "entropy_pdf_ba": normalising_discrete_kl(pb_y, pa_y),
                "clipped_samples_ab": clipping_discrete_kl(x, y, eps),
                "clipped_samples_ba": clipping_discrete_kl(y, x, eps),
                "clipped_pdf_ab": clipping_discrete_kl(pa_x, pb_x, eps),
                "clipped_pdf_ba": clipping_discrete_kl(pb_y, pa_y, eps),
            }
        )
    return {"rows": rows, "limits": misuse_limits(case, cfg)}


def misuse_limits(case, cfg) -> dict[str, float]:
    """What the misused quantities converge to as n → ∞ (by quadrature).

    With p_i ∝ a(x_i), q_i ∝ b(x_i), x_i ~ a, the normalising KL is
    Σ p_i log(a_i/b_i) + log(Σb_i/Σa_i) → ∫a² log(a/b) / ∫a² + log(∫ab / ∫a²):
    a KL-like functional of a² and ab, not KL(a‖b). The clipped sums are n times a
    per-sample mean: E_a[c log c] − E_a[c]·E_b[log c] for samples (c = clip to [eps, 1],
    x and y independent), E_a[c(a) log(c(a)/c(b))] for density values.
    """
    x = grid(case, cfg["quadrature"])
    eps = cfg["misuse"]["clip_eps"]
    la = normal_logpdf(x, case["loc_a"], case["scale_a"])
    lb = normal_logpdf(x, case["loc_b"], case["scale_b"])
    a, b = np.exp(la), np.exp(lb)

    def integral(f):
        return float(np.trapezoid(f, x))

    def entropy_pdf_limit(a, b, la, lb):
        return integral(a * a * (la - lb)) / integral(a * a) + math.log(
            integral(a * b) / integral(a * a)
        )

    c = np.clip(x, eps, 1.0)
    ca, cb = np.clip(a, eps, 1.0), np.clip(b, eps, 1.0)
    return {
        "entropy_pdf_ab": entropy_pdf_limit(a, b, la, lb),
        "entropy_pdf_ba": entropy_pdf_limit(b, a, lb, la),
        "clipped_samples_ab_per_n": integral(a * c * np.log(c))
        - integral(a * c) * integral(b * np.log(c)),
        "clipped_samples_ba_per_n": integral(b * c * np.log(c))
        - integral(b * c) * integral(a * np.log(c)),
        "clipped_pdf_ab_per_n": integral(a * ca * np.log(ca / cb)),
        "clipped_pdf_ba_per_n": integral(b * cb * np.log(cb / ca)),
    }
