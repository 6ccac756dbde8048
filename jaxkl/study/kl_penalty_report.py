"""Claims, figure, CSV rows and the markdown report of the KL-penalty experiment.

The experiment (``experiments/kl_penalty.py``) computes with :mod:`jaxkl.rl.categorical_penalty`;
this module turns what it computed into verdicts and the written report.
"""

from __future__ import annotations

import numpy as np

from jaxkl.rl.categorical_penalty import PENALTIES, PREDICTED
from jaxkl.study.plotting import new_figure
from jaxkl.study.report import Claim, Table, pm

__all__ = ["Z_MAX", "bias_claims", "figure", "metric_rows", "report_markdown", "train_claims"]

LABELS = {
    "exact_reverse": "exact KL(q‖p), full vocabulary",
    "exact_forward": "exact KL(p‖q), full vocabulary",
    "k1": "k1 on sampled tokens",
    "k2": "k2 on sampled tokens",
    "k3": "k3 on sampled tokens",
}
COLORS = {"exact_reverse": "k", "exact_forward": "0.55", "k1": "C3", "k2": "C2", "k3": "C1"}
# A prediction holds when its z-scores are within this many SEs in every direction.
Z_MAX = 5.0


# --------------------------------------------------------------------------- gradient bias


def bias_claims(bias: dict) -> dict:
    """Each penalty's predicted expectation holds (|z| ≤ 5 in both directions), and the
    honest one (∇KL(q‖p)) is rejected (|z| > 5 in some direction) for k1 and k3."""
    out = {"z_max": Z_MAX}
    for name in PENALTIES:
        z, pred = bias[name]["z"], PREDICTED[name]
        out[name] = {
            "predicted": pred,
            "prediction_holds": Claim(f"{name} follows {pred}", z[pred], Z_MAX).holds,
            "honest": Claim(f"{name} follows ∇KL(q‖p)", z["reverse"], Z_MAX).holds,
            "z_predicted": z[pred],
            "z_honest": z["reverse"],
        }
    out["all_hold"] = all(out[n]["prediction_holds"] for n in PENALTIES) and (
        out["k2"]["honest"] and not out["k1"]["honest"] and not out["k3"]["honest"]
    )
    return out


# --------------------------------------------------------------------------- training


def train_claims(traj: dict, optima: dict) -> dict:
    """Where each run ends: final true KL(q‖p) and reward (mean ± SE over seeds)."""
    out = {
        "optimum_reverse": optima["reverse"],
        "optimum_forward": optima["forward"],
        "optimum_unregularised": optima["unregularised"],
    }
    for name, tr in traj.items():
        out[name] = {m: [tr[m][-1], tr[f"{m}_se"][-1]] for m in ("kl_qp", "kl_pq", "reward")}
    return out


# --------------------------------------------------------------------------- outputs


def figure(bias: dict, traj: dict, optima: dict, cfg):
    fig, axes = new_figure(1, 3, figsize=(16.5, 4.8))
    ax = axes[0]
    x = np.arange(len(PENALTIES))
    pred = bias["predicted_projections"]
    for off, d, label, c in (
        (-0.18, "u_rev", "along ∇KL(q‖p)", "0.25"),
        (0.18, "u_perp", "along ∇KL(p‖q) ⊥ ∇KL(q‖p)", "0.65"),
    ):
        vals = [bias[n]["projections"][d][0] for n in PENALTIES]
        ses = [bias[n]["projections"][d][1] for n in PENALTIES]
        ax.bar(
            x + off, vals, width=0.34, yerr=[2 * s for s in ses], color=c, label=label, capsize=3
        )
        for i, n in enumerate(PENALTIES):
            ax.plot(
                x[i] + off,
                pred[PREDICTED[n]][d],
                marker="_",
                ms=22,
                mew=2.5,
                color="C3",
                label="predicted E[∇]" if (i, d) == (0, "u_rev") else None,
            )
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x, [f"{n} penalty" for n in PENALTIES])
    ax.set_ylabel("mean gradient · u  /  ‖∇KL(q‖p)‖")
    ax.set_title(
        f"penalty gradient at the start, {bias['replicates']}×{bias['num_tokens']} "
        "tokens (±2 SE)\nhonest = (1, 0); k1 predicted (0, 0); k3 predicted ∇KL(p‖q)",
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="upper left")

    steps = None
    for ax, metric, ylabel in (
        (axes[1], "kl_qp", "true KL(q‖p)"),
        (axes[2], "kl_pq", "true KL(p‖q)"),
    ):
        for name, tr in traj.items():
            v, s = np.asarray(tr[metric]), np.asarray(tr[f"{metric}_se"])
            steps = np.arange(v.shape[0])
            ls = "--" if name.startswith("exact") else "-"
            ax.plot(steps, v, ls=ls, color=COLORS[name], label=LABELS[name], lw=1.5)
            ax.fill_between(steps, v - 2 * s, v + 2 * s, color=COLORS[name], alpha=0.2, lw=0)
        ax.axhline(
            optima["reverse"][metric],
            color="C0",
            ls=":",
            lw=1.2,
            label="optimum of E[r] − β·KL(q‖p)",
        )
        ax.axhline(
            optima["forward"][metric],
            color="C4",
            ls=":",
            lw=1.2,
            label="optimum of E[r] − β·KL(p‖q)",
        )
        if np.isfinite(optima["unregularised"][metric]):
            ax.axhline(
                optima["unregularised"][metric],
                color="C3",
                ls=":",
                lw=1.2,
                label="optimum of E[r] alone (no penalty)",
            )
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.set_title(
            f"{ylabel} while maximising E[r] − β·penalty\n(mean ± 2 SE over "
            f"{cfg['train']['seeds']} seeds)",
            fontsize=9,
        )
    axes[1].legend(fontsize=7, loc="lower right")
    return fig


def metric_rows(traj: dict) -> list[dict]:
    rows = []
    for name, tr in traj.items():
        for s in range(len(tr["kl_qp"])):
            rows.append(
                {
                    "objective": name,
                    "step": s,
                    **{
                        m: tr[m][s]
                        for m in ("kl_qp", "kl_qp_se", "kl_pq", "kl_pq_se", "reward", "reward_se")
                    },
                }
            )
    return rows


def report_markdown(cfg, bias, bclaims, tclaims, wall: float) -> str:
    pr, b, t = cfg["problem"], cfg["bias"], cfg["train"]
    ex = bias["exact"]
    lines = [
        "# KL penalties on sampled tokens (RLHF style): which gradients are honest?",
        "",
        f"Policy q = softmax(θ) over K = {pr['num_categories']} tokens; reference p = "
        f"softmax({pr['ref_logit_scale']}·N(0, I)); θ starts at p's logits + "
        f"{pr['init_logit_noise']}·N(0, I) (KL(q‖p) = {ex['kl_qp']:.4f}, KL(p‖q) = "
        f"{ex['kl_pq']:.4f}). Penalties: tokens x_i ~ q are sampled and held fixed; k1 = log q "
        "− log p, k2 = ½(log q − log p)², k3 = (p/q − 1) − log(p/q), averaged, as a loss.",
        "",
        "![kl penalty](kl_penalty.png)",
        "",
        f"## 1. Gradient bias at the initial policy ({b['replicates']} replicates of "
        f"{b['num_tokens']} tokens)",
        "",
        f"‖∇KL(q‖p)‖ = {ex['grad_rev_norm']:.4f}, ‖∇KL(p‖q)‖ = {ex['grad_fwd_norm']:.4f}, and "
        f"their cosine is {ex['cos_grad_rev_grad_fwd']:.3f}: the two directions are distinct. "
        "Mean gradient = average over replicates (the expectation, up to noise); per step = one "
        "replicate (what one optimiser step sees). SEs: delta method over replicates.",
        "",
    ]
    table = Table(
        "penalty",
        f"value ± SE (KL(q‖p) = {ex['kl_qp']:.4f})",
        "cos(mean grad, ∇KL(q‖p))",
        "cos(mean grad, ∇KL(p‖q))",
        "rel. error of mean grad (noise floor)",
        "‖mean grad‖/‖∇KL(q‖p)‖",
        "per-step cos",
        "per-step rel. error",
    )
    for n in PENALTIES:
        s = bias[n]
        table.row(
            n,
            pm(s["value"], s["value_se"], ".4f"),
            *(pm(s[k], s[f"{k}_se"]) for k in ("mean_grad_cos_rev", "mean_grad_cos_fwd")),
            f"{pm(s['mean_grad_rel_err'], s['mean_grad_rel_err_se'])} "
            f"({s['mean_grad_rel_err_noise_floor']:.3f})",
            f"{s['mean_grad_norm_over_exact']:.3f}",
            pm(*s["per_step_cos_rev"]),
            pm(*s["per_step_rel_err"], ".2f"),
        )
    lines += [
        *table.lines(),
        "",
        "Tests of the expected gradient: z = (⟨mean grad, u⟩ − ⟨predicted, u⟩)/SE along "
        "u = ∇KL(q‖p)/‖·‖ (`u_rev`) and along the unit part of ∇KL(p‖q) orthogonal to it "
        f"(`u_perp`); a prediction holds when |z| ≤ {Z_MAX:g} in both.",
        "",
    ]
    names = {"zero": "0", "reverse": "∇KL(q‖p)", "forward": "∇KL(p‖q)"}
    columns = ("penalty", "predicted E[∇]", "z (predicted)", "holds")
    table = Table(*columns, "z (if it were ∇KL(q‖p))", "honest")
    for n in PENALTIES:
        c = bclaims[n]
        zp = ", ".join(f"{k} {v:+.2f}" for k, v in c["z_predicted"].items())
        zh = ", ".join(f"{k} {v:+.1f}" for k, v in c["z_honest"].items())
        verdicts = (f"**{c['prediction_holds']}**", f"**{c['honest']}**")
        table.row(n, names[c["predicted"]], zp, verdicts[0], zh, verdicts[1])
    lines += [
        *table.lines(),
        "",
        f"All claims hold (k2 honest; k1 zero in expectation; k3 the forward KL's gradient): "
        f"**{bclaims['all_hold']}**.",
        "",
        "The values tell a different story from the gradients: k1 and k3 are unbiased "
        "estimates of KL(q‖p) and k2 is biased, yet as losses on held-fixed samples only k2 "
        "differentiates to ∇KL(q‖p) in expectation. k1's gradient E_q[∇ log q] is 0, so it "
        "is pure noise; k3's is E_q[(1 − p/q)∇ log q] = ∇KL(p‖q).",
        "",
        f"## 2. Training: maximise E_q[r] − β·penalty, β = {pr['beta']}",
        "",
        f"adam (lr {t['learning_rate']}), {t['num_steps']} steps, {t['num_tokens']} sampled "
        f"tokens per step, {t['seeds']} seeds; the reward term is exact (full vocabulary), so "
        "the penalty is the only source of noise. Final values (mean ± SE over seeds):",
        "",
    ]
    table = Table("objective", "true KL(q‖p)", "true KL(p‖q)", "E_q[r]")
    metrics = ("kl_qp", "kl_pq", "reward")
    for key, label in (
        ("reverse", "optimum with KL(q‖p)"),
        ("forward", "optimum with KL(p‖q)"),
        ("unregularised", "optimum without penalty"),
    ):
        table.row(f"*{label}*", *(f"{tclaims[f'optimum_{key}'][m]:.3f}" for m in metrics))
    for n in t["objectives"]:
        table.row(n, *(pm(*tclaims[n][m]) for m in metrics))
    lines += [
        *table.lines(),
        "",
        "Reading: with k2 the policy heads for the optimum of the reverse-KL objective, like "
        "the exact penalty (sampling noise leaves it somewhat further from p). With k1 the "
        "penalty does nothing on average: the reward alone drives q towards the point mass "
        "on the best token (KL(q‖p) → −log p(argmax r), KL(p‖q) → ∞). With k3 the policy "
        "follows the forward-KL objective and settles near its optimum, not the reverse-KL "
        "one that the penalty's value suggests.",
        "",
        f"Wall time: {wall:.1f} s (including compilation).",
        "",
    ]
    return "\n".join(lines)
