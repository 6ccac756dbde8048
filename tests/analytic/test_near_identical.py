"""Nearly identical pairs in float32: Uniform and MultivariateNormalTriL keep their relative
precision (references in 50-digit decimal arithmetic and float64 from the same float32
inputs, never through jaxkl)."""

import decimal

import numpy as np
import pytest
from scipy.linalg import solve_triangular

from jaxkl import analytic


def _uniform_kl_decimal(la, ha, lb, hb) -> float:
    with decimal.localcontext(decimal.Context(prec=50)):
        d = decimal.Decimal
        return float(((d(float(hb)) - d(float(lb))) / (d(float(ha)) - d(float(la)))).ln())


@pytest.mark.parametrize("offset", [0.0, 1.0, 1000.0, -3e4])
def test_uniform_nearly_identical_intervals_float32(offset):
    rng = np.random.default_rng(3)
    la = (offset + rng.uniform(-1, 0, 200)).astype(np.float32)
    ha = (la + rng.uniform(0.5, 2, 200)).astype(np.float32)
    # b widens a by a few ulp up to 1e-3 of its width on each side.
    grow = rng.uniform(1e-7, 1e-3, (2, 200)) * (ha - la)
    lb = (la - grow[0]).astype(np.float32)
    hb = (ha + grow[1]).astype(np.float32)
    inside = (lb <= la) & (ha <= hb) & ((lb < la) | (hb > ha))
    la, ha, lb, hb = la[inside], ha[inside], lb[inside], hb[inside]
    got = np.asarray(analytic.uniform(la, ha, lb, hb), np.float64)
    ref = np.array([_uniform_kl_decimal(*v) for v in zip(la, ha, lb, hb, strict=True)])
    assert np.all(ref > 0)
    rel = np.abs(got - ref) / ref
    assert rel.max() < 1e-6, rel.max()


def _tril_kl_stable_f64(mu_a, La, mu_b, Lb):
    """float64, from L_b⁻¹(L_a − L_b): no cancellation for nearby pairs."""
    n = solve_triangular(Lb, La - Lb, lower=True)
    y = solve_triangular(Lb, mu_b - mu_a, lower=True)
    r = np.diag(La) / np.diag(Lb)
    return 0.5 * np.sum(np.tril(n, -1) ** 2) + np.sum(0.5 * (r * r - 1) - np.log(r)) + 0.5 * y @ y


# d = 8 takes the unrolled path that d = 3 and d = 16 take in CI: --run-slow.
@pytest.mark.parametrize("d", [3, pytest.param(8, marks=pytest.mark.slow), 16])
@pytest.mark.parametrize("eps", [1e-3, 1e-5])
def test_mvn_tril_nearly_identical_pairs_float32(d, eps):
    rng = np.random.default_rng(d)
    got, ref = [], []
    for _ in range(20):
        La = np.tril(rng.normal(size=(d, d))) * 0.5 + np.diag(np.exp(rng.normal(0, 0.3, d)))
        La = La.astype(np.float32)
        # Off-diagonal entries move by eps relative, the diagonal stays: only M's
        # off-diagonal (the part that cancelled) carries the KL.
        Lb = (La * (1 + eps * np.tril(rng.normal(size=(d, d)), -1))).astype(np.float32)
        mu = rng.normal(size=d).astype(np.float32)
        got.append(float(analytic.mvn_tril(mu, La, mu, Lb)))
        ref.append(_tril_kl_stable_f64(mu, *(x.astype(np.float64) for x in (La, mu, Lb))))
    got, ref = np.array(got), np.array(ref)
    assert np.all(ref > 0)
    rel = np.abs(got - ref) / ref
    assert rel.max() < 1e-4, rel.max()
