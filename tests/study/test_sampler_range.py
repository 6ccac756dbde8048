"""The enumeration of jax's float32 normal sampler is exact, and so are its expectations."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erfinv

from jaxkl.distributions import Mixture, MultivariateNormalDiag, Normal
from jaxkl.study.sampler_range import (
    float32_normal_grid,
    float32_normal_uniforms,
    sampler_k1_mean,
    sampler_means,
    sampler_ratio_mean,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_draw_is_the_grid_value_of_its_top_23_bits(seed):
    """jax.random.normal(key) == √2·erfinv(u[bits >> 9]) bit for bit: a draw is the grid
    value indexed by the top 23 of 32 uniform random bits, so every grid value is equally
    likely (probability 2⁻²³)."""
    key = jax.random.key(seed)
    shape = (1 << 16,)
    bits = np.asarray(jax.random.bits(key, shape, jnp.uint32))
    draws = np.asarray(jax.random.normal(key, shape, jnp.float32))
    u = float32_normal_uniforms()[bits >> 9]
    rebuilt = np.asarray(np.float32(math.sqrt(2.0)) * jax.lax.erf_inv(jnp.asarray(u)))
    np.testing.assert_array_equal(rebuilt, draws)


def test_grid_range_and_size():
    u, z = float32_normal_uniforms(), float32_normal_grid()
    assert u.size == z.size == 2**23 and np.unique(u).size == 2**23
    # u runs from nextafter(−1, 0) = −1 + 2⁻²⁴ to 1 − 3·2⁻²⁴ (f·2 + lo, rounded in float32).
    assert u.min() == np.float32(-1 + 2.0**-24) and u.max() == np.float32(1 - 3 * 2.0**-24)
    assert z.max() == pytest.approx(math.sqrt(2) * erfinv(1 - 3 * 2.0**-24), rel=1e-12)
    assert z.min() == pytest.approx(math.sqrt(2) * erfinv(-1 + 2.0**-24), rel=1e-12)
    assert 5.2201 < z.max() < 5.2202 and -5.4200 < z.min() < -5.4199


def test_far_pair_ratio_mean_from_the_grid_directly():
    """E_s[p/q] for q = N(0, 1), p = N(√20, 1): r = exp(√20·z − 10), averaged over the grid
    with numpy alone (no jaxkl densities)."""
    delta = math.sqrt(20.0)
    direct = float(np.mean(np.exp(delta * float32_normal_grid() - 10.0)))
    # The case's p.loc is float32(√20); use the same value.
    q, p = Normal(0.0, 1.0), Normal(float(np.float32(delta)), 1.0)
    delta32 = float(np.float32(delta))
    direct32 = float(np.mean(np.exp(delta32 * float32_normal_grid() - delta32**2 / 2)))
    assert sampler_ratio_mean(q, p) == pytest.approx(direct32, rel=1e-12)
    assert direct == pytest.approx(0.8162, abs=5e-5)
    # Under the exact law the mean would be 1; a truncated normal at 5.22 would give
    # Φ(5.22 − √20) = 0.77: the sampler's discrete top values carry the difference.
    assert abs(direct - 1.0) > 0.18


def test_close_pair_is_unaffected():
    q, p = Normal(0.0, 1.0), Normal(1.0, 1.0)
    assert abs(sampler_ratio_mean(q, p) - 1.0) < 1e-5
    assert abs(sampler_k1_mean(q, p) - 0.5) < 1e-5


def test_diagonal_gaussian_is_the_product_over_coordinates():
    q = MultivariateNormalDiag(jnp.array([0.0, 0.5]), jnp.array([1.0, 2.0]))
    p = MultivariateNormalDiag(jnp.array([3.0, 0.0]), jnp.array([1.0, 1.5]))
    joint = sampler_means(q, p, q)
    a = sampler_means(Normal(0.0, 1.0), Normal(3.0, 1.0), Normal(0.0, 1.0))
    b = sampler_means(Normal(0.5, 2.0), Normal(0.0, 1.5), Normal(0.5, 2.0))
    assert joint.w == pytest.approx(a.w * b.w, rel=1e-12)
    assert joint.log == pytest.approx(a.log + b.log, rel=1e-12)


def test_mixture_weights_its_components():
    comps = Normal(jnp.array([-2.0, 1.5]), jnp.array([0.6, 1.0]))
    q = Mixture(jnp.log(jnp.array([0.3, 0.7])), comps)
    p = Normal(0.0, 2.0)
    grid = float32_normal_grid()

    def pdf(x, m, s):  # the normal density in plain numpy (scipy's is 3× slower here)
        return np.exp(-0.5 * np.square((x - m) / s)) / (s * np.sqrt(2.0 * np.pi))

    def direct():
        total = 0.0
        for w, m, s in ((0.3, -2.0, 0.6), (0.7, 1.5, 1.0)):
            x = m + s * grid
            qx = 0.3 * pdf(x, -2.0, 0.6) + 0.7 * pdf(x, 1.5, 1.0)
            total += w * np.mean(pdf(x, 0.0, 2.0) / qx)
        return total

    assert sampler_ratio_mean(q, p) == pytest.approx(direct(), rel=1e-6)
    assert sampler_ratio_mean(q, p) < 0.998  # p = N(0, 2²) reaches beyond the sampler


def test_unsupported_families_give_none():
    from jaxkl.distributions import Gamma

    assert sampler_ratio_mean(Gamma(2.0, 1.0), Gamma(3.0, 2.0)) is None


@pytest.mark.slow
def test_k3_on_far_pair_is_biased_as_predicted_by_sampling():
    """Draw from jax's sampler itself: mean(k3) − KL over 2²⁷ draws matches the enumerated
    (E_s[r] − 1) + (E_s[k1] − KL) within 5 SE, and differs from 0 (SE ≈ 0.024: the
    sampler's r has E_s[r²] ≈ 7.8e4)."""
    q, p = Normal(0.0, 1.0), Normal(float(np.float32(math.sqrt(20))), 1.0)
    means = sampler_means(q, p, q)
    predicted = (means.w - 1.0) + means.log - float(np.float32(math.sqrt(20))) ** 2 / 2

    @jax.jit
    def chunk(key):
        x = q.sample(key, (1 << 22,))
        lr = p.log_prob(x) - q.log_prob(x)
        t = jnp.expm1(lr) - lr
        return jnp.sum(t), jnp.sum(t * t)

    s1 = s2 = 0.0
    n = 0
    for i in range(32):
        a, b = chunk(jax.random.key(100 + i))
        s1, s2, n = s1 + float(a), s2 + float(b), n + (1 << 22)
    mean = s1 / n
    se = math.sqrt((s2 / n - mean**2) / n)
    truth = float(np.float32(math.sqrt(20))) ** 2 / 2
    assert abs(mean - truth - predicted) < 5 * se
    assert abs(mean - truth) > 5 * se  # and the bias itself is visible
