"""The (q, p) Gaussian pairs the sampler and variance-reduction tests draw from: one of
each reparameterised family a sampler can transform (scalar, diagonal, triangular)."""

import jax.numpy as jnp

import jaxkl

GAUSSIAN_PAIRS = {
    "normal": lambda: (jaxkl.Normal(0.2, 1.0), jaxkl.Normal(0.5, 1.3)),
    "mvn_diag": lambda: (
        jaxkl.MultivariateNormalDiag(jnp.zeros(3), jnp.array([1.0, 0.5, 2.0])),
        jaxkl.MultivariateNormalDiag(jnp.full(3, 0.3), jnp.full(3, 1.2)),
    ),
    "mvn_tril": lambda: (
        jaxkl.MultivariateNormalTriL(jnp.zeros(2), jnp.array([[1.0, 0.0], [0.6, 0.8]])),
        jaxkl.MultivariateNormalTriL(jnp.ones(2) * 0.2, jnp.eye(2) * 1.3),
    ),
}
