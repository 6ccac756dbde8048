"""Monte Carlo, importance-weighted and sample-only (k-NN) KL estimators."""

from jaxkl.estimators.estimate import (
    Estimate,
    ImportanceEstimate,
    mean_with_stderr,
    sum_estimates,
)
from jaxkl.estimators.importance import importance_kl
from jaxkl.estimators.knn import knn_kl
from jaxkl.estimators.monte_carlo import kl_from_log_probs, mc_kl, per_sample_kl
from jaxkl.estimators.psis import pareto_khat, psis_smooth, tail_khat
from jaxkl.estimators.samplers import IID, RQMC, Antithetic, Sampler

__all__ = [
    "IID",
    "RQMC",
    "Antithetic",
    "Estimate",
    "ImportanceEstimate",
    "Sampler",
    "importance_kl",
    "kl_from_log_probs",
    "knn_kl",
    "mc_kl",
    "mean_with_stderr",
    "pareto_khat",
    "per_sample_kl",
    "psis_smooth",
    "sum_estimates",
    "tail_khat",
]
