"""Thousands of independent variational fits at once, under vmap, each to its own optimum.

Usage (from the repository root):
    python experiments/batched_fits.py [--config configs/batched_fits.toml]
        [--set targets.num_fits=4000] [--out results]

Each fit minimises the reverse KL(q‖p_i) over q = N(μ, LLᵀ) for a random Gaussian target
p_i by adam with sticking-the-landing gradients (``jaxkl.fit``). The analytic optimum is
q = p_i, and the exact KL(q‖p_i) (closed form) measures how close each fit gets. The same
compiled fit runs (a) vmapped over all targets in one program and (b) in a Python loop,
one jitted fit per target; the report gives fits per second for both, from the same run.

Writes results/batched_fits/<run-name>/: config.toml, metrics.csv (one row per fit),
summary.json, batched_fits.png and report.md.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxkl
from jaxkl import fit as jf
from jaxkl.study import new_figure, require_config, require_min, require_one_of
from jaxkl.study.experiment import Experiment, Outputs
from jaxkl.study.report import Table

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "configs" / "batched_fits.toml"


def validate(cfg) -> None:
    t = cfg["targets"]
    require_min(cfg, 1, "targets.num_fits", "targets.dim", "fit.num_steps", "timing.repeats")
    require_min(cfg, 0, "targets.loc_scale", "targets.log_scale_sd", "targets.offdiag_sd")
    require_min(cfg, 0, "fit.learning_rate", "check.kl_tol", strict=True)
    require_min(cfg, 2, "fit.num_samples")
    require_one_of(cfg, "fit.gradient", jf.REVERSE_KL_GRADIENTS)
    fraction = cfg["fit"]["final_lr_fraction"]
    require_config(0 < fraction <= 1, "fit.final_lr_fraction", "must be in (0, 1]")
    ok = 1 <= cfg["timing"]["loop_fits"] <= t["num_fits"]
    require_config(ok, "timing.loop_fits", "must be in [1, num_fits]")


def random_targets(cfg, key):
    """``(loc [B, d], scale_tril [B, d, d])`` of B random Gaussian targets."""
    t = cfg["targets"]
    b, d = t["num_fits"], t["dim"]
    k_loc, k_diag, k_off = jax.random.split(key, 3)
    loc = t["loc_scale"] * jax.random.normal(k_loc, (b, d))
    diag = jnp.exp(t["log_scale_sd"] * jax.random.normal(k_diag, (b, d)))
    off = jnp.tril(t["offdiag_sd"] * jax.random.normal(k_off, (b, d, d)), -1)
    return loc, off + diag[..., :, None] * jnp.broadcast_to(jnp.eye(d), (b, d, d))


def build_fitter(cfg, *, batched: bool):
    f = cfg["fit"]

    def loss(params, key, loc, tril):
        q = jf.gaussian_from_params(params)
        p = jaxkl.MultivariateNormalTriL(loc, tril)
        return jf.reverse_kl(key, q, p, f["num_samples"], gradient=f["gradient"])

    def exact_kl(params, loc, tril):
        q = jf.gaussian_from_params(params)
        return jaxkl.analytic.mvn_tril(q.loc, q.scale_tril, loc, tril)

    schedule = optax.cosine_decay_schedule(
        f["learning_rate"], f["num_steps"], alpha=f["final_lr_fraction"]
    )
    return jf.make_fit(
        loss, optax.adam(schedule), f["num_steps"], metrics_fn=exact_kl, batched=batched
    )


def _best_time(fn, repeats: int) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return best, out


def fits_and_timings(cfg) -> dict:
    key = jax.random.key(cfg["seed"])
    b, d = cfg["targets"]["num_fits"], cfg["targets"]["dim"]
    loc, tril = random_targets(cfg, jax.random.fold_in(key, 0))
    params0 = jf.gaussian_params(jnp.zeros((b, d)), jnp.broadcast_to(jnp.eye(d), (b, d, d)))
    fit_key = jax.random.fold_in(key, 1)
    # Fit i's samples depend only on fold_in(fit_key, i): batched and looped fits coincide.
    keys = jax.vmap(lambda i: jax.random.fold_in(fit_key, i))(jnp.arange(b))
    repeats = cfg["timing"]["repeats"]

    batched = build_fitter(cfg, batched=True)
    t0 = time.perf_counter()
    jax.block_until_ready(batched(params0, keys, loc, tril))
    compile_batched = time.perf_counter() - t0
    t_batched, res = _best_time(lambda: batched(params0, keys, loc, tril), repeats)

    single = build_fitter(cfg, batched=False)
    m = cfg["timing"]["loop_fits"]
    pick = [
        jax.tree_util.tree_map(lambda a, i=i: a[i], (params0, keys, loc, tril)) for i in range(m)
    ]
    t0 = time.perf_counter()
    jax.block_until_ready(single(*pick[0]))
    compile_single = time.perf_counter() - t0

    def loop():
        return [single(*args) for args in pick]

    t_loop, loop_res = _best_time(loop, repeats)

    q = jf.gaussian_from_params(res.params)
    final_kl = np.asarray(jaxkl.analytic.mvn_tril(q.loc, q.scale_tril, loc, tril), float)
    cov_p = np.asarray(tril @ jnp.swapaxes(tril, -1, -2), np.float64)
    dmu = np.asarray(q.loc - loc, np.float64)
    maha = np.sqrt(np.einsum("bi,bi->b", dmu, np.linalg.solve(cov_p, dmu[..., None])[..., 0]))
    loop_vs_batched = max(
        float(np.max(np.abs(np.asarray(r.params.loc) - np.asarray(res.params.loc[i]))))
        for i, r in enumerate(loop_res)
    )
    kl_curve = np.asarray(res.metrics, float)  # [B, steps]
    steps = kl_curve.shape[1]
    qs = (0.5, 0.9, 1.0)
    curve = {f"q{int(100 * qq)}": np.quantile(kl_curve, qq, axis=0).tolist() for qq in qs}
    return {
        "num_fits": b,
        "final_kl": final_kl.tolist(),
        "loc_abs_err": np.max(np.abs(dmu), axis=-1).tolist(),
        "mahalanobis_mean_err": maha.tolist(),
        "scale_tril_abs_err": np.max(
            np.abs(np.asarray(q.scale_tril - tril)), axis=(-2, -1)
        ).tolist(),
        "condition_number": np.linalg.cond(cov_p).tolist(),
        "initial_kl": kl_curve[:, 0].tolist(),
        "kl_curve_quantiles": curve,
        "kl_curve_steps": list(range(steps)),
        "timing": {
            "batched_seconds": t_batched,
            "batched_fits_per_second": b / t_batched,
            "loop_fits": m,
            "loop_seconds": t_loop,
            "loop_fits_per_second": m / t_loop,
            "speedup": (b / t_batched) / (m / t_loop),
            "compile_batched_seconds": compile_batched,
            "compile_single_seconds": compile_single,
            "repeats": repeats,
        },
        "loop_vs_batched_max_abs_loc_diff": loop_vs_batched,
        "devices": [str(dev) for dev in jax.devices()],
    }


def claims(rec: dict, cfg) -> dict:
    kl = np.asarray(rec["final_kl"])
    tol = cfg["check"]["kl_tol"]
    return {
        "kl_tol": tol,
        "num_within_tol": int(np.sum(kl <= tol)),
        "num_fits": int(kl.size),
        "all_reach_optimum": bool(np.all(kl <= tol)),
        "max_final_kl": float(kl.max()),
        "median_final_kl": float(np.median(kl)),
        "max_mahalanobis_mean_err": float(np.max(rec["mahalanobis_mean_err"])),
        "max_scale_tril_abs_err": float(np.max(rec["scale_tril_abs_err"])),
        "speedup_batched_over_loop": rec["timing"]["speedup"],
    }


def figure(rec: dict, cfg):
    fig, axes = new_figure(1, 2, figsize=(11.0, 4.2))
    ax = axes[0]
    steps = np.asarray(rec["kl_curve_steps"])
    tiny = np.finfo(np.float32).tiny  # exact zeros cannot be drawn on a log axis
    for name, label, c in (
        ("q50", "median", "C0"),
        ("q90", "90th percentile", "C1"),
        ("q100", "worst fit", "C3"),
    ):
        ax.plot(steps, np.maximum(rec["kl_curve_quantiles"][name], tiny), color=c, label=label)
    ax.axhline(
        cfg["check"]["kl_tol"], color="k", ls=":", label=f"tolerance {cfg['check']['kl_tol']:g}"
    )
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("exact KL(q‖p) (closed form)")
    ax.set_title(f"{rec['num_fits']} fits under one vmap")
    ax.legend(fontsize=8)
    ax = axes[1]
    kl = np.maximum(np.asarray(rec["final_kl"]), 1e-18)
    ax.hist(np.log10(kl), bins=40, color="C0")
    ax.axvline(np.log10(cfg["check"]["kl_tol"]), color="k", ls=":", label="tolerance")
    ax.set_xlabel("log10 final exact KL(q‖p)  (0 shown at 1e-18)")
    ax.set_ylabel("fits")
    t = rec["timing"]
    ax.set_title(
        f"vmap {t['batched_fits_per_second']:.0f} fits/s vs loop {t['loop_fits_per_second']:.0f}"
        f" fits/s (×{t['speedup']:.1f})"
    )
    ax.legend(fontsize=8)
    return fig


def report_markdown(rec: dict, verdict: dict, cfg, wall: float) -> str:
    t, f, tg = rec["timing"], cfg["fit"], cfg["targets"]
    cond = np.asarray(rec["condition_number"])
    throughput = Table("", "fits", "seconds", "fits / s")
    for label, n, key in (
        ("vmap, one program", rec["num_fits"], "batched"),
        ("Python loop of jitted single fits", t["loop_fits"], "loop"),
    ):
        throughput.row(label, n, f"{t[f'{key}_seconds']:.3f}", f"{t[f'{key}_fits_per_second']:.1f}")
    return "\n".join(
        [
            "# Batched fits: many reverse-KL fits at once under vmap",
            "",
            f"{rec['num_fits']} random {tg['dim']}-D Gaussian targets p_i (condition numbers of "
            f"the covariances {cond.min():.2f} … {cond.max():.1f}); each q_i = N(μ, LLᵀ) starts at "
            f"N(0, I) and is fitted by adam ({f['num_steps']} steps, lr {f['learning_rate']} "
            f"cosine-decayed to {f['learning_rate'] * f['final_lr_fraction']:.2g}) on the reverse "
            f"KL with `{f['gradient']}` gradients from {f['num_samples']} samples per step. "
            "Every step also evaluates the exact KL (closed form) for the convergence curve.",
            "",
            "![batched fits](batched_fits.png)",
            "",
            "## Reaching the analytic optimum q = p",
            "",
            f"- Tolerance: exact KL(q‖p) ≤ {verdict['kl_tol']:g} nats (so the mean is within "
            f"{math.sqrt(2 * verdict['kl_tol']):.2g} target standard deviations). It is set by the "
            "optimiser, not by Monte Carlo noise: with sticking-the-landing gradients every "
            "per-sample gradient is exactly zero at q = p, so adam converges to the optimum itself "
            "(not to a noise ball whose size would scale with the learning rate); what is left "
            "after the schedule is the optimiser's own residual.",
            f"- Fits within tolerance: **{verdict['num_within_tol']} / {verdict['num_fits']}** "
            f"(all: **{verdict['all_reach_optimum']}**).",
            f"- Final exact KL: median {verdict['median_final_kl']:.2e}, worst "
            f"{verdict['max_final_kl']:.2e} (initial: median "
            f"{np.median(rec['initial_kl']):.1f}).",
            f"- Worst mean error {verdict['max_mahalanobis_mean_err']:.2e} (Mahalanobis), worst "
            f"|L_q − L_p| entry {verdict['max_scale_tril_abs_err']:.2e}.",
            f"- The looped fits reproduce the batched ones (same per-fit keys): max |Δμ| = "
            f"{rec['loop_vs_batched_max_abs_loc_diff']:.2e}.",
            "",
            "## Throughput (same run, compilation excluded, best of "
            f"{t['repeats']} on a shared machine)",
            "",
            *throughput.lines(),
            "",
            f"Speed-up of vmap over the loop: **×{t['speedup']:.1f}**. Compilation: batched "
            f"{t['compile_batched_seconds']:.1f} s, single {t['compile_single_seconds']:.1f} s. "
            f"Devices: {', '.join(rec['devices'])}.",
            "",
            f"Wall time: {wall:.1f} s.",
            "",
        ]
    )


def metric_rows(rec: dict) -> list[dict]:
    keys = (
        "final_kl",
        "initial_kl",
        "mahalanobis_mean_err",
        "loc_abs_err",
        "scale_tril_abs_err",
        "condition_number",
    )
    return [{"fit": i, **{k: rec[k][i] for k in keys}} for i in range(rec["num_fits"])]


def compute(cfg, run) -> dict:
    # One cell: timings are only meaningful when the whole comparison runs together.
    return run.cell("all", lambda: fits_and_timings(cfg))


def report(rec, cfg, run) -> Outputs:
    verdict = claims(rec, cfg)
    return Outputs(
        report_markdown(rec, verdict, cfg, run.wall_seconds),
        metrics=metric_rows(rec),
        figures={"batched_fits.png": figure(rec, cfg)},
        summary={"claims": verdict, "timing": rec["timing"]},
    )


EXPERIMENT = Experiment(
    "batched_fits", DEFAULT, __doc__, compute, report, "targets.num_fits=4000", validate
)
main = EXPERIMENT.main

if __name__ == "__main__":
    main()
