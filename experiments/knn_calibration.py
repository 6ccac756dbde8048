"""k-NN calibration: the bias of knn_kl and the coverage of its subsample intervals.

For Gaussian pairs with closed-form KL(P‖Q), replicates of ``knn_kl(x, y)`` with x ~ P and
y ~ Q (n = m, float32) give

* the bias: mean − KL, with the standard error of the mean (sd / √R), also relative to
  KL;
* the calibration of ``stderr``: the replicates' sd over the root-mean-square stderr
  (1 when calibrated), with its standard error ratio / √(2(R − 1));
* coverage of KL by value ± t·stderr, with t the 97.5 % quantile of Student-t with G − 1
  degrees of freedom (G = the subsamples behind the stderr: 10 here) and, for comparison,
  with t = 1.96 (the normal quantile, too narrow for an sd of 10 values); each with its
  binomial standard error √(c(1 − c)/R).

Samplers (``sampler`` of a run): "float64" draws normals in float64 (numpy's PCG64, one
generator per replicate) and rounds them to float32, so exact copies are as rare as
float32 allows; "jax32" is ``jax.random.normal`` in float32, which maps 23 random bits
through erfinv and so takes about 2²³ values: in 1-D at n = 10⁴ a few points in a
thousand coincide exactly, and k-NN, which sees every copy, is biased by them.

Every figure of ``knn_kl``'s docstring comes from the committed run of this script.

Run from the repository root:
    .venv/bin/python experiments/knn_calibration.py --config configs/knn_calibration.toml

(``--publish`` also copies the summary files to results/knn_calibration/, the committed
copy.)
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxkl
from jaxkl.estimators.knn import subsample_groups
from jaxkl.study import atomic_write_bytes, cell_id, require_config
from jaxkl.study.calibration import calibration_summary, kl_diag_gaussians
from jaxkl.study.experiment import Experiment, Outputs
from jaxkl.study.report import Table, pm

NAME = "knn_calibration"
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / f"{NAME}.toml"
SAMPLERS = ("float64", "jax32")
PUBLISHED = ("summary.json", "report.md", "metrics.csv")


def validate(cfg: dict[str, Any]) -> None:
    """Impossible values, rejected before any compute."""
    require_config(cfg["k"] >= 1, "k", "must be >= 1")
    require_config(cfg["chunk"] >= 1, "chunk", "must be >= 1")
    require_config(bool(cfg["runs"]), "runs", "must name at least one run")
    for name, run in cfg["runs"].items():
        key = f"runs.{name}"
        require_config(run["case"] in cfg["cases"], f"{key}.case", "must name a [cases] entry")
        require_config(run["sampler"] in SAMPLERS, f"{key}.sampler", f"one of {SAMPLERS}")
        sizes, reps = run["sizes"], run["replicates"]
        require_config(
            bool(sizes) and len(sizes) == len(reps), f"{key}.replicates", "one count per size"
        )
        require_config(
            all(n >= 2 * (cfg["k"] + 1) for n in sizes), f"{key}.sizes", "each must be >= 2(k+1)"
        )
        require_config(all(r >= 2 for r in reps), f"{key}.replicates", "each must be >= 2")
    for name, case in cfg["cases"].items():
        key = f"cases.{name}"
        d = len(case["p_loc"])
        lengths = [len(case[k]) for k in ("p_loc", "p_scale", "q_loc", "q_scale")]
        require_config(d >= 1 and all(v == d for v in lengths), key, "vectors of one length")
        values = [v for k in ("p_loc", "p_scale", "q_loc", "q_scale") for v in case[k]]
        require_config(all(math.isfinite(v) for v in values), key, "values must be finite")
        require_config(
            min(case["p_scale"] + case["q_scale"]) > 0, f"{key}.p_scale", "scales must be > 0"
        )


def replicates(case, n: int, reps: int, cfg, sampler: str, index: int) -> np.ndarray:
    """``[reps, 2]`` (value, stderr) of knn_kl on independent draws, n = m."""
    k, chunk = cfg["k"], cfg["chunk"]
    p_loc, p_scale = np.asarray(case["p_loc"]), np.asarray(case["p_scale"])
    q_loc, q_scale = np.asarray(case["q_loc"]), np.asarray(case["q_scale"])
    d = len(p_loc)
    key = jax.random.fold_in(jax.random.key(cfg["seed"]), index)

    def jax32(i):
        kx, ky = jax.random.split(jax.random.fold_in(key, i))
        x = p_loc[None, :] + p_scale[None, :] * jax.random.normal(kx, (n, d))
        y = q_loc[None, :] + q_scale[None, :] * jax.random.normal(ky, (n, d))
        return x.astype(jnp.float32), y.astype(jnp.float32)

    def float64(i):
        rng = np.random.default_rng([cfg["seed"], index, i])
        x = p_loc + p_scale * rng.standard_normal((n, d))
        y = q_loc + q_scale * rng.standard_normal((n, d))
        return x.astype(np.float32), y.astype(np.float32)

    batch = _batched_estimate(k)
    draw = jax.jit(jax.vmap(jax32)) if sampler == "jax32" else None
    out = []
    for lo in range(0, reps, chunk):
        ids = np.arange(lo, min(lo + chunk, reps))
        if draw is not None:
            x, y = draw(jnp.asarray(ids))
        else:
            x, y = (np.stack(a) for a in zip(*(float64(i) for i in ids), strict=True))
        out.append(np.asarray(batch(x, y)))
    return np.concatenate(out).astype(np.float64)


@functools.cache
def _batched_estimate(k: int):
    """jit(vmap(knn_kl)) → [batch, (value, stderr)]; one per k, so runs whose shapes agree
    share the compiled program."""

    def estimate(x, y):
        est = jaxkl.knn_kl(x, y, k=k)
        return jnp.stack([est.value, est.stderr])

    return jax.jit(jax.vmap(estimate))


def run_cell(cfg, name: str, n: int, reps: int, index: int) -> dict[str, Any]:
    run = cfg["runs"][name]
    case = cfg["cases"][run["case"]]
    draws = replicates(case, n, reps, cfg, run["sampler"], index)
    groups = subsample_groups(n, n, cfg["k"])
    return {
        "run": name,
        "case": run["case"],
        "sampler": run["sampler"],
        "d": len(case["p_loc"]),
        "n": n,
        **calibration_summary(draws, kl_diag_gaussians(case), groups),
    }


def _pm(value: float, se: float, digits: int = 3, percent: bool = False) -> str:
    scale, unit = (100.0, " %") if percent else (1.0, "")
    return pm(value * scale, se * scale, f".{digits}g", ".2g", unit=unit)


def build_report(cfg, cells: list[dict[str, Any]]) -> str:
    lines = [
        "# k-NN calibration",
        "",
        f"`knn_kl(x, y, k={cfg['k']})`, x ~ P, y ~ Q, n = m, float32; each figure ± its "
        "standard error over the replicates (R). Coverage: the share of replicates whose "
        "interval value ± q·stderr contains KL(P‖Q), with q = t₀.₉₇₅(G − 1) (G = 10 "
        "subsamples, q = 2.262) or q = 1.96.",
        "",
    ]
    columns = ("run", "sampler", "d", "n = m", "R", "KL", "mean − KL", "relative")
    table = Table(*columns, "sd / rms stderr", "coverage, t", "coverage, 1.96")
    for c in cells:
        ratios = ("sd_over_rms_stderr", "coverage_t", "coverage_normal")
        table.row(
            *(c[k] for k in ("run", "sampler", "d")),
            f"{c['n']:,}",
            c["replicates"],
            f"{c['truth']:.4g}",
            _pm(c["bias"], c["bias_se"]),
            _pm(c["relative_bias"], c["relative_bias_se"], 2, percent=True),
            *(_pm(c[k], c[f"{k}_se"]) for k in ratios),
        )
    lines += [*table.lines(), "", "Cases (x ~ P, y ~ Q; diagonal Gaussians):", ""]
    for name, case in cfg["cases"].items():
        lines.append(
            f"* `{name}`: P = N({case['p_loc']}, diag {case['p_scale']}²), "
            f"Q = N({case['q_loc']}, diag {case['q_scale']}²), KL = "
            f"{kl_diag_gaussians(case):.4g}"
        )
    lines += [
        "",
        "Reproduce:",
        "",
        "```",
        ".venv/bin/python experiments/knn_calibration.py --config configs/knn_calibration.toml",
        "```",
        "",
    ]
    return "\n".join(lines)


def compute(cfg, run) -> list[dict[str, Any]]:
    cells, index = [], 0
    for name, spec in cfg["runs"].items():
        for n, reps in zip(spec["sizes"], spec["replicates"], strict=True):
            cid = cell_id(run=name, n=n, replicates=reps)
            cells.append(
                run.cell(
                    cid, lambda name=name, n=n, reps=reps, i=index: run_cell(cfg, name, n, reps, i)
                )
            )
            index += 1
            c = cells[-1]
            print(
                f"{name} n={n}: bias {_pm(c['relative_bias'], c['relative_bias_se'], 2, True)}, "
                f"coverage t {_pm(c['coverage_t'], c['coverage_t_se'])}",
                flush=True,
            )
    return cells


def report(cells, cfg, run) -> Outputs:
    return Outputs(build_report(cfg, cells), metrics=cells, summary={"cells": cells})


def publish(run) -> None:
    """``--publish``: copy the summary files to <out>/knn_calibration/, the committed copy."""
    if run.args.publish:
        for name in PUBLISHED:
            copy = Path(run.args.out) / NAME / name
            atomic_write_bytes(copy, run.folder.file(name).read_bytes())


def add_publish(parser) -> None:
    parser.add_argument(
        "--publish",
        action="store_true",
        help=f"also copy {', '.join(PUBLISHED)} to <out>/{NAME}/ (the committed copy)",
    )


EXPERIMENT = Experiment(
    NAME, DEFAULT_CONFIG, __doc__, compute, report, "k=5", validate, add_publish, after=publish
)
main = EXPERIMENT.main

if __name__ == "__main__":
    main()
