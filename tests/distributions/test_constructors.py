"""Constructor surface: probs= for the discrete families, scalar MVN scales, validate=False."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxkl


def test_bernoulli_probs_equals_logits_form():
    p = np.array([0.0, 1e-30, 0.25, 0.5, 1.0 - 2**-20, 1.0], np.float32)
    d = jaxkl.Bernoulli(probs=p)
    leaves = jax.tree_util.tree_leaves(d)
    assert len(leaves) == 1 and leaves[0] is d.logits  # one leaf: the logits
    with np.errstate(divide="ignore"):
        logits = np.log(p.astype(np.float64)) - np.log1p(-p.astype(np.float64))
    finite = np.isfinite(logits)
    np.testing.assert_allclose(np.asarray(d.logits)[finite], logits[finite], rtol=1e-6)
    assert d.logits[0] == -np.inf and d.logits[-1] == np.inf
    # σ(ℓ) gives p back; p = 1e-30 (ℓ ≈ −69) within (|ℓ| + 2) float32 roundoffs.
    np.testing.assert_allclose(d.probs[1:-1], p[1:-1], rtol=71 * 2**-24)
    ref = jaxkl.Bernoulli(jnp.asarray(logits, jnp.float32))
    np.testing.assert_allclose(d.log_prob(1.0), ref.log_prob(1.0), rtol=1e-6)
    assert jaxkl.Bernoulli(probs=0.7, validate=False).batch_shape == ()
    g = jax.grad(lambda q: jaxkl.Bernoulli(probs=q).log_prob(1.0))(0.25)
    np.testing.assert_allclose(g, 4.0, rtol=1e-6)  # d/dp log p


def test_categorical_probs_equals_logits_form():
    p = np.array([[0.2, 0.3, 0.5], [0.0, 0.25, 0.75]], np.float32)
    d = jaxkl.Categorical(probs=p)
    assert d.logits[1, 0] == -np.inf
    ref = jaxkl.Categorical(jnp.log(p))
    np.testing.assert_allclose(d.log_probs(), ref.log_probs(), rtol=1e-6)
    assert d.mode().tolist() == [2, 2]
    # A softmax over a large vocabulary sums to 1 only within rounding: accepted.
    big = jax.nn.softmax(jax.random.normal(jax.random.key(0), (50_000,)))
    assert jaxkl.Categorical(probs=big).num_categories == 50_000


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: jaxkl.Bernoulli(), "exactly one of logits and probs; got neither"),
        (lambda: jaxkl.Bernoulli(0.0, probs=0.5), "exactly one of logits and probs; got both"),
        (lambda: jaxkl.Bernoulli(probs=jnp.array([0.5, 1.5])), r"probs\[1\] = 1.5"),
        (lambda: jaxkl.Bernoulli(probs=jnp.nan), "probs must be in"),
        (lambda: jaxkl.Categorical(), "exactly one of logits and probs; got neither"),
        (lambda: jaxkl.Categorical(jnp.zeros(2), probs=jnp.ones(2) / 2), "got both"),
        (lambda: jaxkl.Categorical(probs=jnp.array([0.5, -0.1, 0.6])), r"probs\[1\] = -0.1"),
        (
            lambda: jaxkl.Categorical(probs=jnp.array([[0.5, 0.5], [0.5, 0.6]])),
            r"probs.sum\(-1\)\[1\] = 1.1",
        ),
        (lambda: jaxkl.Categorical(probs=0.5), "at least 1 dimension"),
    ],
)
def test_probs_errors_name_the_parameter_and_value(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_mvn_diag_scalar_scale_broadcasts_against_loc():
    d = jaxkl.MultivariateNormalDiag(jnp.zeros(3), 2.0)
    assert d.event_shape == (3,) and d.scale_diag.tolist() == [2.0] * 3
    assert jaxkl.MultivariateNormalDiag(0.0, jnp.ones(4)).event_shape == (4,)
    e = jaxkl.MultivariateNormalDiag(jnp.zeros((5, 3)), jnp.ones((5, 1)))
    assert e.batch_shape == (5,) and e.event_shape == (3,)
    lg = jaxkl.MultivariateNormalDiag(jnp.zeros(3), log_scale_diag=jnp.log(2.0))
    np.testing.assert_allclose(jaxkl.kl(d, lg), 0.0, atol=1e-6)
    with pytest.raises(
        ValueError, match=r"same event size d; got loc \[\.\.\., 3\] and scale_diag \[\.\.\., 2\]"
    ):
        jaxkl.MultivariateNormalDiag(jnp.zeros(3), jnp.ones(2))
    with pytest.raises(ValueError, match=r"shape \[\.\.\., d, d\]"):
        jaxkl.MultivariateNormalTriL(jnp.zeros(2), jnp.ones(2))


# One invalid value per family: raises by default, is accepted with validate=False.
INVALID = {
    "Normal": lambda v: jaxkl.Normal(0.0, -1.0, validate=v),
    "Normal(log_scale)": lambda v: jaxkl.Normal(0.0, log_scale=jnp.nan, validate=v),
    "LogNormal": lambda v: jaxkl.LogNormal(0.0, 0.0, validate=v),
    "MultivariateNormalDiag": lambda v: jaxkl.MultivariateNormalDiag(
        jnp.zeros(2), -jnp.ones(2), validate=v
    ),
    "MultivariateNormalTriL": lambda v: jaxkl.MultivariateNormalTriL(
        jnp.zeros(2), -jnp.eye(2), validate=v
    ),
    "Bernoulli": lambda v: jaxkl.Bernoulli(jnp.nan, validate=v),
    "Bernoulli(probs)": lambda v: jaxkl.Bernoulli(probs=1.5, validate=v),
    "Categorical": lambda v: jaxkl.Categorical(jnp.array([0.0, jnp.inf]), validate=v),
    "Categorical(probs)": lambda v: jaxkl.Categorical(probs=jnp.array([0.5, 0.6]), validate=v),
    "Beta": lambda v: jaxkl.Beta(-1.0, 1.0, validate=v),
    "Gamma": lambda v: jaxkl.Gamma(1.0, -1.0, validate=v),
    "Dirichlet": lambda v: jaxkl.Dirichlet(jnp.array([-1.0, 1.0]), validate=v),
    "Exponential": lambda v: jaxkl.Exponential(-1.0, validate=v),
    "Laplace": lambda v: jaxkl.Laplace(0.0, -1.0, validate=v),
    "Gumbel": lambda v: jaxkl.Gumbel(jnp.inf, 1.0, validate=v),
    "Poisson": lambda v: jaxkl.Poisson(-1.0, validate=v),
    "Uniform": lambda v: jaxkl.Uniform(1.0, 0.0, validate=v),
    "Mixture": lambda v: jaxkl.Mixture(
        jnp.array([jnp.nan, 0.0]), jaxkl.Normal(jnp.zeros(2), 1.0), validate=v
    ),
}


@pytest.mark.parametrize("family", sorted(INVALID))
def test_validate_false_skips_value_checks_only(family):
    with pytest.raises(ValueError, match="must"):
        INVALID[family](True)
    d = INVALID[family](False)
    assert isinstance(d, jaxkl.Distribution)


def test_validate_false_keeps_shape_and_type_checks():
    with pytest.raises(ValueError, match="same event size d"):
        jaxkl.MultivariateNormalDiag(jnp.zeros(3), jnp.ones(2), validate=False)
    with pytest.raises(ValueError, match="do not broadcast"):
        jaxkl.Normal(jnp.zeros(2), jnp.ones(3), validate=False)
    with pytest.raises(TypeError, match="scale must be real"):
        jaxkl.Normal(0.0, 1j, validate=False)
    with pytest.raises(ValueError, match="K >= 2"):
        jaxkl.Dirichlet(jnp.ones(1), validate=False)
    # Under jit nothing is checked either way; validate=False must not change the number.
    f = jax.jit(lambda s: jaxkl.Normal(0.0, s, validate=False).entropy())
    np.testing.assert_allclose(f(2.0), jaxkl.Normal(0.0, 2.0).entropy(), rtol=1e-6)
