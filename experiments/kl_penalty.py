"""RLHF-style KL penalties on sampled tokens: which ones pull the policy towards KL(q‖p)?

Usage (from the repository root):
    python experiments/kl_penalty.py [--config configs/kl_penalty.toml]
        [--set bias.replicates=10000] [--out results]

A categorical policy q = softmax(θ) over K tokens is regularised towards a reference p.
The penalty is computed as in RLHF code: tokens x_i ~ q are sampled, held fixed, and k1,
k2 or k3 of log q_θ(x_i) − log p(x_i) is used as a loss (``jaxkl.fit.sampled_kl_penalty``).

1. Gradient bias at the initial policy: many replicates of each penalty's gradient are
   compared with the exact gradient of KL(q‖p) (cosine similarity, relative error, with
   standard errors) and tested against what theory predicts for their expectation:
   k1 → 0, k2 → ∇KL(q‖p), k3 → ∇KL(p‖q).
2. Training: θ is optimised by adam on −E_q[reward] + β·penalty (the reward term exact,
   over the full vocabulary, so the penalty is the only noise) with each penalty, next to
   the exact full-vocabulary reverse and forward KL; the true KL(q‖p) is tracked.

Writes results/kl_penalty/<run-name>/: config.toml, cells/, metrics.csv (trajectories),
summary.json, kl_penalty.png and report.md.
"""

from __future__ import annotations

from pathlib import Path

import jax

from jaxkl.rl.categorical_penalty import (
    OBJECTIVES,
    penalty_gradient_bias,
    penalty_trajectories,
    regularised_optima,
)
from jaxkl.study import cell_id, require_min, require_subset
from jaxkl.study.experiment import Experiment, Outputs
from jaxkl.study.kl_penalty_report import (
    bias_claims,
    figure,
    metric_rows,
    report_markdown,
    train_claims,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "configs" / "kl_penalty.toml"


def validate(cfg) -> None:
    require_min(cfg, 2, "problem.num_categories", "bias.num_tokens", "bias.replicates")
    require_min(cfg, 2, "train.num_tokens")
    require_min(cfg, 2, "train.seeds")  # standard errors across seeds
    require_min(cfg, 1, "train.num_steps")
    require_min(cfg, 0, "problem.ref_logit_scale", "problem.init_logit_noise")
    require_min(cfg, 0, "problem.reward_scale")
    require_min(cfg, 0, "problem.beta", "train.learning_rate", strict=True)
    require_subset(cfg, "train.objectives", OBJECTIVES)


def build_problem(cfg) -> dict:
    """Reference logits, initial policy logits and the per-token reward (float32)."""
    pr = cfg["problem"]
    key = jax.random.key(cfg["seed"])
    k = pr["num_categories"]
    ref = pr["ref_logit_scale"] * jax.random.normal(jax.random.fold_in(key, 0), (k,))
    reward = pr["reward_scale"] * jax.random.normal(jax.random.fold_in(key, 1), (k,))
    theta0 = ref + pr["init_logit_noise"] * jax.random.normal(jax.random.fold_in(key, 2), (k,))
    return {"ref": ref, "reward": reward, "theta0": theta0, "key": jax.random.fold_in(key, 3)}


def compute(cfg, run) -> dict:
    problem, b, t = build_problem(cfg), cfg["bias"], cfg["train"]
    start = (problem["theta0"], problem["ref"])
    bias = run.cell(
        cell_id(part="gradient_bias"),
        lambda: penalty_gradient_bias(
            jax.random.fold_in(problem["key"], 0), *start, b["num_tokens"], b["replicates"]
        ),
    )
    traj = run.cell(
        cell_id(part="trajectories"),
        lambda: penalty_trajectories(
            jax.random.fold_in(problem["key"], 1),
            *start,
            problem["reward"],
            cfg["problem"]["beta"],
            t["objectives"],
            **{k: t[k] for k in ("num_tokens", "num_steps", "learning_rate", "seeds")},
        ),
    )
    optima = regularised_optima(problem["ref"], problem["reward"], cfg["problem"]["beta"])
    return bias, traj, optima


def report(res, cfg, run) -> Outputs:
    bias, traj, optima = res
    bclaims, tclaims = bias_claims(bias), train_claims(traj, optima)
    return Outputs(
        report_markdown(cfg, bias, bclaims, tclaims, run.wall_seconds),
        metrics=metric_rows(traj),
        figures={"kl_penalty.png": figure(bias, traj, optima, cfg)},
        summary={"gradient_bias": bias, "claims": bclaims, "training": tclaims},
    )


EXPERIMENT = Experiment(
    "kl_penalty", DEFAULT, __doc__, compute, report, "bias.replicates=10000", validate
)
main = EXPERIMENT.main

if __name__ == "__main__":
    main()
