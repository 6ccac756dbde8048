"""Reverse vs forward KL: fit a full-covariance Gaussian to a 2-D two-component mixture.

Usage (from the repository root):
    python experiments/fit_mixture.py [--config configs/fit_mixture.toml]
        [--set fit.num_steps=1000] [--out results]

q = N(μ, LLᵀ) is fitted with adam (through ``jaxkl.fit``) by four objectives: reverse
KL(q‖p) by reparameterised k1 and by sticking the landing, forward KL(p‖q) from samples of
p, and forward KL by self-normalised importance sampling from an unnormalised log p. The
reverse KL seeks a mode (q sits on one component); the forward KL covers the mass (q
matches p's mean and covariance, the moment-matched optimum).

Writes results/fit_mixture/<run-name>/: config.toml, cells/ (one file per objective),
metrics.csv (binned loss curves), summary.json, fit_mixture.png and report.md.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxkl
from jaxkl import fit as jf
from jaxkl.study import cell_id, require_config, require_min, require_subset
from jaxkl.study.experiment import Experiment, Outputs
from jaxkl.study.fit_mixture_report import claims, figure, metric_rows, report_markdown

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "configs" / "fit_mixture.toml"
# Stable indices (key derivation does not depend on the order of fit.objectives).
OBJECTIVES = ("reverse_k1", "reverse_stl", "forward", "forward_snis")


# --------------------------------------------------------------------------- config


def validate(cfg) -> None:
    t, f = cfg["target"], cfg["fit"]
    locs, trils, w = np.asarray(t["locs"], float), np.asarray(t["scale_trils"], float), t["weights"]
    require_config(locs.shape == (2, 2), "target.locs", "must be two 2-D means [[x, y], [x, y]]")
    require_config(trils.shape == (2, 2, 2), "target.scale_trils", "must be two 2×2 matrices")
    require_config(
        bool(np.all(np.triu(trils, 1) == 0) and np.all(np.diagonal(trils, 0, 1, 2) > 0)),
        "target.scale_trils",
        "must be lower triangular with a positive diagonal",
    )
    require_config(len(w) == 2 and min(w) > 0, "target.weights", "must be two positive weights")
    require_subset(cfg, "fit.objectives", OBJECTIVES)
    require_min(cfg, 1, "fit.num_steps", "fit.restarts")
    require_min(cfg, 2, "fit.num_samples", "eval.num_samples")
    require_min(cfg, 0, "fit.learning_rate", "fit.init_scale", strict=True)
    require_min(cfg, 0, "fit.init_loc_jitter")
    require_config(0 < f["final_lr_fraction"] <= 1, "fit.final_lr_fraction", "must be in (0, 1]")
    require_config(len(f["init_loc"]) == 2, "fit.init_loc", "must be a 2-D point")
    require_config(
        1 <= cfg["eval"]["bins"] <= f["num_steps"], "eval.bins", "must be in [1, fit.num_steps]"
    )


def build_target(cfg) -> jaxkl.Mixture:
    t = cfg["target"]
    comps = jaxkl.MultivariateNormalTriL(
        jnp.asarray(t["locs"], jnp.float32), jnp.asarray(t["scale_trils"], jnp.float32)
    )
    return jaxkl.Mixture(jnp.log(jnp.asarray(t["weights"], jnp.float32)), comps)


def target_moments(cfg) -> dict:
    """Mixture weights, component means/covariances, and the mixture's mean and covariance.

    The mixture's moments are the forward-KL optimum of a Gaussian q (moment matching):
    μ = Σ w_k μ_k, Σ = Σ w_k (Σ_k + (μ_k − μ)(μ_k − μ)ᵀ). Float64 numpy.
    """
    t = cfg["target"]
    w = np.asarray(t["weights"], float)
    w = w / w.sum()
    mus = np.asarray(t["locs"], float)
    trils = np.asarray(t["scale_trils"], float)
    covs = trils @ np.swapaxes(trils, -1, -2)
    mean = w @ mus
    dev = mus - mean
    cov = np.einsum("k,kij->ij", w, covs + dev[:, :, None] * dev[:, None, :])
    axis = (mus[1] - mus[0]) / np.linalg.norm(mus[1] - mus[0])
    return {"weights": w, "locs": mus, "covs": covs, "mean": mean, "cov": cov, "axis": axis}


# --------------------------------------------------------------------------- fitting


def loss_fn(objective: str, p: jaxkl.Mixture, num_samples: int, offset: float):
    def unnormalised_log_p(x):
        return p.log_prob(x) + offset

    def loss(params, key):
        q = jf.gaussian_from_params(params)
        if objective == "reverse_k1":
            return jf.reverse_kl(key, q, p, num_samples, gradient="reparam")
        if objective == "reverse_stl":
            return jf.reverse_kl(key, q, p, num_samples, gradient="stl")
        if objective == "forward":
            return jf.forward_kl(q, p.sample(key, (num_samples,)), p)
        return jf.forward_kl_snis(key, q, unnormalised_log_p, num_samples)

    return loss


def initial_params(cfg, key) -> jf.GaussianParams:
    f = cfg["fit"]
    r = f["restarts"]
    jitter = f["init_loc_jitter"] * jax.random.normal(key, (r, 2))
    loc = jnp.broadcast_to(jnp.asarray(f["init_loc"], jnp.float32), (r, 2)) + jitter
    tril = jnp.broadcast_to(f["init_scale"] * jnp.eye(2), (r, 2, 2))
    return jf.gaussian_params(loc, tril)


def binned(values: np.ndarray, stderrs: np.ndarray, bins: int):
    """Means of equal bins of steps, with SE √(Σ se²)/m (the steps' samples are independent)."""
    edges = np.linspace(0, values.shape[-1], bins + 1).round().astype(int)
    mean, se, mid = [], [], []
    for a, b in itertools.pairwise(edges):
        mean.append(values[..., a:b].mean(-1))
        se.append(np.sqrt(np.square(stderrs[..., a:b]).sum(-1)) / (b - a))
        mid.append(0.5 * (a + b - 1))
    return np.stack(mean, -1), np.stack(se, -1), np.asarray(mid), edges


def make_evaluator(p, n: int):
    """Jitted ``(loc, scale_tril, key) -> (KL(q‖p), SE, KL(p‖q), SE)`` by Monte Carlo (n draws).

    KL(q‖p) by k1 from draws of q, KL(p‖q) from draws of p (both log densities known).
    One compiled program serves every fitted q and the reference Gaussians.
    """

    @jax.jit
    def kls(loc, scale_tril, key):
        q = jaxkl.MultivariateNormalTriL(loc, scale_tril)
        k_rev, k_fwd = jax.random.split(key)
        rev = jaxkl.mc_kl(k_rev, q, p, n, estimator="k1")
        fwd = jf.forward_kl(q, p.sample(k_fwd, (n,)), p)
        return rev.value, rev.stderr, fwd.value, fwd.stderr

    def evaluate(loc, scale_tril, key):
        return [
            float(v)
            for v in kls(jnp.asarray(loc, jnp.float32), jnp.asarray(scale_tril, jnp.float32), key)
        ]

    return evaluate


def describe_fit(loc, scale_tril, kls: list[float], mom: dict) -> dict:
    """The geometry of a fitted q against the mixture's modes, and its two KLs."""
    loc = np.asarray(loc, float)
    L = np.asarray(scale_tril, float)
    cov = L @ L.T
    mus, covs, u = mom["locs"], mom["covs"], mom["axis"]
    # Mahalanobis distance of q's mean from each component mean, in that component's metric.
    maha = np.array(
        [np.sqrt((loc - m) @ np.linalg.solve(c, loc - m)) for m, c in zip(mus, covs, strict=True)]
    )
    sep = mus[1] - mus[0]
    return {
        "loc": loc.tolist(),
        "cov": cov.tolist(),
        "kl_qp": kls[0],
        "kl_qp_se": kls[1],
        "kl_pq": kls[2],
        "kl_pq_se": kls[3],
        "nearest_mode": int(np.argmin(maha)),
        "mahalanobis_to_nearest_mode": float(maha.min()),
        # position of q's mean along the segment between the modes: 0 = mode 0, 1 = mode 1
        "position_between_modes": float((loc - mus[0]) @ sep / (sep @ sep)),
        "var_along_axis": float(u @ cov @ u),
    }


def run_objective(cfg, objective: str, p, key, evaluate) -> dict:
    f = cfg["fit"]
    mom = target_moments(cfg)
    params0 = initial_params(cfg, jax.random.fold_in(key, 0))
    schedule = optax.cosine_decay_schedule(
        f["learning_rate"], f["num_steps"], alpha=f["final_lr_fraction"]
    )
    loss = loss_fn(objective, p, f["num_samples"], cfg["target"]["log_normalizer_offset"])
    fitter = jf.make_fit(loss, optax.adam(schedule), f["num_steps"], batched=True)
    fit_key = jax.random.fold_in(key, 1 + OBJECTIVES.index(objective))
    keys = jax.vmap(lambda r: jax.random.fold_in(fit_key, r))(jnp.arange(f["restarts"]))
    t0 = time.perf_counter()
    res = jax.block_until_ready(fitter(params0, keys))
    seconds = time.perf_counter() - t0
    eval_key = jax.random.fold_in(fit_key, 10_000)
    q = jf.gaussian_from_params(res.params)
    fits = []
    for r in range(f["restarts"]):
        kls = evaluate(q.loc[r], q.scale_tril[r], jax.random.fold_in(eval_key, r))
        fits.append(describe_fit(q.loc[r], q.scale_tril[r], kls, mom))
    values = np.asarray(res.losses.value, float)
    stderrs = np.asarray(res.losses.stderr, float)
    mean, se, mid, edges = binned(values, stderrs, cfg["eval"]["bins"])
    rec = {
        "objective": objective,
        "fits": fits,
        "loss_bins": {
            "mid_step": mid.tolist(),
            "edges": edges.tolist(),
            "value": mean.tolist(),
            "stderr": se.tolist(),
        },
        "fit_seconds_incl_compile": seconds,
    }
    if objective == "forward_snis":
        rec["ess_final_mean"] = np.asarray(res.losses.ess[:, -100:], float).mean(1).tolist()
        rec["ess_first_step"] = np.asarray(res.losses.ess[:, 0], float).tolist()
        rec["pareto_k_final_median"] = np.median(
            np.asarray(res.losses.pareto_k[:, -100:], float), 1
        ).tolist()
    return rec


def reference_kls(cfg, key, evaluate) -> dict:
    """KL values of the two natural answers: q = one component, q = moment-matched Gaussian."""
    mom = target_moments(cfg)
    trils = np.asarray(cfg["target"]["scale_trils"], float)
    out = {}
    for k in range(2):
        kls = evaluate(mom["locs"][k], trils[k], jax.random.fold_in(key, k))
        out[f"kl_qp_component_{k}"] = kls[:2]
    kls = evaluate(mom["mean"], np.linalg.cholesky(mom["cov"]), jax.random.fold_in(key, 2))
    out["kl_qp_moment_matched"] = kls[:2]
    out["kl_pq_moment_matched"] = kls[2:]
    return out


def compute(cfg, run) -> tuple[list[dict], dict]:
    """Fit every objective, one cell each, and the reference KLs."""
    key = jax.random.key(cfg["seed"])
    p = build_target(cfg)
    evaluate = make_evaluator(p, cfg["eval"]["num_samples"])
    records = [
        run.cell(cell_id(objective=o), lambda o=o: run_objective(cfg, o, p, key, evaluate))
        for o in cfg["fit"]["objectives"]
    ]
    return records, reference_kls(cfg, jax.random.fold_in(key, 99), evaluate)


def report(res, cfg, run) -> Outputs:
    records, refs = res
    mom = target_moments(cfg)
    verdict = claims(records, mom)
    return Outputs(
        report_markdown(cfg, records, refs, verdict, mom, run.wall_seconds),
        metrics=metric_rows(records),
        figures={"fit_mixture.png": figure(records, build_target(cfg), mom, refs)},
        summary={
            "claims": verdict,
            "references": refs,
            "fits": {r["objective"]: r["fits"] for r in records},
        },
    )


EXPERIMENT = Experiment(
    "fit_mixture", DEFAULT, __doc__, compute, report, "fit.num_steps=1000", validate
)
main = EXPERIMENT.main

if __name__ == "__main__":
    main()
