"""The study's prefix estimates are the public estimators' own, on identical draws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxkl
from jaxkl.estimators.importance import _weighted_kl
from jaxkl.estimators.samplers import draw
from jaxkl.study.prefix import prefix_self_normalized
from tests._subset import slow_except

N_MAX, SIZES = 1024, (3, 64, 1000, 1024)

CASES = {
    "close": (jaxkl.Normal(0.0, 1.0), jaxkl.Normal(0.5, 1.2), jaxkl.Normal(0.0, 2.0)),
    # A proposal far from q: log weights spread over ~30 nats, a few draws dominate.
    "shifted": (jaxkl.Normal(3.0, 1.0), jaxkl.Normal(2.0, 1.5), jaxkl.Normal(0.0, 1.0)),
    "mvn": (
        jaxkl.MultivariateNormalDiag(jnp.zeros(3), jnp.array([1.0, 0.5, 2.0])),
        jaxkl.MultivariateNormalDiag(jnp.full(3, 0.3), jnp.full(3, 1.2)),
        jaxkl.MultivariateNormalDiag(jnp.zeros(3), jnp.full(3, 2.5)),
    ),
}


# prefix_self_normalized sees only the log-weight vectors, whatever the family: CI keeps
# close and shifted (widely spread weights); the 3-D mvn case runs under --run-slow.
@pytest.mark.parametrize("case", slow_except(CASES, list(CASES), keep={"close", "shifted"}))
def test_prefix_self_normalized_is_importance_kl_snis(case):
    q, p, proposal = CASES[case]
    key = jax.random.key(4)
    # The draws importance_kl makes: the shared draw function, same key, same n.
    x = draw(key, proposal, N_MAX)
    log_q, log_p, log_g = q.log_prob(x), p.log_prob(x), proposal.log_prob(x)
    value, stderr, ess = prefix_self_normalized(log_q - log_g, log_q - log_p, SIZES)

    # Both sum the same terms, in different orders and scalings (importance_kl: softmax of
    # all log weights; the prefix: weights scaled by running maxima, merged per segment),
    # so they agree to float32 rounding of sums of up to 1024 terms, not bit for bit.
    tol = {"rtol": 2e-5, "atol": 1e-6}
    full = jaxkl.importance_kl(key, q, p, proposal, N_MAX, self_normalized=True)
    np.testing.assert_allclose(value[-1], full.value, **tol)
    np.testing.assert_allclose(stderr[-1], full.stderr, **tol)
    np.testing.assert_allclose(ess[-1], full.ess, **tol)
    # Every shorter prefix is importance_kl's computation on the first N draws.
    for j, n in enumerate(SIZES):
        v, s, e, _ = _weighted_kl(log_q[:n], log_g[:n], log_p[:n], True, False)
        np.testing.assert_allclose([value[j], stderr[j], ess[j]], [v, s, e], **tol)
