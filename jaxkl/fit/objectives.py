"""Objectives for fitting q to p: reverse KL, forward KL and a sampled-token KL penalty.

Each objective returns an :class:`~jaxkl.Estimate` (or ``ImportanceEstimate``) whose
``value`` is a Monte Carlo estimate of the divergence and whose gradient with respect to
q's parameters is the chosen gradient estimator. Minimising

* the reverse KL(q‖p) = E_q[log q − log p] is mode seeking: q avoids regions where p is
  small, so a unimodal q settles on one mode of a multimodal p;
* the forward KL(p‖q) = E_p[log p − log q] is mass covering: q must put mass wherever p
  has it; for a Gaussian q the optimum matches p's mean and covariance.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from jaxkl._checks import require_values
from jaxkl._shapes import broadcast_named
from jaxkl.convert import as_sampleable
from jaxkl.distributions.base import Distribution
from jaxkl.estimators.estimate import Estimate, ImportanceEstimate, mean_with_stderr
from jaxkl.estimators.monte_carlo import kl_from_log_probs, mc_kl
from jaxkl.estimators.psis import pareto_khat
from jaxkl.estimators.samplers import Sampler, broadcast_batches, check_num_samples, draw

__all__ = [
    "REVERSE_KL_GRADIENTS",
    "forward_kl",
    "forward_kl_snis",
    "reverse_kl",
    "sampled_kl_penalty",
]

REVERSE_KL_GRADIENTS = ("auto", "reparam", "stl", "score", "score_loo")


def _log_density(p, where: str) -> Callable[[jax.Array], jax.Array]:
    if isinstance(p, Distribution):
        return p.log_prob
    if callable(p):
        return p
    raise TypeError(
        f"{where}: p must be a jaxkl distribution or a callable log density x -> log p(x); "
        f"got {type(p).__name__}"
    )


def reverse_kl(
    key,
    q: Distribution,
    p,
    num_samples: int,
    *,
    gradient: str = "auto",
    sampler: Sampler | str | None = None,
) -> Estimate:
    """Reverse KL(q‖p) = E_q[log q(x) − log p(x)] by k1 with x ~ q, for minimising over q.

    The value is the k1 estimate (mean of log q − log p over n draws, with its standard
    error). ``gradient`` chooses the unbiased estimator of ∇θ KL(q_θ‖p) that ``jax.grad``
    of the value returns:

    * ``"reparam"``: pathwise, x = T_θ(ε); ∇ = mean ∇θ[log q_θ(T_θ(ε)) − log p(T_θ(ε))].
    * ``"stl"``: sticking the landing (Roeder et al. 2017): as reparam with the score
      term ∇θ log q_θ(x)|ₓ dropped (its mean is zero). Where q = p the remaining path
      term ∇ₓ(log q − log p)·∂x/∂θ vanishes sample by sample, so the variance goes to 0
      as q approaches p.
    * ``"score"``: score function, mean (k_i + 1) ∇θ log q_θ(x_i), x held fixed: for q
      that cannot be reparameterised.
    * ``"score_loo"``: score function with the leave-one-out baseline (RLOO):
      mean (k_i − b_i) ∇θ log q_θ(x_i), b_i = mean_{j≠i} k_j. b_i is independent of x_i,
      so it stays unbiased; the constant +1 above is absorbed by the baseline. n ≥ 2.
    * ``"auto"`` (default): ``"reparam"`` where q can be reparameterised, else
      ``"score_loo"``.

    This is ``jaxkl.mc_kl(key, q, p, num_samples, estimator="k1", gradient=gradient,
    sampler=sampler)``: the same code, so the same diagnostics (dof, ``pareto_k``,
    ``reliable``).

    Args:
      key: typed key, legacy key or int seed.
      q: the distribution being fitted, batch ``Bq``, event ``E``.
      p: the target: a distribution or a callable ``x [n, *B, *E] -> [n, *B]``. An
        unnormalised log p (log p + log Z) shifts the value by −log Z and leaves every
        gradient unchanged.
      num_samples: n (static).
      gradient: one of ``"auto"``, ``"reparam"``, ``"stl"``, ``"score"``, ``"score_loo"``.
      sampler: how the draws are made, as in :func:`jaxkl.mc_kl`: ``IID()`` (default),
        ``Antithetic()`` or ``RQMC(m)`` (or their names): the same expected value and
        gradient, lower variance for Gaussian q; the stderr and dof come from the
        independent units. ``"score_loo"`` needs independent draws (IID).

    Returns:
      ``Estimate`` with value and stderr of shape ``broadcast(Bq, Bp)``.

    Raises:
      ValueError: unknown ``gradient``; a pathwise gradient for a q that is not
        reparameterised; ``"score_loo"`` with n < 2 or with dependent draws.

    Example:
      >>> import jax, jaxkl
      >>> from jaxkl.fit import reverse_kl
      >>> p = jaxkl.Normal(1.0, 1.0)
      >>> g = jax.grad(lambda m: reverse_kl(0, jaxkl.Normal(m, 1.0), p, 64,
      ...                                    gradient="stl").value)(1.0)
      >>> float(g)  # q = p: every STL sample gradient is exactly zero
      0.0

    References:
      Roeder, Wu, Duvenaud (2017). Sticking the landing: simple, lower-variance gradient
      estimators for variational inference. NeurIPS.
      Kool, van Hoof, Welling (2019). Buy 4 REINFORCE samples, get a baseline for free!
    """
    if gradient not in REVERSE_KL_GRADIENTS:
        raise ValueError(
            f"reverse_kl: gradient must be one of {', '.join(map(repr, REVERSE_KL_GRADIENTS))}; "
            f"got {gradient!r}"
        )
    # One implementation of every gradient estimator, score_loo included: mc_kl's.
    return mc_kl(key, q, p, num_samples, estimator="k1", gradient=gradient, sampler=sampler)


def forward_kl(q: Distribution, x, log_p=None) -> Estimate:
    """Forward KL(p‖q) = E_p[log p(x) − log q(x)] from samples x ~ p, for minimising over q.

    x is data (held fixed): the gradient is −mean ∇θ log q_θ(x_i), an unbiased estimate
    of ∇θ KL(p‖q_θ) (maximum likelihood). Without ``log_p`` the value is the
    cross-entropy −E_p[log q] = KL(p‖q) + H(p), which has the same gradient.

    Args:
      q: the distribution being fitted, batch ``B``, event ``E``.
      x: ``[n, *B, *E]`` samples from p (``stop_gradient`` is applied).
      log_p: optional: log p at x (an array ``[n, *B]``), a distribution, or a callable
        ``x -> log p(x)``. With an unnormalised log p (+ log Z) the value is offset by
        log Z.

    Returns:
      ``Estimate``: value and stderr ``[*B]`` (KL(p‖q), or the cross-entropy without
      ``log_p``), over the n samples.

    Raises:
      ValueError: x (or an array ``log_p``) contains NaN; the error shows the first
        entries. Traced x (inside ``jit``) is checked only under ``jaxkl.checked``; in
        plain ``jit`` a NaN sample gives a NaN value and stderr.

    Example:
      >>> import jax, jaxkl
      >>> from jaxkl.fit import forward_kl
      >>> p, q = jaxkl.Normal(0.0, 1.0), jaxkl.Normal(1.0, 1.0)
      >>> est = forward_kl(q, p.sample(0, (20_000,)), p)
      >>> abs(float(est.value) - float(jaxkl.kl(p, q))) < 5 * float(est.stderr)
      True
    """
    q, log_p = as_sampleable(q), as_sampleable(log_p)  # numpyro/distrax/TFP objects
    if not isinstance(q, Distribution):
        raise TypeError(f"forward_kl: q must be a jaxkl distribution; got {type(q).__name__}")
    x = jax.lax.stop_gradient(jnp.asarray(x))
    # A NaN sample makes the estimate NaN; say which one instead (concrete x only).
    require_values("forward_kl", "x", x, ~jnp.isnan(x), rule="not contain NaN")
    log_q = q.log_prob(x)
    if log_q.ndim < 1:
        raise ValueError(f"forward_kl: x must have a leading sample axis; got shape {x.shape}")
    if log_p is None:
        return mean_with_stderr(-log_q, axis=0)
    if isinstance(log_p, Distribution) or callable(log_p):
        log_p = _log_density(log_p, "forward_kl")(x)
    else:
        log_p = jnp.asarray(log_p)
        require_values("forward_kl", "log_p", log_p, ~jnp.isnan(log_p), rule="not contain NaN")
    log_q, log_p = broadcast_named("forward_kl", log_q=log_q, log_p=log_p)
    return mean_with_stderr(jax.lax.stop_gradient(log_p) - log_q, axis=0)


def forward_kl_snis(
    key, q: Distribution, log_p, num_samples: int, *, proposal: Distribution | None = None
) -> ImportanceEstimate:
    """Forward KL(p‖q) by self-normalised importance sampling, when only log p̃ is known.

    With x_i ~ r (the proposal; default: q itself, held fixed), log weights
    log wᵢ = log p̃(xᵢ) − log r(xᵢ), normalised weights w̄ᵢ = wᵢ/Σⱼwⱼ and
    log Ẑ = logsumexp(log w) − log n (the estimate of p̃'s normaliser):

        KL̂(p‖q) = Σᵢ w̄ᵢ (log p̃(xᵢ) − log q(xᵢ)) − log Ẑ,

    a ratio estimator (consistent, bias O(1/n)). The weights are held fixed, so the
    gradient is −Σᵢ w̄ᵢ ∇θ log q_θ(xᵢ) (as in reweighted wake-sleep). The standard error is
    the delta-method one: the influence of sample i on the value is
    ψᵢ = n w̄ᵢ (fᵢ − KL̂ − log Ẑ − 1) + 1 with fᵢ = log p̃(xᵢ) − log q(xᵢ), and
    SE² = Σψᵢ² / (n(n − 1)).

    The estimate is only as good as the proposal covers p: check ``ess`` (Kish,
    (Σw)²/Σw²) and ``pareto_k`` (k̂ ≥ 0.5: the weights' variance is infinite and the
    standard error means nothing; ``reliable`` says so). With the default proposal q, a q
    that has collapsed onto one mode cannot see the others.

    Args:
      key: typed key, legacy key or int seed.
      q: the distribution being fitted, batch ``B``, event ``E``.
      log_p: the target's log density up to a constant: a callable ``x -> [n, *B]`` or a
        distribution.
      num_samples: n ≥ 2 (static).
      proposal: the sampling distribution r (default ``stop_gradient(q)``); it must be
        sampleable and have a ``log_prob``.

    Returns:
      ``ImportanceEstimate`` with ``value``, ``stderr``, ``ess`` and ``pareto_k`` (k̂ of
      the log weights: ≥ 0.5, infinite variance, makes it not ``reliable``), each
      ``[*B]``; dof = n − 1.

    Example:
      >>> import jaxkl
      >>> from jaxkl.fit import forward_kl_snis
      >>> p, q = jaxkl.Normal(0.0, 1.0), jaxkl.Normal(0.5, 1.5)
      >>> unnormalised = lambda x: p.log_prob(x) + 3.0  # log Z = 3 is not needed
      >>> est = forward_kl_snis(0, q, unnormalised, 20_000)
      >>> abs(float(est.value) - float(jaxkl.kl(p, q))) < 5 * float(est.stderr)
      True

    References:
      Bornschein & Bengio (2015). Reweighted wake-sleep. ICLR.
    """
    check_num_samples("forward_kl_snis", num_samples, minimum=2)
    q, log_p, proposal = as_sampleable(q), as_sampleable(log_p), as_sampleable(proposal)
    if not isinstance(q, Distribution):
        raise TypeError(f"forward_kl_snis: q must be a jaxkl distribution; got {type(q).__name__}")
    log_p_fn = _log_density(log_p, "forward_kl_snis")
    r = jax.lax.stop_gradient(q) if proposal is None else proposal
    # x [n, *Br, *E]; unlike mc_kl, batch axes that only log_p has share these draws.
    x = jax.lax.stop_gradient(draw(key, r, num_samples, where="forward_kl_snis"))
    log_q, log_pt, log_r = broadcast_named(
        "forward_kl_snis", log_q=q.log_prob(x), log_p=log_p_fn(x), log_proposal=r.log_prob(x)
    )
    log_pt = jax.lax.stop_gradient(log_pt)
    log_w = jax.lax.stop_gradient(log_pt - log_r)
    w_bar = jax.nn.softmax(log_w, axis=0)
    log_z = logsumexp(log_w, axis=0) - math.log(num_samples)
    # A draw where p̃ = 0 has weight 0 and f = −inf; it must contribute 0, not 0·(−inf).
    f = jnp.where(log_w > -jnp.inf, log_pt - log_q, 0.0)
    value = jnp.sum(w_bar * f, axis=0) - log_z
    mu = jax.lax.stop_gradient(value + log_z)
    psi = num_samples * w_bar * (jax.lax.stop_gradient(f) - mu - 1.0) + 1.0
    stderr = jnp.sqrt(jnp.sum(jnp.square(psi), axis=0) / (num_samples * (num_samples - 1)))
    stderr = jnp.where(jnp.isfinite(value), stderr, jnp.inf)
    ess = 1.0 / jnp.sum(jnp.square(w_bar), axis=0)
    return ImportanceEstimate(
        value, stderr, num_samples, num_samples - 1, pareto_khat(log_w, axis=0), ess=ess
    )


def sampled_kl_penalty(
    key, q: Distribution, p, num_samples: int, *, estimator: str = "k1"
) -> Estimate:
    """The RLHF-style KL penalty: k1, k2 or k3 on tokens sampled from q, held fixed.

    x_i ~ q is drawn and passed through ``stop_gradient`` (tokens are data, as in a policy
    -gradient loss); the loss is the mean of the per-sample estimator on
    log q_θ(x_i) − log p(x_i), so its gradient flows only through log q_θ. The values are
    (unbiased for k1, k3) estimates of KL(q‖p), but the expected gradients are

    * k1 = log q − log p:        E_q[∇ log q] = 0 — no pull towards p at all;
    * k2 = ½(log q − log p)²:   E_q[(log q − log p)∇ log q] = ∇θ KL(q‖p) — honest;
    * k3 = (p/q − 1) − log(p/q): E_q[(1 − p/q)∇ log q] = ∇θ KL(p‖q) — the forward KL.

    Args:
      key: typed key, legacy key or int seed.
      q: the policy, batch ``B`` (e.g. ``Categorical(logits)`` with K categories).
      p: the reference: a distribution or a callable ``x -> log p(x)``.
      num_samples: n tokens (static).
      estimator: "k1", "k2" or "k3".

    Returns:
      ``Estimate`` with value and stderr ``[*B]``.

    Example:
      >>> import jax, jaxkl
      >>> from jaxkl.fit import sampled_kl_penalty
      >>> q, p = jaxkl.Normal(0.0, 1.0), jaxkl.Normal(1.0, 1.0)
      >>> est = sampled_kl_penalty(0, q, p, 10_000, estimator="k3")
      >>> abs(float(est.value) - 0.5) < 5 * float(est.stderr)
      True
    """
    check_num_samples("sampled_kl_penalty", num_samples)
    q, p = as_sampleable(q), as_sampleable(p)  # numpyro/distrax/TFP objects
    if not isinstance(q, Distribution):
        raise TypeError(
            f"sampled_kl_penalty: q must be a jaxkl distribution; got {type(q).__name__}"
        )
    log_p_fn = _log_density(p, "sampled_kl_penalty")
    batch = tuple(q.batch_shape)
    if isinstance(p, Distribution):
        batch = broadcast_batches("sampled_kl_penalty", q=batch, p=p.batch_shape)
    x = jax.lax.stop_gradient(draw(key, q, num_samples, batch=batch, where="sampled_kl_penalty"))
    log_q, log_p = broadcast_named("sampled_kl_penalty", log_q=q.log_prob(x), log_p=log_p_fn(x))
    return kl_from_log_probs(log_q, log_p, estimator=estimator, axis=0)
