"""Distribution families, one per module; all are frozen dataclasses and pytrees."""

from jaxkl.distributions.base import Distribution
from jaxkl.distributions.bernoulli import Bernoulli
from jaxkl.distributions.beta import Beta
from jaxkl.distributions.categorical import Categorical
from jaxkl.distributions.dirichlet import Dirichlet
from jaxkl.distributions.exponential import Exponential
from jaxkl.distributions.gamma import Gamma
from jaxkl.distributions.gumbel import Gumbel
from jaxkl.distributions.independent import Independent
from jaxkl.distributions.laplace import Laplace
from jaxkl.distributions.lognormal import LogNormal
from jaxkl.distributions.mixture import Mixture
from jaxkl.distributions.mvn_diag import MultivariateNormalDiag
from jaxkl.distributions.mvn_tril import MultivariateNormalTriL
from jaxkl.distributions.normal import Normal
from jaxkl.distributions.poisson import Poisson
from jaxkl.distributions.uniform import Uniform

__all__ = [
    "Bernoulli",
    "Beta",
    "Categorical",
    "Dirichlet",
    "Distribution",
    "Exponential",
    "Gamma",
    "Gumbel",
    "Independent",
    "Laplace",
    "LogNormal",
    "Mixture",
    "MultivariateNormalDiag",
    "MultivariateNormalTriL",
    "Normal",
    "Poisson",
    "Uniform",
]
