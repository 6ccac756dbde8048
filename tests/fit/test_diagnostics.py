"""gradient_stats against a gradient whose variance is known in closed form."""

import jax
import jax.numpy as jnp
import pytest

import jaxkl
from jaxkl.fit import gradient_stats, reverse_kl


def test_total_variance_matches_closed_form():
    """q = N(m, 1), p = N(0, 1), reparam: ĝ = mean_i (m + ε_i), so Var ĝ = 1/n exactly."""
    n, m = 8, 0.7
    p = jaxkl.Normal(0.0, 1.0)

    def loss(mu, key):
        return reverse_kl(key, jaxkl.Normal(mu, 1.0), p, n, gradient="reparam")

    st = jax.jit(lambda mu: gradient_stats(loss, mu, 0, 4000))(jnp.asarray(m))
    tv = st.total_variance
    assert abs(float(tv.value) - 1.0 / n) < 5 * float(tv.stderr)
    # E ĝ = m; SE of the mean over R replicates is √(1/(nR)).
    assert abs(float(st.mean) - m) < 5 * (1.0 / (n * 4000)) ** 0.5
    assert float(st.mean_sq_norm) == pytest.approx(float(st.mean) ** 2)


def test_needs_two_replicates():
    with pytest.raises(ValueError, match="num_replicates must be >= 2"):
        gradient_stats(lambda prm, k: None, jnp.zeros(()), 0, 1)
