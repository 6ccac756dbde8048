"""Seed cases: textbook Normal KL values, the discrete-KL misuse, NVAE's residual form.

(a) KL(N(0,1)‖N(1,1)) = KL(N(1,1)‖N(0,1)) = 0.5, while N(0,1) and N(0,2²) give 0.3181 one
    way and 0.8069 the other; a figure shows the pointwise integrands a·log(a/b) whose
    areas are these numbers. Then what happens when samples, or density values at
    samples, are fed to a *discrete* KL (``scipy.stats.entropy`` or a Keras-style clipped
    sum): the numbers that come out are well defined, reproducible and meaningless.
(b) ``jaxkl.analytic.residual_normal(Δμ, Δσ, σ_p)`` equals the generic
    ``jaxkl.analytic.normal(μ_p+Δμ, σ_p·Δσ, μ_p, σ_p)``, and stays accurate in float32 as
    Δσ → 1 and Δμ → 0 where the textbook formula cancels to noise; the reference is exact
    decimal arithmetic at the float32 inputs.

Run from the repository root:
    .venv/bin/python experiments/seed_cases.py --config configs/seed_cases.toml
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from jaxkl.study import require_config
from jaxkl.study.experiment import Experiment, Outputs
from jaxkl.study.residual_precision import nvae_random, nvae_sweep
from jaxkl.study.seed_cases import CASES, analytic_case, misuse_case
from jaxkl.study.seed_cases_report import (
    build_report,
    case_title,
    densities_figure,
    metrics_rows,
    precision_figure,
)

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "seed_cases.toml"


def validate(cfg: dict[str, Any]) -> None:
    """Impossible values, rejected before any compute."""
    for name in CASES:
        case = cfg["cases"][name]
        for k in ("loc_a", "loc_b"):
            require_config(math.isfinite(case[k]), f"cases.{name}.{k}", "must be finite")
        for k in ("scale_a", "scale_b"):
            ok = math.isfinite(case[k]) and case[k] > 0
            require_config(ok, f"cases.{name}.{k}", "must be finite and > 0")
    mis = cfg["misuse"]
    require_config(len(mis["sample_sizes"]) > 0, "misuse.sample_sizes", "must not be empty")
    require_config(
        all(n >= 2 for n in mis["sample_sizes"]), "misuse.sample_sizes", "every size must be >= 2"
    )
    require_config(0 < mis["clip_eps"] < 1, "misuse.clip_eps", "must be in (0, 1)")
    quad = cfg["quadrature"]
    require_config(quad["points"] >= 101, "quadrature.points", "must be >= 101")
    require_config(quad["half_width"] >= 6, "quadrature.half_width", "must be >= 6 (scales)")
    nv = cfg["nvae"]
    require_config(nv["num_random"] >= 1, "nvae.num_random", "must be >= 1")
    require_config(math.isfinite(nv["sweep_loc_p"]), "nvae.sweep_loc_p", "must be finite")
    require_config(nv["sweep_scale_p"] > 0, "nvae.sweep_scale_p", "must be > 0")
    require_config(math.isfinite(nv["sweep_loc_ratio"]), "nvae.sweep_loc_ratio", "must be finite")
    require_config(
        -7.5 <= nv["min_log10_gap"] < nv["max_log10_gap"] <= 0,
        "nvae.min_log10_gap",
        "need -7.5 <= min_log10_gap < max_log10_gap <= 0 (float32 cannot resolve Δσ − 1 below"
        " ~1.2e-7)",
    )
    require_config(nv["num_gaps"] >= 2, "nvae.num_gaps", "must be >= 2")
    require_config(cfg["plot"]["dpi"] >= 20, "plot.dpi", "must be >= 20")


def compute(cfg, run) -> dict[str, Any]:
    seed = cfg["seed"]
    return {
        "analytic": {
            name: run.cell(
                f"analytic_{name}",
                lambda name=name: analytic_case(cfg["cases"][name], cfg["quadrature"]),
            )
            for name in CASES
        },
        "misuse": {
            name: run.cell(
                f"misuse_{name}",
                lambda i=i, name=name: misuse_case(cfg["cases"][name], cfg, seed, i),
            )
            for i, name in enumerate(CASES)
        },
        "nv_random": run.cell("nvae_random", lambda: nvae_random(cfg["nvae"], seed)),
        "sweep": run.cell("nvae_sweep", lambda: nvae_sweep(cfg["nvae"])),
    }


def report(res, cfg, run) -> Outputs:
    analytic, misuse = res["analytic"], res["misuse"]
    nv_random, sweep = res["nv_random"], res["sweep"]
    printed = [
        f"{name:>10}: {case_title(cfg['cases'][name])}: "
        f"KL(a‖b) = {analytic[name]['kl_ab']:.4f}, KL(b‖a) = {analytic[name]['kl_ba']:.4f}"
        for name in CASES
    ]
    printed.append(
        f"      nvae: residual_normal vs normal, max rel diff "
        f"{nv_random['float32']['max_rel_diff']:.2e} (float32), "
        f"{nv_random['float64']['max_rel_diff']:.2e} (float64)"
    )
    errors = ("textbook", "generic", "residual")
    return Outputs(
        build_report(run.name, cfg, analytic, misuse, nv_random, sweep),
        metrics=metrics_rows(cfg, analytic, misuse, nv_random, sweep),
        figures={
            "densities.png": densities_figure(cfg, analytic),
            "nvae_precision.png": precision_figure(sweep, floor=1e-10),
        },
        dpi=cfg["plot"]["dpi"],
        summary={
            "kl": {
                name: {"ab": analytic[name]["kl_ab"], "ba": analytic[name]["kl_ba"]}
                for name in CASES
            },
            "nvae_random": nv_random,
            "nvae_sweep_max_rel_err": {key: max(sweep[f"{key}_rel_err"]) for key in errors},
        },
        printed=printed,
    )


EXPERIMENT = Experiment(
    "seed_cases", DEFAULT_CONFIG, __doc__, compute, report, "nvae.num_random=500", validate
)
main = EXPERIMENT.main

if __name__ == "__main__":
    main()
