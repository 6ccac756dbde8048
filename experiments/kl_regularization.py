"""KL regularisation of sequence policies: which RL configurations follow ∇KL_seq?

Usage (from the repository root):
    python experiments/kl_regularization.py [--config configs/kl_regularization.toml]
        [--set gradients.replicates=400] [--out results]

On the exactly enumerable toy policy of ``jaxkl.rl.toy``, every configuration of
``jaxkl.rl.kl_surrogate`` (placement × estimator × importance correction × aggregation ×
baseline) has its gradient measured against N = 1 … 2¹² sampled sequences — bias with
its SE, cosine, variance and its log-log slope, bootstrap over whole replicates — on- and
off-policy, and is trained with Adam towards the exact regularised optimum
π* ∝ π_ref·exp(R/β). The science lives in ``jaxkl.rl.gradient_study``,
``jaxkl.rl.training`` and ``jaxkl.study.kl_regularization_report``; this script only
wires the config, the cells and the outputs.

Writes results/kl_regularization/<run-name>/: config.toml, cells/ (one per group of
configurations and one per training run: a killed run resumes), metrics.csv (per group,
configuration and N), training.csv, summary.json, kl_regularization.png,
kl_regularization_variance.png and report.md.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from jaxkl.rl import KLConfig, all_configs
from jaxkl.rl.configurations import is_exact_regulariser
from jaxkl.rl.gradient_study import study_configs
from jaxkl.rl.toy import SequenceToy
from jaxkl.rl.training import train
from jaxkl.study import cell_id, require_config, require_min, require_nonempty
from jaxkl.study.experiment import Experiment, Outputs
from jaxkl.study.kl_regularization_report import (
    claims,
    figures,
    metric_rows,
    report_markdown,
    training_rows,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "configs" / "kl_regularization.toml"
GROUPS = ("on_policy", "off_policy", "aggregations")
TRACE_EVERY = 10  # training metrics are stored every this many steps


def _names(names: list[str]) -> list[KLConfig]:
    return all_configs() if names == ["all"] else [KLConfig.from_name(n) for n in names]


def validate(cfg) -> None:
    p, g = cfg["problem"], cfg["gradients"]
    lists = ("gradients.sizes", "gradients.on_policy", "gradients.off_policy")
    require_nonempty(cfg, *lists, "gradients.aggregations", "train.configs")
    require_min(cfg, 0, "problem.ref_scale", "train.beta")
    require_min(cfg, 1, "train.steps", "train.batch_size", "train.seeds")
    require_min(cfg, 2, "gradients.bootstrap")
    require_min(cfg, 0, "train.learning_rate", strict=True)
    require_config(2 <= p["vocab_size"] <= 8, "problem.vocab_size", "must be in 2 … 8")
    require_config(1 <= p["horizon"] <= 4, "problem.horizon", "must be in 1 … 4")
    require_config(-1 <= p["end_token"] < p["vocab_size"], "problem.end_token", "-1 or a token")
    sizes = g["sizes"]
    require_config(
        sizes == sorted(set(sizes)) and sizes[0] >= 1, "gradients.sizes", "strictly increasing"
    )
    require_config(g["replicates"] >= 2, "gradients.replicates", "must be >= 2")
    for key in ("on_policy", "off_policy", "aggregations"):
        try:
            _names(g[key])
        except ValueError as err:
            require_config(False, f"gradients.{key}", str(err))
    try:
        [KLConfig.from_name(n) for n in cfg["train"]["configs"] if n != "exact"]
    except ValueError as err:
        require_config(False, "train.configs", str(err))


def build(cfg) -> dict:
    """The toy, π_ref, π_θ, b and the reward, from the config's seed."""
    p = cfg["problem"]
    problem = SequenceToy(
        p["vocab_size"], p["horizon"], None if p["end_token"] < 0 else p["end_token"]
    )
    key = jax.random.key(cfg["seed"])
    ref = problem.random_logits(jax.random.fold_in(key, 0), p["ref_scale"])
    theta = ref + problem.random_logits(jax.random.fold_in(key, 1), p["policy_offset"])
    behaviour = theta + problem.random_logits(jax.random.fold_in(key, 2), p["behaviour_offset"])
    reward = problem.random_reward(jax.random.fold_in(key, 3), cfg["train"]["reward_scale"])
    probs = np.exp(np.asarray(problem.sequence_log_probs(theta), np.float64))
    setup = {
        "num_sequences": problem.num_sequences,
        "num_params": int(theta.size),
        "kl_seq": float(problem.kl_seq(theta, ref)),
        "kl_behaviour": float(problem.kl_seq(behaviour, theta)),
        "mean_length": float(probs @ np.asarray(problem.sequences.mask).sum(1)),
    }
    return dict(
        problem=problem,
        ref=ref,
        theta=theta,
        behaviour=behaviour,
        reward=reward,
        key=key,
        setup=setup,
    )


def gradient_group(cfg, w, group: str) -> dict:
    g = cfg["gradients"]
    off = group == "off_policy"
    return study_configs(
        w["problem"],
        w["theta"],
        w["ref"],
        _names(g[group]),
        jax.random.fold_in(w["key"], 10 + GROUPS.index(group)),
        sizes=g["sizes"],
        replicates=g["replicates"],
        bootstrap=g["bootstrap"],
        behaviour=w["behaviour"] if off else None,
    )


def training_run(cfg, w, name: str) -> dict:
    t = cfg["train"]
    config = None if name == "exact" else KLConfig.from_name(name)
    out = train(
        w["problem"],
        w["ref"],
        w["reward"],
        t["beta"],
        config,
        w["ref"],
        jax.random.fold_in(w["key"], 20),
        steps=t["steps"],
        batch_size=t["batch_size"],
        learning_rate=t["learning_rate"],
        seeds=t["seeds"],
    )
    seeds = out["kl_to_optimum"].shape[0]
    kl, every = out["kl_to_optimum"][:, ::TRACE_EVERY], TRACE_EVERY  # keep the results small
    return {
        "step_every": every,
        "kl_to_optimum": kl.mean(0),
        "kl_to_optimum_se": kl.std(0, ddof=1) / np.sqrt(seeds),
        "kl_seq": out["kl_seq"][:, ::every].mean(0),
        "final_kl_to_optimum": out["final_kl_to_optimum"],
    }


def compute(cfg, run) -> dict:
    w = build(cfg)
    gradients = {
        group: run.cell(
            cell_id(part="gradients", group=group), lambda g=group: gradient_group(cfg, w, g)
        )
        for group in GROUPS
        if cfg["gradients"][group]
    }
    training = {
        name: run.cell(cell_id(part="train", config=name), lambda n=name: training_run(cfg, w, n))
        for name in cfg["train"]["configs"]
    }
    for name, rec in training.items():  # the verdict is the table's, not stored in cells
        rec["unbiased"] = name == "exact" or is_exact_regulariser(KLConfig.from_name(name))
    return {"setup": w["setup"], "gradients": gradients, "training": training}


def report(res, cfg, run) -> Outputs:
    gradients, training = res["gradients"], res["training"]
    verdicts = claims(gradients, training)
    markdown = report_markdown(cfg, res["setup"], gradients, training, verdicts, run.wall_seconds)
    stated = ("rel_bias", "rel_bias_se", "noise_floor", "rel_to_stated", "cos")
    summary = {
        "setup": res["setup"],
        "claims": verdicts,
        "gradients": {
            group: {
                n: {k: r[k] for k in ("unbiased", "exact_rel_bias", "variance_slope")}
                | {k: r[k][-1] for k in stated}
                for n, r in recs.items()
            }
            for group, recs in gradients.items()
        },
        "training": {n: r["final_kl_to_optimum"] for n, r in training.items()},
    }
    return Outputs(
        markdown,
        metrics=metric_rows(gradients),
        tables={"training.csv": training_rows(training)},
        figures=figures(gradients, training, cfg),
        summary=summary,
    )


EXPERIMENT = Experiment(
    "kl_regularization", DEFAULT, __doc__, compute, report, "gradients.replicates=400", validate
)
main = EXPERIMENT.main

if __name__ == "__main__":
    main()
