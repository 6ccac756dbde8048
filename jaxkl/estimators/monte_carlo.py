"""Monte Carlo KL(q‖p) from samples of q: the k1, k2 and k3 estimators.

With x ~ q and log r = log p(x) − log q(x):

* k1 = −log r                 unbiased, can be negative, variance ~ 2·KL for close pairs;
* k2 = ½ (log r)²             biased (E k2 = KL + O(KL^{3/2})), low variance, ≥ 0;
* k3 = (r − 1) − log r        ≥ 0, = expm1(log r) − log r; unbiased only when p is
                               normalised *and* the draws reach p's mass (see mc_kl).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxkl._checks import is_concrete
from jaxkl.analytic.ratio_moments import log_ratio_moment
from jaxkl.convert import as_sampleable
from jaxkl.distributions import Bernoulli, Categorical, Independent, Mixture
from jaxkl.distributions.base import Distribution
from jaxkl.estimators.estimate import PLAIN_KHAT_THRESHOLD, Estimate, mean_with_stderr
from jaxkl.estimators.gradients import score_surrogate
from jaxkl.estimators.psis import tail_khat
from jaxkl.estimators.samplers import (
    IID,
    RQMC,
    Antithetic,
    Sampler,
    as_sampler,
    broadcast_batches,
    check_num_samples,
    draw,
)
from jaxkl.estimators.variance_reduction import control_variate_terms

__all__ = [
    "ESTIMATORS",
    "GRADIENTS",
    "kl_from_log_probs",
    "mc_kl",
    "per_sample_kl",
    "ratio_diagnostics",
    "resolve_gradient",
]

ESTIMATORS = ("k1", "k2", "k3")
GRADIENTS = ("auto", "reparam", "stl", "score", "score_loo")
RATIO_CHECK_SE = 3.0  # |mean(r) − 1| beyond this many standard errors fails the check


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


def per_sample_kl(log_q: jax.Array, log_p: jax.Array, estimator: str = "k1") -> jax.Array:
    """The per-sample terms of estimator k1, k2 or k3 (elementwise, no averaging).

    Args:
      log_q: log q(x) at samples x ~ q, any shape.
      log_p: log p(x) at the same samples, same shape.
      estimator: "k1", "k2" or "k3".

    Returns:
      Array of the same shape: −log r, ½(log r)² or expm1(log r) − log r.

    Example:
      >>> terms = per_sample_kl(jnp.array([0.0, 0.0]), jnp.array([-1.0, 1.0]), "k3")
      >>> [round(float(t), 4) for t in terms]  # e^{∓1} − 1 ± 1
      [0.3679, 0.7183]
    """
    _check_choice("estimator", estimator, ESTIMATORS)
    log_r = log_p - log_q
    if estimator == "k1":
        return -log_r
    if estimator == "k2":
        return 0.5 * jnp.square(log_r)
    # k3 = (r − 1) − log r; expm1 keeps precision when r ≈ 1. No clamp: log r above
    # ~88.7 (float32) or ~709.8 (float64) overflows to +inf, which is the honest value.
    # log r = +inf itself (log p = +inf) would give inf − inf = NaN: it is +inf too (the
    # double where keeps the unused branch's gradient finite).
    infinite = log_r == jnp.inf
    safe = jnp.where(infinite, 0.0, log_r)
    return jnp.where(infinite, jnp.inf, jnp.expm1(safe) - safe)


def ratio_diagnostics(
    log_r: jax.Array, to_units=None, log_moments: tuple | None = None, *, bounded: bool = False
) -> tuple[dict, jax.Array]:
    """The check every estimator built on r = p/q needs: do the ratios average to 1?

    E_q[r] = 1 exactly when p is normalised and q's draws reach all of p's mass. k3, the
    control variate and their antithetic/QMC forms are unbiased only then. Two ways it
    fails in practice, both caught here: an unnormalised p (E r = Z ≠ 1), and a sampler
    that cannot reach where p lives (in float32, ``jax.random.normal`` only draws from
    [−5.420, 5.220], so for q = N(0, 1), p = N(√20, 1) the sampler's E[r] is 0.8162, not
    1: exact enumeration of its 2²³ values, :func:`jaxkl.study.sampler_range.sampler_ratio_mean`).

    Args:
      log_r: log p(x) − log q(x) at the draws, sample axes leading (``[n, ...]``).
      to_units: maps per-draw values to the independent units along axis 0 (pair
        averages for antithetic draws, per-randomisation means for QMC); identity if
        ``None``.
      log_moments: optional closed forms ``(log E_q[r²], log E_q[r⁴])`` from
        :func:`jaxkl.analytic.ratio_moments.log_ratio_moment` (NaN where unknown).
      bounded: q has finitely many support points, so r is bounded: no tail is fitted
        (``pareto_k_r`` = −inf).

    Returns:
      ``(diagnostics, passed)``: ``mean_r_minus_1`` and ``mean_r_minus_1_stderr`` (over
      the units), ``pareto_k_r`` (k̂ of the upper tail of r over all draws) and, when
      given, ``log_mean_r2`` and ``log_mean_r4``, each of the batch shape. ``passed`` is
      False where |mean(r) − 1| > 3 standard errors, k̂(r) ≥ 0.5, or a closed form says
      E_q[r²] or E_q[r⁴] is infinite (r's variance, or the variance of its sample
      variance, does not exist: the draws may look benign, the standard error is not).
    """
    c = jnp.expm1(log_r)
    units = c if to_units is None else to_units(c)
    mean_c = mean_with_stderr(units, axis=0, tail=False)
    flat = c.reshape((-1, *c.shape[c.ndim - mean_c.value.ndim :]))
    if bounded:
        k_r = jnp.full(mean_c.value.shape, -jnp.inf, mean_c.value.dtype)
    else:
        k_r = tail_khat(flat, axis=0, tails="upper")
    diagnostics = {
        "mean_r_minus_1": mean_c.value,
        "mean_r_minus_1_stderr": mean_c.stderr,
        "pareto_k_r": k_r,
    }
    off = jnp.abs(mean_c.value) > RATIO_CHECK_SE * mean_c.stderr
    passed = ~off & ~(k_r >= PLAIN_KHAT_THRESHOLD) & ~jnp.isnan(mean_c.value)
    if log_moments is not None:
        log_m2, log_m4 = log_moments
        diagnostics["log_mean_r2"], diagnostics["log_mean_r4"] = log_m2, log_m4
        passed = passed & ~(log_m2 == jnp.inf) & ~(log_m4 == jnp.inf)
    return diagnostics, passed


def structural_ratio_moments(q, p, batch: tuple[int, ...]) -> tuple | None:
    """(log E_q[r²], log E_q[r⁴]) in closed form, broadcast to ``batch``, or None."""
    if not isinstance(p, Distribution):
        return None
    m2, m4 = log_ratio_moment(q, p, 2.0), log_ratio_moment(q, p, 4.0)
    if m2 is None or m4 is None:
        return None
    m2, m4 = jax.lax.stop_gradient((m2, m4))
    return jnp.broadcast_to(m2, batch), jnp.broadcast_to(m4, batch)


def has_finite_support(d) -> bool:
    """Whether ``d`` takes finitely many values (then every estimator term is bounded)."""
    if isinstance(d, Bernoulli | Categorical):
        return True
    if isinstance(d, Independent):
        return has_finite_support(d.base)
    if isinstance(d, Mixture):
        return has_finite_support(d.components)
    return False


def _estimate_from_terms(
    terms, *, num_samples: int, to_units=None, log_r=None, log_moments=None, bounded=False
) -> Estimate:
    """Estimate from per-draw terms ``[n, ...]`` (or ``[2, n/2, ...]``, ``[m, n/m, ...]``).

    The standard error and dof come from the independent units; the tail diagnostic from
    all draws (averaging dependent draws does not remove an infinite variance). With
    ``log_r`` the ratio check of :func:`ratio_diagnostics` is attached.
    """
    units = terms if to_units is None else to_units(terms)
    est = mean_with_stderr(units, axis=0, tail=False)

    def flat(a):  # all draws on one leading axis
        return a.reshape((-1, *a.shape[a.ndim - est.value.ndim :]))

    diagnostics, passed = dict(est.diagnostics), est.checks_passed
    if log_r is not None:
        ratio, ratio_passed = ratio_diagnostics(log_r, to_units, log_moments, bounded=bounded)
        diagnostics.update(ratio)
        passed = ratio_passed if passed is None else passed & ratio_passed
    if bounded:
        # Finitely many support points: every term is bounded, there is no tail to fit
        # (the fit itself misreads the ties of a discrete sample as a heavy tail), and
        # none is traced, so a discrete q's program does not compile the fit.
        pareto_k = jnp.full(est.value.shape, -jnp.inf, est.value.dtype)
    elif log_r is None:
        pareto_k = tail_khat(flat(terms), axis=0)
    else:
        # The terms of a ratio-based estimator are (a multiple of) r − 1 plus −log r, so
        # their tail is the heavier of r's upper tail and −log r's tails. Each is fitted
        # on its own: one generalised-Pareto fit to the mixed tail of the sum (a short
        # −log r side and a long r side) reads as heavy when neither part is (k3 on
        # N(0,1)‖N(1,1): median k̂ 0.47 at n = 1024 although Var(k3) is finite).
        pareto_k = jnp.fmax(tail_khat(flat(-log_r), axis=0), diagnostics["pareto_k_r"])
    return Estimate(est.value, est.stderr, num_samples, est.dof, pareto_k, diagnostics, passed)


def kl_from_log_probs(log_q, log_p, *, estimator: str = "k1", axis: int = 0) -> Estimate:
    """KL(q‖p) from log densities evaluated at samples already drawn from q.

    The per-token RLHF case: ``log_q`` and ``log_p`` are the policy's and the reference's
    log probabilities of sampled tokens. The estimate is the mean of the per-sample terms
    (see :func:`per_sample_kl`) along ``axis``, with its standard error, dof = n − 1 and
    the tail diagnostic ``pareto_k``; for k3 also the ratio check of
    :func:`ratio_diagnostics` (``reliable`` is False where the ratios p/q do not average
    to 1 within 3 standard errors or have a heavy tail).

    Gradients with the samples held fixed (``stop_gradient`` on x, as in RLHF losses): the
    expected gradient with respect to q's parameters θ, *per token, for a single-step
    distribution q*, is

    ===========  ==========================================  =========================
    estimator    E_q[∇θ k]                                   so, used as a loss, it is
    ===========  ==========================================  =========================
    k1           E_q[∇θ log q] = 0                           no gradient signal at all
    k2           E_q[(log q − log p) ∇θ log q] = ∇θ KL(q‖p)  the reverse KL's gradient
    k3           E_q[(1 − p/q) ∇θ log q] = ∇θ KL(p‖q)        the *forward* KL's gradient
    ===========  ==========================================  =========================

    (k2's expected gradient is the score-function gradient of the reverse KL; k3's value
    estimates KL(q‖p) but its gradient follows the forward KL.) Each line is checked by a
    test that averages gradients over many replicates. For sequences (a policy over
    tokens, where q of a later token depends on earlier ones) the per-token identities do
    not add up to the gradient of the sequence-level KL.

    Args:
      log_q: ``[..., n, ...]`` log q(x_i) for x_i ~ q.
      log_p: same shape, log p(x_i); an unnormalised p gives k1 an offset of −log Z and
        makes k3 biased (its ratio check then fails).
      estimator: "k1", "k2" or "k3".
      axis: the sample axis.

    Returns:
      ``Estimate`` with ``value``, ``stderr`` and ``pareto_k`` of the shape of ``log_q``
      without ``axis``. k3 is +inf where log p − log q exceeds the dtype's ``log(max)``
      (≈ 88.7 in float32, ≈ 709.8 in float64): r itself is not representable there.

    Raises:
      ValueError: shapes differ, there is no sample along ``axis``, or (for concrete
        inputs) a log density is NaN.

    Example:
      >>> import jax, jaxkl
      >>> q, p = jaxkl.Normal(0.0, 1.0), jaxkl.Normal(1.0, 1.0)
      >>> x = q.sample(0, (10_000,))
      >>> est = jaxkl.kl_from_log_probs(q.log_prob(x), p.log_prob(x), estimator="k3")
      >>> abs(float(est.value) - 0.5) < 5 * float(est.stderr), est.dof
      (True, 9999)
    """
    _check_choice("estimator", estimator, ESTIMATORS)
    log_q, log_p = jnp.asarray(log_q), jnp.asarray(log_p)
    if log_q.shape != log_p.shape:
        raise ValueError(
            f"kl_from_log_probs: log_q and log_p must have the same shape; "
            f"got log_q {log_q.shape} and log_p {log_p.shape}"
        )
    if log_q.ndim == 0:
        raise ValueError(
            "kl_from_log_probs: log_q and log_p must have a sample axis; got 0-d arrays"
        )
    if not -log_q.ndim <= axis < log_q.ndim:
        raise ValueError(f"kl_from_log_probs: axis {axis} out of range for shape {log_q.shape}")
    for name, arr in (("log_q", log_q), ("log_p", log_p)):
        if is_concrete(arr) and bool(jnp.any(jnp.isnan(arr))):
            raise ValueError(f"kl_from_log_probs: {name} contains NaN")
    log_q, log_p = jnp.moveaxis(log_q, axis, 0), jnp.moveaxis(log_p, axis, 0)
    terms = per_sample_kl(log_q, log_p, estimator)
    log_r = log_p - log_q if estimator == "k3" else None
    return _estimate_from_terms(terms, num_samples=log_q.shape[0], log_r=log_r)


def _log_density_of(p, event_shape: tuple[int, ...]) -> Callable[[jax.Array], jax.Array]:
    if isinstance(p, Distribution):
        if tuple(p.event_shape) != tuple(event_shape):
            raise ValueError(
                f"mc_kl: p's event shape {tuple(p.event_shape)} differs from q's "
                f"{tuple(event_shape)}"
            )
        return p.log_prob
    if callable(p):
        return p
    raise TypeError(
        "mc_kl: p must be a jaxkl distribution or a callable log density x -> log p(x); "
        f"got {type(p).__name__}"
    )


def resolve_gradient(gradient: str, q: Distribution, num_samples: int) -> str:
    """The concrete gradient estimator for ``gradient`` (``"auto"`` resolved).

    ``"auto"`` is pathwise (``"reparam"``) when q can be reparameterised, otherwise the
    score function with the leave-one-out baseline (``"score_loo"``; plain ``"score"``
    for a single draw, where no baseline exists).
    """
    _check_choice("gradient", gradient, GRADIENTS)
    if gradient != "auto":
        return gradient
    if q.reparameterized:
        return "reparam"
    return "score_loo" if num_samples >= 2 else "score"


def mc_kl(
    key,
    q: Distribution,
    p,
    num_samples: int,
    *,
    estimator: str = "k1",
    gradient: str = "auto",
    sampler: Sampler | str | None = None,
    control_variate: bool = False,
    antithetic: bool = False,
    qmc: bool = False,
    qmc_randomizations: int | None = None,
) -> Estimate:
    """Monte Carlo estimate of KL(q‖p) from ``num_samples`` draws x ~ q, with stderr.

    KL(q‖p) = E_q[log q(x) − log p(x)], estimated by the mean of k1, k2 or k3 (see
    :func:`per_sample_kl`) with standard error = sample sd / √n, dof = n − 1 and the tail
    diagnostic ``pareto_k`` (k̂ of the heavier tail of the terms; ≥ 0.5 means infinite
    variance, so ``reliable`` is False).

    **What "unbiased" needs.** k1 is unbiased for any normalised p. k3 = (r − 1) − log r
    adds r − 1, whose mean is 0 only when p is normalised *and* the draws from q reach
    p's mass: E_q[r] = ∫p over the region q's sampler can produce. In float32,
    ``jax.random.normal`` only draws from [−5.420, 5.220], so for q = N(0, 1),
    p = N(√20, 1) (KL = 10) the sampler's E[r] is 0.8162 (exact enumeration of its 2²³
    values, :func:`jaxkl.study.sampler_range.sampler_ratio_mean`) and k3 is biased low,
    by 0.1838, at every n. Where p puts
    mass that q (or its sampler) cannot reach, use k1, or :func:`jaxkl.importance_kl`
    with a wider proposal. Every ratio-based option (k3, the control variate, their
    antithetic/QMC forms) therefore also reports ``mean_r_minus_1`` with its stderr and
    ``pareto_k_r`` in ``diagnostics``, and is ``reliable`` only where mean(r) − 1 is
    within 3 standard errors of 0 and k̂(r) < 0.5.

    ``gradient`` chooses what ``jax.grad`` of the value means (the value is the same):

    * ``"auto"`` (default) — ``"reparam"`` when q can be reparameterised, else
      ``"score_loo"``; evaluating any pair needs no gradient choice.
    * ``"reparam"`` — pathwise: x = T_θ(ε) depends on q's parameters (needs
      ``q.reparameterized``). Unbiased for ∇E_q[k]: that is ∇KL(q‖p) for k1 and k3
      (unbiased estimators), but ∇E_q[k2] ≠ ∇KL(q‖p) for k2.
    * ``"stl"`` — sticking the landing (Roeder et al. 2017), k1 only: as "reparam" but
      the parameters inside log q are stopped, dropping the direct term ∇θ log q, whose
      expectation is zero; its variance vanishes as q → p. For k2 and k3 the dropped
      direct term does not average to zero (for k3 it is E_q[(1 − r)∇θ log q] =
      ∇KL(p‖q)), so those combinations are refused rather than silently biased.
    * ``"score"`` — score function, for q that cannot be reparameterised (Bernoulli,
      Categorical, Poisson, Mixture weights): x is held fixed and the per-draw gradient
      is ∇k + k·∇log q = (a + k)·∇log q, a = ∂k/∂log q (see
      :func:`jaxkl.estimators.gradients.score_surrogate`). For k3, a + k = k1 exactly: the
      score gradient of k3 *is* k1·∇log q, the k1 score gradient without its zero-mean
      direct term ∇log q and without a baseline.
    * ``"score_loo"`` — the same with the leave-one-out baseline (RLOO): per draw
      (wᵢ − bᵢ)·∇log q, wᵢ = aᵢ + kᵢ, bᵢ = mean_{j≠i} wⱼ, which does not depend on xᵢ and
      so keeps it unbiased, with less variance than ``"score"`` (n ≥ 2, independent
      draws: ``sampler=IID()``): 4.7× less for k1 and 1.9× for k2 on a 4-category example, about
      the same for k3, whose plain score gradient already lacks the constant that the
      baseline removes (tests/estimators/test_gradients.py). The same code serves
      ``jaxkl.fit.reverse_kl``.

    ``sampler`` chooses how x ~ q is drawn (each keeps k1 unbiased; see
    :mod:`jaxkl.estimators.samplers` and :mod:`jaxkl.estimators.variance_reduction`):

    * ``IID()`` or ``"iid"`` (default) — n independent draws; dof = n − 1.
    * ``Antithetic()`` or ``"antithetic"`` — n/2 draws and their reflections through q's
      mean (q symmetric: Normal, MVNs, Laplace, Uniform); the n/2 pair averages are the
      independent terms, so dof = n/2 − 1. Exact (zero variance) for k1 on equal-scale
      Gaussians, where k1 is linear in x.
    * ``RQMC(randomizations=m)`` or ``"rqmc"`` (m = 32) — randomised quasi-Monte Carlo
      for Gaussian q: m independent random shifts of a rank-1 lattice of n / m points;
      the standard error comes from the spread of the m randomisations, so dof = m − 1.
      The randomisation means of an integrand that is unbounded in the unit cube (k1 of
      Gaussians of different scales) are not normal, so few of them make the t-interval
      cover too little: on N(0, 1)‖N(0.5, 1.3²) at n = 1024, m = 16 covered 0.92 ± 0.004
      of 4000 replicates (two seeds: 0.9205, 0.9163); the default m = 32 covers within
      0.93–0.97 (tests/estimators/test_coverage.py) and still had 14–15× less variance
      than i.i.d. draws in the same runs.

    The older flags are still accepted: ``antithetic=True`` is ``sampler=Antithetic()``,
    ``qmc=True, qmc_randomizations=m`` is ``sampler=RQMC(m)`` (m = 32 if not given).
    Given together with ``sampler``, they must spell the same strategy.

    ``control_variate=True`` — k1 only, with independent draws (``IID()``): k1 − β̂(r − 1)
    with β̂ cross-fitted on the other half of the samples (β = −1 is k3), set to 0 where
    that half's ratios are heavy-tailed (k̂(r) ≥ 0.5) and shrunk towards 0 by its own
    estimation noise, so it falls back to plain k1 where the control variate would hurt.
    Needs a normalised p; its ratio check applies.

    Args:
      key: typed key, legacy key or int seed.
      q: the distribution sampled, batch shape ``Bq``, event shape ``E``.
      p: a distribution with event shape ``E`` (batch ``Bp``), or a callable
        ``x [n, *B, *E] -> log p(x) [n, *B]``. With an unnormalised p (log p + log Z) the
        result estimates KL(q‖p) − log Z for k1 (and k3 is then biased).
      num_samples: n ≥ 1 (static). n = 1 gives ``stderr = inf``.
      estimator: "k1" (default), "k2" or "k3".
      gradient: "auto" (default), "reparam", "stl", "score" or "score_loo".
      sampler: ``IID()`` (default), ``Antithetic()`` (n even) or ``RQMC(m)`` (n a
        multiple of m), or their names ``"iid"``, ``"antithetic"``, ``"rqmc"``. Static:
        under ``jax.jit`` pass it through ``static_argnames`` or close over it.
      control_variate: add the cross-fitted control variate r − 1 (k1 only, n ≥ 4,
        independent draws).
      antithetic: older spelling of ``sampler=Antithetic()``.
      qmc: older spelling of ``sampler=RQMC(qmc_randomizations)``.
      qmc_randomizations: m for ``qmc=True`` (default 32, must be ≥ 2).

    Returns:
      ``Estimate(value, stderr, num_samples, dof, pareto_k, diagnostics, checks_passed)``;
      arrays of shape ``broadcast(Bq, Bp)``.

    Example:
      >>> import jaxkl
      >>> q, p = jaxkl.Normal(0.0, 1.0), jaxkl.Normal(1.0, 1.0)
      >>> est = jaxkl.mc_kl(0, q, p, 4096, estimator="k3")
      >>> low, high = est.ci(0.95)
      >>> bool(low < 0.5 < high), bool(est.reliable)
      (True, True)
      >>> pairs = jaxkl.mc_kl(0, q, p, 4096, sampler=jaxkl.Antithetic())
      >>> float(pairs.value), pairs.dof  # k1 is linear in x here: every pair gives 0.5
      (0.5, 2047)
      >>> jaxkl.mc_kl(0, q, p, 4096, sampler=jaxkl.RQMC(randomizations=16)).dof
      15
    """
    _check_choice("estimator", estimator, ESTIMATORS)
    _check_choice("gradient", gradient, GRADIENTS)
    sampler = _sampler_of(sampler, antithetic, qmc, qmc_randomizations)
    check_num_samples("mc_kl", num_samples)
    # numpyro/distrax/TFP objects: converted, or wrapped with their own sample/log_prob
    # (before the callable check: numpyro's distributions are callable).
    q, p = as_sampleable(q), as_sampleable(p)
    if not isinstance(q, Distribution):
        raise TypeError(f"mc_kl: q must be a jaxkl distribution; got {type(q).__name__}")
    gradient = resolve_gradient(gradient, q, num_samples)
    if gradient == "stl" and estimator != "k1":
        raise ValueError(
            f"mc_kl: gradient='stl' is unbiased only with estimator='k1' (for {estimator} the "
            "dropped term ∇θ log q does not average to zero); use gradient='reparam'"
        )
    if gradient in ("reparam", "stl") and not q.reparameterized:
        raise ValueError(
            f"mc_kl: {type(q).__name__} cannot be reparameterised; use gradient='score_loo' "
            "(or 'auto', the default)"
        )
    if gradient == "score_loo":
        if num_samples < 2:
            raise ValueError("mc_kl: gradient='score_loo' needs num_samples >= 2")
        if not sampler.independent:
            raise ValueError(
                "mc_kl: gradient='score_loo' needs independent draws (the leave-one-out "
                f"baseline of a draw must not depend on it); got sampler={sampler!r}, use IID()"
            )
    if control_variate:
        _check_control_variate(estimator, sampler, num_samples)
    log_p_fn = _log_density_of(p, q.event_shape)

    q_batch = tuple(q.batch_shape)
    batch = q_batch
    if isinstance(p, Distribution):
        batch = broadcast_batches("mc_kl", q=q_batch, p=p.batch_shape)
    # Leading batch axes that p has and q lacks become extra sample axes, so each batch
    # member gets its own draws. Sample axes: [n] i.i.d.; [2, n/2] antithetic; [m, n/m]
    # QMC. Terms are reduced to the sampler's independent units (pair averages,
    # per-randomisation means) before the stderr.
    x = draw(key, q, num_samples, sampler=sampler, batch=batch, where="mc_kl")
    extra = batch[: len(batch) - len(q_batch)]
    if gradient in ("score", "score_loo"):
        x = jax.lax.stop_gradient(x)
    q_for_density = jax.lax.stop_gradient(q) if gradient == "stl" else q
    log_q = q_for_density.log_prob(x)
    log_p = jnp.asarray(log_p_fn(x))
    # The sample axes (everything before the batch) must match exactly: a callable that
    # reduces over the draws (a scalar, say) would otherwise broadcast against every draw
    # and give a confident wrong value. Batch axes may broadcast (q's or p's size 1).
    sample_ndim = log_q.ndim - len(extra) - len(q_batch)
    try:
        if log_p.ndim != log_q.ndim or log_p.shape[:sample_ndim] != log_q.shape[:sample_ndim]:
            raise ValueError
        shape = np.broadcast_shapes(log_q.shape, log_p.shape)
    except ValueError:
        expected = (*log_q.shape[:sample_ndim], *batch)
        raise ValueError(
            f"mc_kl: p(x) must return one log density per draw, of shape {expected} "
            f"([samples, *batch]) for x of shape {tuple(x.shape)}; got shape "
            f"{tuple(log_p.shape)}"
            + (" (a scalar: did p sum over the draws?)" if log_p.ndim == 0 else "")
        ) from None
    log_q, log_p = jnp.broadcast_to(log_q, shape), jnp.broadcast_to(log_p, shape)
    ratio_based = estimator == "k3" or control_variate
    log_moments = structural_ratio_moments(q, p, batch) if ratio_based else None

    def terms_fn(lq):
        t = per_sample_kl(lq, log_p, estimator)
        if control_variate:
            t = control_variate_terms(t, log_p - lq, log_moments=log_moments)
        return t

    if gradient in ("score", "score_loo"):
        # Value unchanged; the θ-gradient becomes (w − b)·∇log q per draw.
        baseline = "loo" if gradient == "score_loo" else "none"
        terms = score_surrogate(terms_fn, log_q, baseline=baseline)
    else:
        terms = terms_fn(log_q)
    return _estimate_from_terms(
        terms,
        num_samples=num_samples,
        to_units=sampler.to_units,
        log_r=jax.lax.stop_gradient(log_p - log_q) if ratio_based else None,
        log_moments=log_moments,
        bounded=has_finite_support(q),
    )


def _sampler_of(sampler, antithetic: bool, qmc: bool, qmc_randomizations) -> Sampler:
    """The strategy mc_kl draws with: ``sampler``, or the one the older flags spell."""
    if antithetic and qmc:
        raise ValueError("mc_kl: choose one of antithetic=True and qmc=True, not both")
    chosen = None if sampler is None else as_sampler("mc_kl", sampler)
    m = qmc_randomizations
    if m is None:  # qmc=True alone restates any RQMC sampler, else means the default m
        m = chosen.randomizations if isinstance(chosen, RQMC) else RQMC().randomizations
    if qmc and isinstance(m, int | np.integer) and m < 2:  # named as the caller spelled it
        raise ValueError(f"mc_kl: qmc_randomizations must be >= 2 for a standard error; got {m}")
    flagged = Antithetic() if antithetic else RQMC(m) if qmc else IID()
    if chosen is None:
        return flagged
    if (antithetic or qmc or qmc_randomizations is not None) and flagged != chosen:
        raise ValueError(
            f"mc_kl: sampler={chosen!r} disagrees with the older flags antithetic={antithetic}, "
            f"qmc={qmc}, qmc_randomizations={qmc_randomizations} (they spell {flagged!r}); "
            "give sampler= alone"
        )
    return chosen


def _check_control_variate(estimator: str, sampler: Sampler, n: int) -> None:
    if estimator != "k1":
        raise ValueError(
            "mc_kl: control_variate=True applies to estimator='k1' (k3 already is k1 "
            f"plus the control variate r − 1); got {estimator!r}"
        )
    if not sampler.independent:
        raise ValueError(
            "mc_kl: control_variate=True needs independent draws (its coefficient is fitted "
            f"on one half of them and applied to the other); got sampler={sampler!r}, use IID()"
        )
    if n < 4:
        raise ValueError(f"mc_kl: control_variate=True needs num_samples >= 4; got {n}")
