"""cdf / log_cdf / icdf against scipy.stats (float64, and float32 in the tails); mode()."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxkl

# family -> (jaxkl builder from float arrays, frozen scipy law, points, quantile levels)
P_LEVELS = np.array([1e-12, 1e-5, 0.1, 0.5, 0.9, 1 - 1e-5])
FAMILIES = {
    "Normal": (lambda: jaxkl.Normal(0.5, 2.0), stats.norm(0.5, 2.0), np.linspace(-60, 9, 13)),
    "LogNormal": (
        lambda: jaxkl.LogNormal(0.3, 0.7),
        stats.lognorm(0.7, scale=np.exp(0.3)),
        np.array([-1.0, 0.0, 1e-9, 0.01, 0.5, 1.3, 4.0, 40.0]),
    ),
    "Exponential": (
        lambda: jaxkl.Exponential(2.5),
        stats.expon(scale=1 / 2.5),
        np.array([-1.0, 0.0, 1e-12, 1e-6, 0.3, 2.0, 20.0]),
    ),
    "Laplace": (
        lambda: jaxkl.Laplace(-1.0, 0.5),
        stats.laplace(-1.0, 0.5),
        np.array([-40.0, -3.0, -1.0, -0.999, 0.0, 4.0]),
    ),
    "Gumbel": (
        lambda: jaxkl.Gumbel(1.0, 2.0),
        stats.gumbel_r(1.0, 2.0),
        np.array([-10.0, -3.0, 0.0, 1.0, 5.0, 30.0]),
    ),
    "Uniform": (
        lambda: jaxkl.Uniform(-1.0, 3.0),
        stats.uniform(-1.0, 4.0),
        np.array([-2.0, -1.0, -0.5, 1.0, 2.999, 4.0]),
    ),
    "Gamma": (
        lambda: jaxkl.Gamma(2.5, 1.5),
        stats.gamma(2.5, scale=1 / 1.5),
        np.array([-1.0, 0.0, 1e-3, 0.5, 2.0, 10.0]),
    ),
    "Beta": (
        lambda: jaxkl.Beta(2.0, 0.7),
        stats.beta(2.0, 0.7),
        np.array([-0.5, 0.0, 1e-3, 0.3, 0.9, 1.0, 1.5]),
    ),
}
HAS_ICDF = {"Normal", "LogNormal", "Exponential", "Laplace", "Gumbel", "Uniform"}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_float64_cdf_log_cdf_icdf_match_scipy(name):
    build, law, x = FAMILIES[name]
    with jax.enable_x64(True):
        d = build()
        assert d.dtype == jnp.float64
        np.testing.assert_allclose(d.cdf(x), law.cdf(x), rtol=1e-12, atol=1e-300)
        with np.errstate(divide="ignore"):
            ref_log = law.logcdf(x)
        got_log = np.asarray(d.log_cdf(x))
        assert np.array_equal(got_log == -np.inf, ref_log == -np.inf)
        finite = np.isfinite(ref_log)
        np.testing.assert_allclose(got_log[finite], ref_log[finite], rtol=1e-10, atol=1e-14)
        if name in HAS_ICDF:
            np.testing.assert_allclose(d.icdf(P_LEVELS), law.ppf(P_LEVELS), rtol=1e-9)
        else:
            with pytest.raises(NotImplementedError, match="no icdf"):
                d.icdf(0.5)


# float32 far in the tails, where log(cdf) underflows or 1 − e^(−x) rounds to 0.
TAILS = {
    "Normal": np.array([-60.0, -30.0, -5.0, 0.0]),  # log Φ(−30.25) = −462.6
    "LogNormal": np.array([1e-30, 1e-12, 0.01]),
    "Exponential": np.array([1e-12, 1e-7, 30.0]),
    "Laplace": np.array([-80.0, -40.0, 5.0]),
    "Gumbel": np.array([-9.0, -5.0, 40.0]),
}


@pytest.mark.parametrize("name", sorted(TAILS))
def test_float32_log_cdf_in_the_tails(name):
    build, law, _ = FAMILIES[name]
    x = TAILS[name].astype(np.float32)
    got = build().log_cdf(x)
    assert got.dtype == jnp.float32
    ref = law.logcdf(x.astype(np.float64))
    assert np.all(np.isfinite(np.asarray(got)))
    np.testing.assert_allclose(got, ref, rtol=2e-6, atol=1e-7)


def test_float32_quantiles_in_the_tails():
    p = np.array([1e-30, 1e-10, 0.5, 1 - 2**-20], np.float32)
    for name in ("Exponential", "Laplace", "Normal"):
        build, law, _ = FAMILIES[name]
        np.testing.assert_allclose(
            build().icdf(p), law.ppf(p.astype(np.float64)), rtol=2e-5, err_msg=name
        )


@pytest.mark.parametrize(
    "build, law, lo, hi",
    [
        (lambda: jaxkl.Normal(0.7, 2.0), stats.norm(0.7, 2.0), -5.0, 5.0),
        (lambda: jaxkl.LogNormal(0.3, 0.7), stats.lognorm(0.7, scale=np.exp(0.3)), 0.01, 3.0),
        (lambda: jaxkl.Laplace(-1.0, 0.5), stats.laplace(-1.0, 0.5), -3.0, 3.0),
        (lambda: jaxkl.Gumbel(1.0, 2.0), stats.gumbel_r(1.0, 2.0), -3.0, 4.0),
        (lambda: jaxkl.Gamma(2.5, 1.5), stats.gamma(2.5, scale=1 / 1.5), 0.0, 4.0),
        (lambda: jaxkl.Beta(2.0, 3.5), stats.beta(2.0, 3.5), 0.0, 1.0),
        (lambda: jaxkl.Exponential(2.0), stats.expon(scale=0.5), 0.0, 2.0),
    ],
)
def test_mode_is_the_argmax_of_the_scipy_density(build, law, lo, hi):
    # The float64 density on a grid of step h: its argmax is within h of the true mode
    # (in float32 the flat top of the log-density is ~√eps wide and hides it).
    x = np.linspace(lo, hi, 200_001)
    with np.errstate(divide="ignore"):
        argmax = x[np.argmax(law.logpdf(x))]
    h = (hi - lo) / 200_000
    assert abs(float(build().mode()) - argmax) <= h + 1e-6


def test_modes_of_the_remaining_families():
    assert float(jaxkl.Gamma(0.5, 2.0).mode()) == 0.0  # density unbounded at 0
    beta = jaxkl.Beta(jnp.array([0.5, 2.0, 1.0, 0.5, 1.0]), jnp.array([2.0, 0.5, 1.0, 0.5, 3.0]))
    np.testing.assert_array_equal(beta.mode(), [0.0, 1.0, np.nan, np.nan, 0.0])
    dirichlet = jaxkl.Dirichlet(jnp.array([[2.0, 3.0, 5.0], [0.5, 2.0, 2.0]]))
    np.testing.assert_allclose(dirichlet.mode()[0], [1 / 7, 2 / 7, 4 / 7], rtol=1e-6)
    assert np.all(np.isnan(dirichlet.mode()[1]))
    rates = jnp.array([0.3, 3.7, 12.0])
    k = np.arange(40.0)
    pmf = stats.poisson(np.asarray(rates)[:, None]).logpmf(k)
    assert jaxkl.Poisson(rates).mode().tolist() == [0.0, 3.0, 12.0]
    assert np.all(pmf.max(1) == pmf[np.arange(3), [0, 3, 12]])  # 11 ties with 12
    assert jaxkl.Bernoulli(jnp.array([-1.0, 0.0, 2.0])).mode().tolist() == [0.0, 0.0, 1.0]
    assert int(jaxkl.Categorical(jnp.array([0.0, 2.0, 1.0])).mode()) == 1
    loc = jnp.arange(3.0)
    assert jaxkl.MultivariateNormalDiag(loc, 1.0).mode().tolist() == [0.0, 1.0, 2.0]
    assert jaxkl.MultivariateNormalTriL(loc, jnp.eye(3)).mode().tolist() == [0.0, 1.0, 2.0]
    assert jaxkl.Independent(jaxkl.Normal(loc, 1.0), 1).mode().tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(NotImplementedError, match="no unique mode"):
        jaxkl.Uniform(0.0, 1.0).mode()
    with pytest.raises(NotImplementedError, match="no cdf"):
        jaxkl.Poisson(1.0).cdf(0.0)
