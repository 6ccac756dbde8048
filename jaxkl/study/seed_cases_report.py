"""Figures, CSV rows and the markdown report of the seed cases.

``experiments/seed_cases.py`` computes with :mod:`jaxkl.study.seed_cases` and
:mod:`jaxkl.study.residual_precision`; this module draws and writes up the results.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jaxkl.study.plotting import new_figure
from jaxkl.study.residual_precision import F32_EPS
from jaxkl.study.seed_cases import CASES, grid, normal_logpdf

__all__ = ["build_report", "case_title", "densities_figure", "metrics_rows", "precision_figure"]


def _label(loc, scale, name):
    return rf"{name} $= \mathcal{{N}}({loc:g},\,{scale:g}^2)$"


def densities_figure(cfg, analytic):
    fig, axes = new_figure(len(CASES), 2, figsize=(10.0, 3.6 * len(CASES)), squeeze=False)
    for row, name in enumerate(CASES):
        case = cfg["cases"][name]
        x = grid(case, {"points": 2001, "half_width": 4.5})
        la = normal_logpdf(x, case["loc_a"], case["scale_a"])
        lb = normal_logpdf(x, case["loc_b"], case["scale_b"])
        ax = axes[row, 0]
        ax.plot(x, np.exp(la), color="C0", label=_label(case["loc_a"], case["scale_a"], "a"))
        ax.plot(x, np.exp(lb), color="C1", label=_label(case["loc_b"], case["scale_b"], "b"))
        ax.set_title(f"{name}: densities")
        ax.set_xlabel("x")
        ax.legend(fontsize=8)
        ax = axes[row, 1]
        res = analytic[name]
        for f, color, lab, kl in (
            (np.exp(la) * (la - lb), "C0", r"$a\,\log(a/b)$", res["kl_ab"]),
            (np.exp(lb) * (lb - la), "C1", r"$b\,\log(b/a)$", res["kl_ba"]),
        ):
            ax.plot(x, f, color=color, label=f"{lab}: area = {kl:.4f}")
            ax.fill_between(x, f, 0.0, color=color, alpha=0.2, linewidth=0)
        ax.axhline(0.0, color="0.5", linewidth=0.6)
        ax.set_title(f"{name}: KL integrands (signed area = KL)")
        ax.set_xlabel("x")
        ax.legend(fontsize=8)
    return fig


def precision_figure(sweep, floor: float):
    fig, ax = new_figure(figsize=(7.0, 5.0))
    gap = np.asarray(sweep["gap"])
    for key, color, label in (
        (
            "textbook",
            "C3",
            r"textbook $\frac{1}{2}(\Delta\mu^2/\sigma_p^2+\Delta\sigma^2)"
            r"-\frac{1}{2}-\log\Delta\sigma$",
        ),
        (
            "generic",
            "C1",
            r"jaxkl.analytic.normal$(\mu_p+\Delta\mu,\ \sigma_p\Delta\sigma,"
            r"\ \mu_p,\ \sigma_p)$",
        ),
        (
            "residual",
            "C0",
            r"jaxkl.analytic.residual_normal$(\Delta\mu,\ \Delta\sigma,"
            r"\ \sigma_p)$",
        ),
    ):
        err = np.maximum(np.asarray(sweep[f"{key}_rel_err"]), floor)
        ax.loglog(gap, err, marker=".", color=color, label=label)
    ax.axhline(F32_EPS, color="0.4", linestyle="--", linewidth=0.8, label="float32 eps")
    ax.set_xlabel(r"$\Delta\sigma - 1$")
    ax.set_ylabel("relative error vs exact (float32 inputs)")
    ax.set_title(f"NVAE residual KL in float32 (exact results drawn at {floor:g})")
    fig.legend(loc="outside lower center", fontsize=7, ncols=2)
    return fig


def _f(v: float, digits: int = 4) -> str:
    if math.isinf(v) or math.isnan(v):
        return str(v)
    return f"{v:.{digits}f}" if abs(v) < 1e5 else f"{v:.4g}"


def _e(v: float) -> str:
    return f"{v:.2e}"


def case_title(case) -> str:
    return (
        f"a = N({case['loc_a']:g}, {case['scale_a']:g}²), "
        f"b = N({case['loc_b']:g}, {case['scale_b']:g}²)"
    )


def build_report(run_name: str, cfg, analytic, misuse, nv_random, sweep) -> str:
    seed = cfg["seed"]
    eps = cfg["misuse"]["clip_eps"]
    lines = [
        "# Seed cases: Normal KL, the discrete-KL misuse, NVAE's residual form",
        "",
        f"Run `{run_name}` (seed {seed}); the resolved config is `config.toml`, provenance "
        "(versions, git sha, devices) is in `summary.json`, every number below is also in "
        "`metrics.csv`. Scales are standard deviations: N(μ, σ²).",
        "",
        "## (a) KL between two normals, both directions",
        "",
        "| case | pair | KL(a‖b) | KL(b‖a) | quadrature a‖b | quadrature b‖a |",
        "|---|---|---|---|---|---|",
    ]
    for name in CASES:
        r = analytic[name]
        lines.append(
            f"| {name} | {case_title(cfg['cases'][name])} | {_f(r['kl_ab'])} | "
            f"{_f(r['kl_ba'])} | {_f(r['quad_ab'], 6)} | {_f(r['quad_ba'], 6)} |"
        )
    lines += [
        "",
        "KL(a‖b) from `jaxkl.kl` (float32); the quadrature columns integrate "
        "a(x)·log(a(x)/b(x)) with numpy densities on a trapezoid grid, independently of "
        "jaxkl. With the default config the two rows are the textbook numbers: 0.5 both ways "
        "for a unit shift at equal scale, 0.3181 and 0.8069 for N(0,1) against N(0,2²). "
        "KL is symmetric in the first case only because swapping the two distributions is "
        "a reflection there; in general it is not a distance.",
        "",
        "![densities and KL integrands](densities.png)",
        "",
        "Right column: the integrands. Their signed areas are the KLs — equal in the "
        "symmetric case (the two curves are mirror images), unequal in the asymmetric one: "
        "the narrow N(0,1) pays little for sitting inside the wide N(0,2²), the wide one "
        "pays a lot for its tails where N(0,1) has almost no mass.",
        "",
        "### The misuse: a discrete KL applied to samples or to density values",
        "",
        "A discrete KL takes two vectors and treats them as probability tables. Two "
        "conventions are reproduced in numpy: `entropy` = what `scipy.stats.entropy(pk, qk)` "
        "computes (normalise each vector to sum 1, then Σ p·log(p/q), +inf where p > 0 "
        f"meets q ≤ 0); `clipped` = a Keras-style `kl_divergence` (clip both to [{eps:g}, 1], "
        "then Σ p·log(p/q), no normalisation). They are fed either the raw samples "
        "(`x ~ a`, `y ~ b`: `entropy(x, y)`) or the densities at the samples "
        "(`entropy(a.pdf(x), b.pdf(x))`; for b‖a the points are `y ~ b`). "
        f"Fixed numpy seed ({seed}).",
        "",
    ]
    for name in CASES:
        m = misuse[name]
        lim = m["limits"]
        lines += [
            f"**{name}** ({case_title(cfg['cases'][name])}; true KL "
            f"{_f(analytic[name]['kl_ab'])} / {_f(analytic[name]['kl_ba'])}):",
            "",
            "| n | entropy(samples) a‖b / b‖a | clipped(samples) a‖b / b‖a | "
            "entropy(pdf) a‖b / b‖a | clipped(pdf) a‖b / b‖a |",
            "|---|---|---|---|---|",
        ]
        for r in m["rows"]:
            lines.append(
                f"| {r['n']} | {_f(r['entropy_samples_ab'])} / {_f(r['entropy_samples_ba'])} "
                f"| {_f(r['clipped_samples_ab'], 1)} / {_f(r['clipped_samples_ba'], 1)} "
                f"| {_f(r['entropy_pdf_ab'])} / {_f(r['entropy_pdf_ba'])} "
                f"| {_f(r['clipped_pdf_ab'], 2)} / {_f(r['clipped_pdf_ba'], 2)} |"
            )
        lines += [
            f"| n → ∞ | (inf or erratic) | n × {_f(lim['clipped_samples_ab_per_n'])} / "
            f"n × {_f(lim['clipped_samples_ba_per_n'])} | {_f(lim['entropy_pdf_ab'])} / "
            f"{_f(lim['entropy_pdf_ba'])} | n × {_f(lim['clipped_pdf_ab_per_n'])} / "
            f"n × {_f(lim['clipped_pdf_ba_per_n'])} |",
            "",
        ]
    sym = misuse["symmetric"]
    big = sym["rows"][-1]
    lines += [
        "Why every one of these numbers is meaningless as KL(a‖b):",
        "",
        "- **Samples are not probabilities.** A sample vector has negative entries "
        f"({100 * big['negative_fraction']:.0f}% of them in the symmetric case at "
        f"n = {big['n']}); `scipy.stats.entropy` normalises whatever it is given, and "
        "any entry with p > 0 and q ≤ 0 makes the sum +inf. Even for positive samples the "
        "value would depend on which x is paired with which y — on the order of the "
        "samples — which no divergence between distributions can do.",
        "- **Clipping hides the problem and grows with n.** The Keras-style sum never "
        "normalises, so it is a sum of n terms: its value is n times a fixed per-sample "
        "mean (last row) — thousands at n = 10⁴. This is the kind of number users report "
        "(e.g. '8582 vs 14130'): large, asymmetric, and a function of the sample size and "
        "the clip floor rather than of the two distributions.",
        "- **Density values at samples converge to the wrong limit.** Normalising "
        "a(x_i), b(x_i) with x_i ~ a makes a discrete distribution ∝ a(x)² over the "
        "samples, so `entropy(a.pdf(x), b.pdf(x))` → ∫a²·log(a/b)/∫a² + log(∫ab/∫a²). "
        f"For the symmetric pair that limit is {_f(sym['limits']['entropy_pdf_ab'])} both "
        "ways (exactly 1/4: half the true 0.5), which is what users see as "
        "'0.256 vs 0.255': stable, plausible-looking, and wrong.",
        "",
        "The right tools: `jaxkl.kl(a, b)` when a closed form exists; otherwise "
        "`jaxkl.mc_kl(key, a, b, n)` — the average of log a(x) − log b(x) over x ~ a — "
        "which returns an estimate with its standard error.",
        "",
        "## (b) NVAE's residual normal",
        "",
        "`jaxkl.analytic.residual_normal(Δμ, Δσ, σ_p)` is KL(N(μ_p+Δμ, (σ_p·Δσ)²) ‖ "
        "N(μ_p, σ_p²)) = ½(Δμ²/σ_p² + Δσ²) − ½ − log Δσ (Vahdat & Kautz 2020, eq. 2).",
        "",
        f"At {nv_random['n']} random parameter sets (μ_p ~ N(0,1), log σ_p ~ N(0,1), "
        "Δμ/σ_p ~ N(0,1), log Δσ ~ N(0, 0.5²)) against the generic "
        "`jaxkl.analytic.normal(μ_p+Δμ, σ_p·Δσ, μ_p, σ_p)`:",
        "",
        "| dtype | max abs diff | max rel diff | median rel diff |",
        "|---|---|---|---|",
    ]
    for dt in ("float32", "float64"):
        r = nv_random[dt]
        lines.append(
            f"| {dt} | {_e(r['max_abs_diff'])} | {_e(r['max_rel_diff'])} | "
            f"{_e(r['median_rel_diff'])} |"
        )
    r32 = nv_random["float32"]
    gap = np.asarray(sweep["gap"])
    lines += [
        "",
        "In float64 the two agree to rounding. In float32 the generic form's largest "
        "differences come from its inputs, not its formula: μ_p + Δμ and σ_p·Δσ are "
        "rounded before the kernel sees them, so small Δμ or Δσ near 1 lose relative "
        "precision. Against the exact KL at the float32 inputs the residual form's worst "
        f"relative error is {_e(r32['residual_max_rel_err'])} "
        f"({r32['residual_max_rel_err'] / F32_EPS:.1f} float32 eps, at log Δσ = "
        f"{r32['residual_worst_log_dscale']:.3g}), the generic form's "
        f"{_e(r32['generic_max_rel_err'])}.",
        "",
        f"**Float32 precision as Δσ → 1** (σ_p = {cfg['nvae']['sweep_scale_p']:g}, "
        f"μ_p = {cfg['nvae']['sweep_loc_p']:g}, Δμ = {cfg['nvae']['sweep_loc_ratio']:g}·σ_p·"
        f"(Δσ − 1); {gap.size} float32 values of Δσ from 1 + {gap.min():.3g} to "
        f"1 + {gap.max():.3g}). The reference is the formula evaluated in 50-digit decimal "
        "arithmetic at the exact float32 inputs.",
        "",
        "![float32 relative error](nvae_precision.png)",
        "",
        "| Δσ − 1 | exact KL | textbook rel err | generic rel err | residual_normal rel err |",
        "|---|---|---|---|---|",
    ]
    for target in 10.0 ** np.arange(math.ceil(np.log10(gap.min())), 0):
        if target > gap.max() * 1.0001:
            continue
        i = int(np.argmin(np.abs(np.log(gap / target))))
        lines.append(
            f"| {gap[i]:.3g} | {sweep['reference'][i]:.6g} | "
            f"{_e(sweep['textbook_rel_err'][i])} | {_e(sweep['generic_rel_err'][i])} | "
            f"{_e(sweep['residual_rel_err'][i])} |"
        )
    lines += [
        "",
        "The textbook expression sums terms of order 1 (½Δσ² ≈ ½ + (Δσ − 1), −½, "
        "−log Δσ) to get a KL of order (Δσ − 1)²: at Δσ − 1 = 10⁻³ the KL is ~10⁻⁶, so "
        "about six of float32's seven significant digits cancel. Further down the result "
        "is rounding debris: Δμ²/σ_p² vanishes entirely when added to Δσ² ≈ 1, and what "
        "survives of ½Δσ² − ½ − log Δσ depends on how 1 + g, its square and its log happen "
        "to round (in this sweep it settles on a fixed fraction of the true value, hence "
        "the plateau). The generic kernel is careful internally but receives σ_p·Δσ "
        "already rounded: that shifts t = log Δσ by up to half an ulp (~6·10⁻⁸) and, "
        "since the KL is ≈ t² there, its relative error grows like 10⁻⁷/(Δσ − 1). "
        "`residual_normal` writes the scale part as ½·expm1(2t) − t with "
        "t = log1p(Δσ − 1) and uses a short series for small t, so it never subtracts "
        "nearly equal numbers and stays within a few float32 ulps "
        f"(worst {_e(max(sweep['residual_rel_err']))} over the sweep; float32 eps "
        f"{_e(F32_EPS)}).",
        "",
    ]
    return "\n".join(lines)


def metrics_rows(cfg, analytic, misuse, nv_random, sweep) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(section, case, quantity, value, *, n="", reference=""):
        rows.append(
            {
                "section": section,
                "case": case,
                "quantity": quantity,
                "n": n,
                "value": value,
                "reference": reference,
            }
        )

    for name in CASES:
        r = analytic[name]
        for d in ("ab", "ba"):
            add("analytic", name, f"kl_{d}", r[f"kl_{d}"], reference=r[f"quad_{d}"])
            add("analytic", name, f"kl_{d}_f64", r[f"kl_{d}_f64"], reference=r[f"quad_{d}"])
        m = misuse[name]
        for row in m["rows"]:
            for k, v in row.items():
                if k == "n":
                    continue
                ref = m["limits"].get(k, "")
                if f"{k}_per_n" in m["limits"]:
                    ref = row["n"] * m["limits"][f"{k}_per_n"]
                add("misuse", name, k, v, n=row["n"], reference=ref)
    for dt in ("float32", "float64"):
        for k, v in nv_random[dt].items():
            add("nvae_random", dt, k, v, n=nv_random["n"])
    for key in ("textbook", "generic", "residual"):
        errs = np.asarray(sweep[f"{key}_rel_err"])
        add("nvae_sweep", "float32", f"{key}_max_rel_err", float(errs.max()), n=errs.size)
    for i, g in enumerate(sweep["gap"]):
        for key in ("textbook", "generic", "residual"):
            add(
                "nvae_sweep_point",
                f"gap={g:.6g}",
                f"{key}_value",
                sweep[f"{key}_value"][i],
                reference=sweep["reference"][i],
            )
    return rows
