"""MultivariateNormalDiag beyond the checks every family shares
(test_family_conformance.py): the covariance, bad shapes and values."""

import jax.numpy as jnp
import numpy as np
import pytest

import jaxkl

RNG = np.random.default_rng(11)
D = 4
LOC = RNG.normal(size=(3, D))
SCALE = np.exp(RNG.normal(scale=0.5, size=(3, D)))


def test_mean_variance_covariance():
    d = jaxkl.MultivariateNormalDiag(LOC, SCALE)
    np.testing.assert_allclose(d.mean(), LOC, rtol=1e-6)
    np.testing.assert_allclose(d.variance(), SCALE**2, rtol=1e-6)
    cov = np.asarray(d.covariance())
    assert cov.shape == (3, D, D)
    for b in range(3):
        np.testing.assert_allclose(cov[b], np.diag(SCALE[b] ** 2), rtol=1e-6)


@pytest.mark.parametrize(
    "loc, scale, match",
    [
        (np.zeros(3), np.array([1.0, 0.0, 1.0]), "scale_diag must be > 0"),
        (np.zeros(3), np.array([1.0, -1.0, 1.0]), "scale_diag must be > 0"),
        (np.zeros(3), np.array([1.0, np.nan, 1.0]), "scale_diag must be > 0"),
        (np.array([0.0, np.nan, 0.0]), np.ones(3), "loc must be finite"),
        (np.zeros(3), np.ones(4), r"same event size d; got loc \[\.\.\., 3\]"),
        (np.zeros((2, 3)), np.ones((4, 3)), "do not broadcast"),
        (0.0, 1.0, "at least 1 dimension"),
    ],
)
def test_bad_parameters_raise(loc, scale, match):
    with pytest.raises(ValueError, match=match):
        jaxkl.MultivariateNormalDiag(loc, scale)


def test_log_prob_rejects_wrong_event_size():
    d = jaxkl.MultivariateNormalDiag(jnp.zeros(3), jnp.ones(3))
    with pytest.raises(ValueError, match="must have shape"):
        d.log_prob(jnp.zeros(4))
