"""Independent(Normal, 1) and MultivariateNormalDiag are one law: KL both ways."""

import jax
import numpy as np
import pytest
from scipy import integrate, stats

import jaxkl
from jaxkl import Independent, MultivariateNormalDiag

ORACLE_PAIRS = [(Independent, MultivariateNormalDiag), (MultivariateNormalDiag, Independent)]


def _quadrature_kl(mu_a, s_a, mu_b, s_b) -> float:
    """Σ over coordinates of ∫ a log(a/b), each by scipy quadrature (independent oracle)."""
    total = 0.0
    for ma, sa, mb, sb in zip(mu_a, s_a, mu_b, s_b, strict=True):
        a, b = stats.norm(ma, sa), stats.norm(mb, sb)
        f = lambda x, a=a, b=b: a.pdf(x) * (a.logpdf(x) - b.logpdf(x))  # noqa: E731
        total += integrate.quad(f, ma - 40 * sa, ma + 40 * sa, limit=200)[0]
    return total


def test_both_directions_match_quadrature():
    with jax.enable_x64(True):
        mu_a, s_a = np.array([0.0, 1.0, -2.0]), np.array([1.0, 0.5, 2.0])
        mu_b, s_b = np.array([0.3, -1.0, 0.0]), np.array([2.0, 0.7, 1.5])
        ind = Independent(jaxkl.Normal(mu_a, s_a), 1)
        diag = MultivariateNormalDiag(mu_b, s_b)
        np.testing.assert_allclose(
            float(jaxkl.kl(ind, diag)), _quadrature_kl(mu_a, s_a, mu_b, s_b), rtol=1e-9
        )
        ind_b = Independent(jaxkl.Normal(mu_b, s_b), 1)
        diag_a = MultivariateNormalDiag(mu_a, s_a)
        np.testing.assert_allclose(
            float(jaxkl.kl(diag_a, ind_b)), _quadrature_kl(mu_a, s_a, mu_b, s_b), rtol=1e-9
        )


def test_other_bases_are_refused_by_name():
    ind = Independent(jaxkl.Laplace(np.zeros(2, np.float32), 1.0), 1)
    diag = MultivariateNormalDiag(np.zeros(2, np.float32), np.ones(2, np.float32))
    with pytest.raises(jaxkl.NoAnalyticKL, match=r"Independent\(Laplace, 1\)"):
        jaxkl.kl(ind, diag)
