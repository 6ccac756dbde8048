"""The density-weighting experiment's computations: the μ sweep and the k-NN cells.

(a) At every μ of a grid, k1, k3 and the misused density-weighted mean of q·log(q/p) are
estimated from the same draws x ~ Q = N(μ, s_q²) (one vmapped, jitted program); (b) for
each sample size n, ``knn_kl`` from x ~ a, y ~ b next to the discrete KL of the
normalised density values a(xᵢ), b(xᵢ). What the misuses converge to is in
:mod:`jaxkl.study.misuse`. ``experiments/density_weighting.py`` runs and reports them.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxkl.analytic.registry import kl
from jaxkl.distributions import Normal
from jaxkl.estimators.estimate import mean_with_stderr
from jaxkl.estimators.knn import knn_kl
from jaxkl.estimators.monte_carlo import kl_from_log_probs
from jaxkl.estimators.samplers import draw
from jaxkl.study.misuse import misuse_with_stderr, squared_density_kl

__all__ = ["ESTIMATORS", "knn_cell", "mu_grid", "mu_sweep", "sweep_estimates"]

ESTIMATORS = ("k1", "k3", "wrong")


def mu_grid(sw: dict[str, Any]) -> np.ndarray:
    """μ = mu_min + i·mu_step for i = 0, 1, … while μ < mu_max (a half-open range).

    Built from integer steps, not ``np.arange`` on floats, so whether mu_max is included
    does not hinge on accumulated rounding.
    """
    span = (sw["mu_max"] - sw["mu_min"]) / sw["mu_step"]
    count = math.ceil(span - 1e-9)
    return sw["mu_min"] + sw["mu_step"] * np.arange(count, dtype=np.float64)


def sweep_estimates(key, mus, q_scale: float, p: Normal, num_samples: int):
    """k1, k3 and the density-weighted mean at every μ, from the same draws, in one program.

    Draws for μ index i come from ``fold_in(key, i)``, so they do not depend on how many
    other μ share the vmapped batch.

    Returns:
      ``{name: Estimate}`` for "k1", "k3", "wrong"; values and stderrs of shape ``[M]``.
    """

    def one(key, mu):
        q = Normal(mu, q_scale)
        x = draw(key, q, num_samples, where="density_weighting")
        log_q, log_p = q.log_prob(x), p.log_prob(x)
        return {
            "k1": kl_from_log_probs(log_q, log_p, estimator="k1"),
            "k3": kl_from_log_probs(log_q, log_p, estimator="k3"),
            # The misuse: the KL integrand q·log(q/p) averaged over draws that already
            # come from q. A mean like the others, so its stderr is sd/√n as well.
            "wrong": mean_with_stderr(jnp.exp(log_q) * (log_q - log_p)),
        }

    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(mus.shape[0]))
    return jax.jit(jax.vmap(one))(keys, mus)


def mu_sweep(cfg: dict[str, Any], key) -> dict[str, Any]:
    sw = cfg["sweep"]
    mus = mu_grid(sw)
    p = Normal(sw["p_loc"], sw["p_scale"])
    est = sweep_estimates(key, jnp.asarray(mus, jnp.float32), sw["q_scale"], p, sw["num_samples"])
    out: dict[str, Any] = {
        "mu": mus.tolist(),
        "kl": np.asarray(kl(Normal(jnp.asarray(mus, jnp.float32), sw["q_scale"]), p))
        .astype(np.float64)
        .tolist(),
        "wrong_limit": squared_density_kl(mus, sw["q_scale"], sw["p_loc"], sw["p_scale"]).tolist(),
    }
    for name in ESTIMATORS:
        out[f"{name}_value"] = np.asarray(est[name].value, np.float64).tolist()
        out[f"{name}_stderr"] = np.asarray(est[name].stderr, np.float64).tolist()
    return out


def knn_cell(cfg: dict[str, Any], key, n: int) -> dict[str, Any]:
    """k-NN KL and the discrete-KL misuse from n draws x ~ a, y ~ b."""
    kn = cfg["knn"]
    a = Normal(kn["a_loc"], kn["a_scale"])
    b = Normal(kn["b_loc"], kn["b_scale"])
    # fold_in by n: adding or removing a size leaves the other sizes' draws unchanged.
    key_x, key_y = jax.random.split(jax.random.fold_in(key, n))
    x = draw(key_x, a, n, where="density_weighting")
    y = draw(key_y, b, n, where="density_weighting")
    est = knn_kl(x, y, k=kn["k"])
    misuse, misuse_se = misuse_with_stderr(np.asarray(a.log_prob(x)), np.asarray(b.log_prob(x)))
    return {
        "n": n,
        "knn_value": float(est.value),
        "knn_stderr": float(est.stderr),
        "misuse_value": misuse,
        "misuse_stderr": misuse_se,
    }
