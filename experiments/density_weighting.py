"""Density weighting: two ways of counting each sample's density twice, and the fixes.

(a) A user estimates KL(Q‖P) for Q = N(μ, 1), P = N(0, 1) from N = 100 draws of Q as the
    mean of q(x)·(log q(x) − log p(x)) — the integrand of KL evaluated at samples. Next to
    it: the mean of log q − log p (k1), k3, and the closed form, all with ±1.96·SE bands,
    and the number the misused mean converges to, ∫q²·log(q/p).
(b) From samples only, x ~ a = N(0, 1) and y ~ b = N(1, 1): the k-NN estimate
    (``jaxkl.knn_kl``) converging to KL(a‖b) = 0.5 as n grows, next to the classic misuse
    of normalising the density values a(xᵢ), b(xᵢ) into a discrete distribution and
    applying a discrete KL (``scipy.stats.entropy``), which converges to 0.25.

Run from the repository root:
    .venv/bin/python experiments/density_weighting.py --config configs/density_weighting.toml
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jax

import jaxkl
from jaxkl.study import cell_id, require_config
from jaxkl.study.density_weighting import knn_cell, mu_grid, mu_sweep
from jaxkl.study.density_weighting_report import build_report, figure, metrics_rows, sweep_stats
from jaxkl.study.experiment import Experiment, Outputs
from jaxkl.study.misuse import discrete_misuse_limit
from jaxkl.study.report import pm

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "density_weighting.toml"


def validate(cfg: dict[str, Any]) -> None:
    """Impossible values, rejected before any compute."""
    sw = cfg["sweep"]
    for k in ("mu_min", "mu_max", "p_loc"):
        require_config(math.isfinite(sw[k]), f"sweep.{k}", "must be finite")
    require_config(sw["mu_min"] < sw["mu_max"], "sweep.mu_min", "must be < sweep.mu_max")
    ok = math.isfinite(sw["mu_step"]) and sw["mu_step"] > 0
    require_config(ok, "sweep.mu_step", "must be finite and > 0")
    if ok:
        require_config(len(mu_grid(sw)) >= 2, "sweep.mu_step", "must leave at least 2 values of μ")
    for k in ("q_scale", "p_scale"):
        require_config(math.isfinite(sw[k]) and sw[k] > 0, f"sweep.{k}", "must be finite and > 0")
    require_config(sw["num_samples"] >= 2, "sweep.num_samples", "must be >= 2 (for a stderr)")
    kn = cfg["knn"]
    for k in ("a_loc", "b_loc"):
        require_config(math.isfinite(kn[k]), f"knn.{k}", "must be finite")
    for k in ("a_scale", "b_scale"):
        require_config(math.isfinite(kn[k]) and kn[k] > 0, f"knn.{k}", "must be finite and > 0")
    require_config(kn["k"] >= 1, "knn.k", "must be >= 1")
    sizes = kn["sample_sizes"]
    require_config(len(sizes) > 0, "knn.sample_sizes", "must not be empty")
    require_config(len(set(sizes)) == len(sizes), "knn.sample_sizes", "must not repeat a size")
    require_config(
        all(n >= kn["k"] + 1 for n in sizes),
        "knn.sample_sizes",
        "every size must be >= knn.k + 1 (the k-th neighbour among the other n − 1 points)",
    )
    require_config(cfg["plot"]["dpi"] >= 20, "plot.dpi", "must be >= 20")
    require_config(cfg["plot"]["zoom_mu"] > 0, "plot.zoom_mu", "must be > 0")


def compute(cfg, run) -> dict[str, Any]:
    key = jax.random.key(cfg["seed"])
    sweep = run.cell("mu_sweep", lambda: mu_sweep(cfg, jax.random.fold_in(key, 0)))
    knn_key = jax.random.fold_in(key, 1)
    knn_rows = [
        run.cell(cell_id(n=n), lambda n=n: knn_cell(cfg, knn_key, n))
        for n in cfg["knn"]["sample_sizes"]
    ]
    knn_rows.sort(key=lambda r: r["n"])
    kn = cfg["knn"]
    truth = float(
        jaxkl.kl(jaxkl.Normal(kn["a_loc"], kn["a_scale"]), jaxkl.Normal(kn["b_loc"], kn["b_scale"]))
    )
    misuse_limit = discrete_misuse_limit(kn["a_loc"], kn["a_scale"], kn["b_loc"], kn["b_scale"])
    return {"sweep": sweep, "knn_rows": knn_rows, "truth": truth, "misuse_limit": misuse_limit}


def report(res, cfg, run) -> Outputs:
    sweep, knn_rows, truth, limit = res["sweep"], res["knn_rows"], res["truth"], res["misuse_limit"]
    stats = sweep_stats(sweep)
    largest = knn_rows[-1]
    knn_keys = ("knn_value", "knn_stderr", "misuse_value", "misuse_stderr")
    return Outputs(
        build_report(run.name, cfg, sweep, stats, knn_rows, truth, limit),
        metrics=metrics_rows(sweep, knn_rows, truth, limit),
        figures={"density_weighting.png": figure(cfg, sweep, knn_rows, truth, limit)},
        dpi=cfg["plot"]["dpi"],
        summary={
            "sweep": stats,
            "knn": {"kl": truth, "misuse_limit": limit, "largest_n": largest["n"]}
            | {k: largest[k] for k in knn_keys},
        },
        printed=[
            f"sweep over {stats['num_mu']} μ: k1 max |z| {stats['k1']['max_abs_z']:.2f}, "
            f"wrong vs its limit max |z| {stats['wrong_vs_limit']['max_abs_z']:.2f}, "
            f"wrong/KL ≤ {stats['wrong_vs_kl'].get('max_ratio', math.nan):.3f} where KL ≥ 0.5",
            f"n = {largest['n']}: knn_kl {pm(largest['knn_value'], largest['knn_stderr'])} "
            f"(KL {truth:.4g}), discrete-KL misuse "
            f"{pm(largest['misuse_value'], largest['misuse_stderr'])} (limit {limit:.4g})",
        ],
    )


EXPERIMENT = Experiment(
    "density_weighting", DEFAULT_CONFIG, __doc__, compute, report, "knn.k=5", validate
)
main = EXPERIMENT.main

if __name__ == "__main__":
    main()
