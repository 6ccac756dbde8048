"""Result types of the estimators: a value never travels without its uncertainty.

An :class:`Estimate` carries the value, its standard error, the degrees of freedom behind
that standard error, a tail diagnostic, and the verdict of the estimator's own checks, so
that a reader can form an honest interval (:meth:`Estimate.ci`) and knows when not to
(:attr:`Estimate.reliable`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "PLAIN_KHAT_THRESHOLD",
    "Estimate",
    "ImportanceEstimate",
    "mean_with_stderr",
    "sum_estimates",
    "t_quantile",
]

# Terms whose tail shape is k ≥ 0.5 have infinite variance: a standard error computed from
# them does not estimate anything (Vehtari et al. 2024, §3 — the plain, unsmoothed reading).
PLAIN_KHAT_THRESHOLD = 0.5


@functools.lru_cache(maxsize=256)
def t_quantile(probability: float, dof: int) -> float:
    """Quantile of Student's t with ``dof`` degrees of freedom (host side, scipy).

    ``dof`` ≤ 0 gives ``inf`` (no interval can be formed); ``dof`` = ∞ is not accepted,
    pass a large int instead.

    Example:
      >>> round(t_quantile(0.975, 9), 4)
      2.2622
    """
    if not 0.0 < probability < 1.0:
        raise ValueError(f"t_quantile: probability must be in (0, 1); got {probability}")
    if dof < 1:
        return math.inf
    # scipy is a dependency of jax itself; it is used on the host only, with static dof.
    from scipy.stats import t as student_t

    return float(student_t.ppf(probability, dof))


def _static_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(
            f"Estimate: {name} must be a Python int (static metadata, not an array); "
            f"got {type(value).__name__}"
        )
    return int(value)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Estimate:
    """A Monte Carlo estimate with its uncertainty and diagnostics (a pytree).

    Attributes:
      value: the estimate, with the batch shape of the problem.
      stderr: its standard error, same shape; ``inf`` when it cannot be estimated (a
        single independent term) or when ``value`` is infinite.
      num_samples: n, the number of draws behind the estimate (static Python int).
      dof: degrees of freedom of ``stderr`` (static Python int): n − 1 for n i.i.d. terms,
        n/2 − 1 for antithetic pairs, m − 1 for m QMC randomisations, G − 1 for G k-NN
        subsamples. :meth:`ci` uses Student's t with ``dof``.
      pareto_k: tail diagnostic, same shape as ``value``: the generalised-Pareto shape k̂
        of the heavier tail of the independent terms (:func:`jaxkl.estimators.psis.tail_khat`;
        for importance sampling, of the weights). k̂ ≥ ``khat_threshold`` means the
        terms' variance is (most likely) infinite and ``stderr`` means nothing. NaN where
        too few terms to fit a tail (≤ 20) or no tail applies.
      diagnostics: estimator-specific diagnostics, a dict of arrays of ``value``'s shape,
        e.g. ``mean_r_minus_1`` and ``mean_r_minus_1_stderr`` for ratio-based estimators.
      checks_passed: the estimator's own verdict (bool array of ``value``'s shape), or
        ``None`` when it has no check of its own.
      khat_threshold: the k̂ above which the estimate is not reliable (static float):
        0.5 for plain averages; for Pareto-smoothed importance sampling
        min(0.7, 1 − 1/log₁₀ S).

    The static fields stay Python values under ``jax.jit`` and ``jax.vmap``: they are
    pytree metadata, not leaves.

    Arithmetic treats operands as **independent** estimates: ``a + b`` and ``a − b``
    add variances (stderr = √(se_a² + se_b²)), ``c * a`` scales the stderr by |c|, and
    an array or scalar added to an estimate shifts its value. The result's dof is the
    smaller of the two (conservative), its k̂ the larger, and it is reliable only where
    both operands are. ``float(est)`` and ``np.asarray(est)`` refuse: use ``est.value``.

    Example:
      >>> import jaxkl
      >>> q, p = jaxkl.Normal(0.0, 1.0), jaxkl.Normal(1.0, 1.0)
      >>> est = jaxkl.mc_kl(0, q, p, 4096)
      >>> est.num_samples, est.dof
      (4096, 4095)
      >>> low, high = est.ci(0.95)
      >>> bool(low < 0.5 < high), bool(est.reliable)
      (True, True)
    """

    value: jax.Array
    stderr: jax.Array
    num_samples: int
    dof: int | None = None
    pareto_k: Any = None
    diagnostics: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    checks_passed: Any = None
    khat_threshold: float = PLAIN_KHAT_THRESHOLD

    # Fields that are pytree leaves, in flattening order; the rest are static metadata.
    _LEAVES = ("value", "stderr", "pareto_k", "diagnostics", "checks_passed")
    _STATIC = ("num_samples", "dof", "khat_threshold")

    def __post_init__(self):
        # Inside jax transformations leaves may be tracers or placeholders (object() during
        # tree_util internals, None); only the static fields are normalised here.
        n = self.num_samples
        if n is not None:
            object.__setattr__(self, "num_samples", _static_int("num_samples", n))
        dof = self.dof
        if dof is None and n is not None:
            dof = max(int(n) - 1, 0)
        if dof is not None:
            object.__setattr__(self, "dof", _static_int("dof", dof))
        if self.pareto_k is None and _is_array_like(self.value):
            object.__setattr__(
                self, "pareto_k", jnp.full(jnp.shape(self.value), jnp.nan, _dtype(self.value))
            )
        object.__setattr__(self, "diagnostics", dict(self.diagnostics or {}))
        object.__setattr__(self, "khat_threshold", float(self.khat_threshold))

    # -- pytree ---------------------------------------------------------------------------
    def tree_flatten(self):
        leaves = tuple(getattr(self, f) for f in self._LEAVES)
        static = tuple(getattr(self, f) for f in self._STATIC)
        extra = tuple(getattr(self, f) for f in self._extra_static())
        return leaves, (static, extra)

    @classmethod
    def _extra_static(cls) -> tuple[str, ...]:
        return ()

    @classmethod
    def tree_unflatten(cls, aux, leaves):
        static, extra = aux
        obj = object.__new__(cls)
        for name, leaf in zip(cls._LEAVES, leaves, strict=True):
            object.__setattr__(obj, name, leaf)
        for name, val in zip(cls._STATIC, static, strict=True):
            object.__setattr__(obj, name, val)
        for name, val in zip(cls._extra_static(), extra, strict=True):
            object.__setattr__(obj, name, val)
        return obj

    # -- reading --------------------------------------------------------------------------
    def ci(self, level: float = 0.95) -> tuple[jax.Array, jax.Array]:
        """The two-sided ``level`` confidence interval value ± t_{dof}·stderr.

        Student's t with ``dof`` degrees of freedom (so 16 QMC randomisations use t₁₅,
        not 1.96). Only as good as ``stderr``: check :attr:`reliable`.

        Args:
          level: coverage in (0, 1), a Python float (static).

        Returns:
          ``(low, high)``, each of ``value``'s shape; ``(-inf, inf)`` where dof < 1 or
          stderr is infinite.
        """
        if not isinstance(level, float | int) or not 0.0 < float(level) < 1.0:
            raise ValueError(f"Estimate.ci: level must be a float in (0, 1); got {level!r}")
        half = t_quantile(0.5 + float(level) / 2.0, self.dof) * self.stderr
        if self.dof < 1:
            half = jnp.full(jnp.shape(self.value), jnp.inf, _dtype(self.value))
        return self.value - half, self.value + half

    @property
    def reliable(self) -> jax.Array:
        """Whether :meth:`ci` can be trusted, elementwise (bool array of ``value``'s shape).

        False where the standard error is not finite, where the tail diagnostic
        ``pareto_k`` is ≥ ``khat_threshold`` (infinite variance: the stderr means nothing),
        or where the estimator's own check failed (``checks_passed``, e.g. a ratio-based
        estimator whose ratios do not average to 1). A NaN ``pareto_k`` (too few terms to
        fit a tail) does not by itself make an estimate unreliable.
        """
        ok = jnp.isfinite(self.stderr) & ~(self.pareto_k >= self.khat_threshold)
        if self.checks_passed is not None:
            ok = ok & self.checks_passed
        return ok

    # -- arithmetic between independent estimates ------------------------------------------
    def _combine(self, other: Estimate, sign: float) -> Estimate:
        value = self.value + sign * other.value
        stderr = jnp.hypot(self.stderr, other.stderr)
        return Estimate(
            value,
            stderr,
            self.num_samples + other.num_samples,
            min(self.dof, other.dof),
            jnp.fmax(self.pareto_k, other.pareto_k),
            checks_passed=self.reliable & other.reliable,
            khat_threshold=max(self.khat_threshold, other.khat_threshold),
        )

    def _shifted(self, shift, sign: float = 1.0) -> Estimate:
        return dataclasses.replace(
            _as_plain(self), value=sign * self.value + shift, stderr=self.stderr
        )

    def __add__(self, other):
        if isinstance(other, Estimate):
            return self._combine(other, 1.0)
        if _is_number_like(other):
            return self._shifted(other)
        return NotImplemented

    def __radd__(self, other):
        if _is_number_like(other):
            return self._shifted(other)
        return NotImplemented

    def __sub__(self, other):
        if isinstance(other, Estimate):
            return self._combine(other, -1.0)
        if _is_number_like(other):
            return self._shifted(-jnp.asarray(other))
        return NotImplemented

    def __rsub__(self, other):
        if _is_number_like(other):
            return self._shifted(other, sign=-1.0)
        return NotImplemented

    def __neg__(self):
        return self._shifted(0.0, sign=-1.0)

    def __mul__(self, other):
        if isinstance(other, Estimate):
            raise TypeError(
                "Estimate * Estimate is not supported (the product of two estimates has no "
                "simple standard error); multiply by a constant instead"
            )
        if _is_number_like(other):
            c = jnp.asarray(other)
            return dataclasses.replace(
                _as_plain(self), value=c * self.value, stderr=jnp.abs(c) * self.stderr
            )
        return NotImplemented

    __rmul__ = __mul__

    def __truediv__(self, other):
        if isinstance(other, Estimate):
            raise TypeError("Estimate / Estimate is not supported; divide by a constant instead")
        if _is_number_like(other):
            return self * (1.0 / jnp.asarray(other))
        return NotImplemented

    # -- refusals -------------------------------------------------------------------------
    def __float__(self):
        raise TypeError(
            "float(Estimate) is ambiguous: an estimate is a value with an error bar. "
            "Use est.value (and est.stderr, est.ci())"
        )

    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            "an Estimate is not an array: use est.value (and est.stderr, est.ci()) explicitly"
        )

    def __iter__(self):
        raise TypeError(
            "an Estimate is not a tuple: read est.value, est.stderr, est.num_samples, est.dof"
        )

    def __repr__(self) -> str:
        name = type(self).__name__
        try:
            v, s = np.asarray(self.value), np.asarray(self.stderr)
            if v.shape == ():
                body = f"value={float(v):.6g} ± {float(s):.3g}"
                k = float(np.asarray(self.pareto_k))
                body += f", pareto_k={k:.3g}, reliable={bool(np.asarray(self.reliable))}"
            else:
                body = f"value=<{v.dtype}{list(v.shape)}>, stderr=<{s.dtype}{list(s.shape)}>"
        except Exception:  # tracers: show the structure only
            body = f"value={self.value}, stderr={self.stderr}"
        return f"{name}({body}, num_samples={self.num_samples}, dof={self.dof})"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class ImportanceEstimate(Estimate):
    """An importance-sampling estimate: an :class:`Estimate` plus the weights' diagnostics.

    Attributes:
      value, stderr, num_samples, dof, diagnostics, checks_passed: as in :class:`Estimate`.
      pareto_k: PSIS k̂ of the importance weights (:func:`jaxkl.pareto_khat`).
      khat_threshold: 0.5 for the plain estimate (k̂ ≥ 0.5: the weights' variance is
        infinite); min(0.7, 1 − 1/log₁₀ S) for the Pareto-smoothed one.
      ess: Kish effective sample size (Σw)²/Σw², in [1, n].
    """

    ess: Any = None

    _LEAVES = (*Estimate._LEAVES, "ess")


def _is_array_like(x) -> bool:
    return isinstance(x, jax.Array | np.ndarray | float | int | np.generic)


def _is_number_like(x) -> bool:
    return not isinstance(x, Estimate) and _is_array_like(x)


def _dtype(x):
    return jnp.result_type(x) if jnp.issubdtype(jnp.result_type(x), jnp.floating) else float


def _as_plain(est: Estimate) -> Estimate:
    """The Estimate part of ``est`` (drops subclass-only fields such as ``ess``)."""
    if type(est) is Estimate:
        return est
    return Estimate(
        est.value,
        est.stderr,
        est.num_samples,
        est.dof,
        est.pareto_k,
        est.diagnostics,
        est.checks_passed,
        est.khat_threshold,
    )


jax.tree_util.register_pytree_node_class(Estimate)
jax.tree_util.register_pytree_node_class(ImportanceEstimate)


def sum_estimates(estimates: Sequence[Estimate]) -> Estimate:
    """The sum of independent estimates (e.g. a hierarchical VAE's per-layer KLs).

    Args:
      estimates: a non-empty sequence of :class:`Estimate` with broadcastable shapes.

    Returns:
      ``Estimate`` of the sum: stderr √Σ seᵢ², dof the smallest, k̂ the largest; reliable
      only where every term is.

    Example:
      >>> a = mean_with_stderr(jnp.array([1.0, 2.0, 3.0]))
      >>> b = mean_with_stderr(jnp.array([0.0, 2.0]))
      >>> s = sum_estimates([a, b])
      >>> float(s.value), round(float(s.stderr), 4), s.dof
      (3.0, 1.1547, 1)
    """
    estimates = list(estimates)
    if not estimates:
        raise ValueError("sum_estimates: need at least one estimate")
    bad = [type(e).__name__ for e in estimates if not isinstance(e, Estimate)]
    if bad:
        raise TypeError(f"sum_estimates: every item must be an Estimate; got {bad}")
    return functools.reduce(lambda a, b: a + b, estimates)


def mean_with_stderr(samples: jax.Array, axis: int = 0, *, tail: bool = True) -> Estimate:
    """Mean of independent ``samples`` along ``axis`` with its standard error, dof and k̂.

    Args:
      samples: per-sample values ``[..., n, ...]``, independent along ``axis``.
      axis: the sample axis.
      tail: fit the tail diagnostic ``pareto_k`` (k̂ of the heavier tail of the samples;
        NaN for n ≤ 20). ``False`` leaves it NaN (for callers that set their own).

    Returns:
      ``Estimate`` whose value, stderr and pareto_k have ``samples``' shape without
      ``axis``; dof = n − 1. With n = 1 the standard error is ``inf``; where the mean is
      infinite so is stderr (instead of the NaN a variance of infinities would give).

    Example:
      >>> est = mean_with_stderr(jnp.array([1.0, 2.0, 3.0]))
      >>> float(est.value), round(float(est.stderr), 4), est.dof
      (2.0, 0.5774, 2)
    """
    from jaxkl.estimators.psis import tail_khat  # psis imports nothing from here

    samples = jnp.asarray(samples)
    if samples.ndim == 0:
        raise ValueError("mean_with_stderr: samples must have at least one dimension")
    if not -samples.ndim <= axis < samples.ndim:
        raise ValueError(
            f"mean_with_stderr: axis {axis} out of range for samples of shape {samples.shape}"
        )
    n = samples.shape[axis]
    if n < 1:
        raise ValueError(f"need at least one sample along axis {axis}; got shape {samples.shape}")
    value = jnp.mean(samples, axis=axis)
    if n == 1:
        stderr = jnp.full_like(value, jnp.inf)
    else:
        stderr = jnp.sqrt(jnp.var(samples, axis=axis, ddof=1) / n)
        stderr = jnp.where(jnp.isinf(value), jnp.inf, stderr)
    pareto_k = tail_khat(samples, axis=axis) if tail else None
    return Estimate(value, stderr, n, n - 1, pareto_k)
