"""NVAE's residual normal KL against the generic one, and its float32 precision as Δσ → 1.

``jaxkl.analytic.residual_normal(Δμ, Δσ, σ_p)`` is KL(N(μ_p+Δμ, (σ_p·Δσ)²) ‖ N(μ_p, σ_p²)).
:func:`nvae_random` compares it with the generic ``jaxkl.analytic.normal`` at random
parameters in float32 and float64; :func:`nvae_sweep` measures the float32 relative error
of three evaluations as Δσ → 1. The reference, :func:`exact_residual_kl`, is the formula in
50-digit decimal arithmetic at the exact (float32) inputs.
"""

from __future__ import annotations

import decimal
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxkl.analytic.gaussian import normal, residual_normal

__all__ = ["F32_EPS", "exact_residual_kl", "nvae_random", "nvae_sweep"]

F32_EPS = float(np.finfo(np.float32).eps)


def exact_residual_kl(dloc, dscale, scale_p) -> float:
    """½(Δμ²/σ_p² + Δσ²) − ½ − ln Δσ in 50-digit decimal arithmetic at the given floats.

    ``Decimal(float)`` is exact, so this is the true KL at the (float32) inputs, rounded
    once to float64 at the end.
    """
    with decimal.localcontext() as ctx:
        ctx.prec = 50
        m, s, p = (decimal.Decimal(float(v)) for v in (dloc, dscale, scale_p))
        return float(((m / p) ** 2 + s * s) / 2 - decimal.Decimal("0.5") - s.ln())


def _rel(values, ref):
    values, ref = np.asarray(values, np.float64), np.asarray(ref, np.float64)
    return np.abs(values - ref) / np.abs(ref)


def nvae_random(nv: dict[str, Any], seed: int) -> dict[str, Any]:
    """residual_normal vs normal at random parameters, in float32 and float64."""
    rng = np.random.default_rng([seed, 1000])
    n = nv["num_random"]
    loc_p = rng.normal(0.0, 1.0, n)
    scale_p = np.exp(rng.normal(0.0, 1.0, n))
    dloc = rng.normal(0.0, 1.0, n) * scale_p
    dscale = np.exp(rng.normal(0.0, 0.5, n))
    out: dict[str, Any] = {"n": n}
    for dtype, x64 in ((np.float32, False), (np.float64, True)):
        with jax.enable_x64(x64):
            mp, sp, dm, ds = (jnp.asarray(v.astype(dtype)) for v in (loc_p, scale_p, dloc, dscale))
            res = np.asarray(residual_normal(dm, ds, sp), np.float64)
            gen = np.asarray(normal(mp + dm, sp * ds, mp, sp), np.float64)
            inputs = [np.asarray(v, np.float64) for v in (dm, ds, sp)]
        name = np.dtype(dtype).name
        diff = np.abs(res - gen)
        rel = diff / np.abs(res)
        out[name] = {
            "max_abs_diff": float(diff.max()),
            "max_rel_diff": float(rel.max()),
            "median_rel_diff": float(np.median(rel)),
        }
        if dtype is np.float32:
            # Exact KL at the float32 (Δμ, Δσ, σ_p): which of the two is off when they differ.
            ref = np.array([exact_residual_kl(*v) for v in zip(*inputs, strict=True)])
            res_err = _rel(res, ref)
            out[name]["residual_max_rel_err"] = float(res_err.max())
            out[name]["residual_worst_log_dscale"] = float(np.log(inputs[1][res_err.argmax()]))
            out[name]["generic_max_rel_err"] = float(_rel(gen, ref).max())
    return out


def nvae_sweep(nv: dict[str, Any]) -> dict[str, Any]:
    """Float32 relative error of three evaluations as Δσ → 1 (and Δμ → 0 alongside)."""
    target = 1.0 + np.logspace(nv["min_log10_gap"], nv["max_log10_gap"], nv["num_gaps"])
    ds32 = np.unique(target.astype(np.float32))
    ds32 = ds32[ds32 > 1]  # below ~6e-8 the gap rounds away to Δσ = 1 exactly
    gap = ds32.astype(np.float64) - 1.0  # exact: the gap of the float32 value actually used
    sp32 = np.float32(nv["sweep_scale_p"])
    mp32 = np.float32(nv["sweep_loc_p"])
    dm32 = (nv["sweep_loc_ratio"] * float(sp32) * gap).astype(np.float32)
    ref = np.array([exact_residual_kl(m, s, sp32) for m, s in zip(dm32, ds32, strict=True)])

    with jax.enable_x64(False):
        dm, ds = jnp.asarray(dm32), jnp.asarray(ds32)
        sp, mp = jnp.asarray(sp32), jnp.asarray(mp32)
        textbook = 0.5 * (dm**2 / sp**2 + ds**2) - 0.5 - jnp.log(ds)
        residual = residual_normal(dm, ds, sp)
        generic = normal(mp + dm, sp * ds, mp, sp)
        values = {
            "textbook": np.asarray(textbook, np.float64),
            "residual": np.asarray(residual, np.float64),
            "generic": np.asarray(generic, np.float64),
        }
    return {
        "gap": gap.tolist(),
        "dloc": dm32.astype(np.float64).tolist(),
        "reference": ref.tolist(),
        **{f"{k}_value": v.tolist() for k, v in values.items()},
        **{f"{k}_rel_err": _rel(v, ref).tolist() for k, v in values.items()},
    }
