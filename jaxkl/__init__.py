"""jaxkl: the Kullback–Leibler divergence in JAX.

Exact where a closed form exists (``kl``), estimated with a standard error where it does
not (``mc_kl``, ``kl_from_log_probs``, ``importance_kl``, ``knn_kl``). ``mc_kl`` draws by
a sampling strategy given as a value: ``IID()``, ``Antithetic()`` or ``RQMC(m)``.

Example:
  >>> import jaxkl
  >>> q, p = jaxkl.Normal(0.0, 1.0), jaxkl.Normal(1.0, 1.0)
  >>> float(jaxkl.kl(q, p))
  0.5
"""

from jaxkl import analytic, convert, fit, rl
from jaxkl._checks import checked
from jaxkl._keys import as_key
from jaxkl.analytic.registry import NoAnalyticKL, kl, register_kl, registered_pairs
from jaxkl.distributions import (
    Bernoulli,
    Beta,
    Categorical,
    Dirichlet,
    Distribution,
    Exponential,
    Gamma,
    Gumbel,
    Independent,
    Laplace,
    LogNormal,
    Mixture,
    MultivariateNormalDiag,
    MultivariateNormalTriL,
    Normal,
    Poisson,
    Uniform,
)
from jaxkl.estimators import (
    IID,
    RQMC,
    Antithetic,
    Estimate,
    ImportanceEstimate,
    importance_kl,
    kl_from_log_probs,
    knn_kl,
    mc_kl,
    mean_with_stderr,
    pareto_khat,
    per_sample_kl,
    psis_smooth,
    sum_estimates,
    tail_khat,
)

__version__ = "0.1.0"

__all__ = [
    "IID",
    "RQMC",
    "Antithetic",
    "Bernoulli",
    "Beta",
    "Categorical",
    "Dirichlet",
    "Distribution",
    "Estimate",
    "Exponential",
    "Gamma",
    "Gumbel",
    "ImportanceEstimate",
    "Independent",
    "Laplace",
    "LogNormal",
    "Mixture",
    "MultivariateNormalDiag",
    "MultivariateNormalTriL",
    "NoAnalyticKL",
    "Normal",
    "Poisson",
    "Uniform",
    "analytic",
    "as_key",
    "checked",
    "convert",
    "fit",
    "importance_kl",
    "kl",
    "kl_from_log_probs",
    "knn_kl",
    "mc_kl",
    "mean_with_stderr",
    "pareto_khat",
    "per_sample_kl",
    "psis_smooth",
    "register_kl",
    "registered_pairs",
    "rl",
    "sum_estimates",
    "tail_khat",
]
