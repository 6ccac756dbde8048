"""What theory says about each estimator on each case, derived from the case itself.

Nothing here is a fixed table: every statement follows from the case's distributions —

* closed-form moments of the ratio r = p/q (:func:`jaxkl.analytic.ratio_moments.log_ratio_moment`):
  k3 and the control variate have a finite variance only where E_q[r²] = ∫p²/q < ∞, plain
  importance sampling only where E_g[w²] = ∫q²/g < ∞ (g the proposal);
* exact moments of log r under q (:mod:`jaxkl.study.expectations`): k2's constant bias
  ½E_q[(log r)²] − KL and the density-weighted pitfall's limit ∫q²·log(q/p);
* the reflection symmetry that makes SNIS exactly unbiased (:mod:`jaxkl.study.symmetry`);
* the float32 sampler's finite range (:mod:`jaxkl.study.sampler_range`): E_s[r] < 1 where p
  has mass beyond ≈ 5.2 standard deviations of q, which biases every ratio-based estimator;
* the control variate's closed-form gate (``CV_MIN_RATIO_ESS`` in
  :mod:`jaxkl.estimators.variance_reduction`): where it is off, β = 0 on every draw and the
  control variate *is* k1.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import numpy as np

from jaxkl.analytic.ratio_moments import log_ratio_moment
from jaxkl.distributions import Mixture
from jaxkl.estimators.variance_reduction import CV_MIN_RATIO_ESS
from jaxkl.study.cases import Case
from jaxkl.study.expectations import LogRatioMoments, log_ratio_moments
from jaxkl.study.sampler_range import FLOAT32_NORMAL_SOURCE, SamplerMeans, sampler_means
from jaxkl.study.symmetry import reflection_centre

__all__ = ["SAMPLER_NOTE", "CaseFacts", "Theory", "case_facts", "case_theory"]

# Sampler effects are written into the bias statement from this size on (nats); smaller
# ones stay in the facts table. Below it they are under 1e-4 nats, which is a float32
# rounding-level effect on KL values of order 0.1–10.
SAMPLER_NOTE = 1e-4


@dataclasses.dataclass(frozen=True)
class Theory:
    """Theory for one estimator on one case.

    Attributes:
      bias: statement of E[estimate] − KL, with numbers and their source.
      bias_value: E[estimate] − KL where it is the same at every N and known exactly
        (0 for unbiased estimators; the sampler's bias where that is computed); None
        where it depends on N or is not known.
      bias_slope: |bias| ∝ N^bias_slope where theory gives a power (−1: SNIS in general,
        0: a constant offset); None otherwise.
      variance: statement about Var[estimate].
      variance_slope: −1 where Var ∝ 1/N holds (finite variance of the terms); None where
        the variance is infinite or not known.
    """

    bias: str
    bias_value: float | None
    bias_slope: float | None
    variance: str
    variance_slope: float | None


@dataclasses.dataclass(frozen=True)
class CaseFacts:
    """The case-level quantities behind :class:`Theory` (all exact; None: no rule)."""

    kl: float
    log_r2: float | None  # log E_q[r²]: +inf diverges, NaN finite without closed form
    log_r4: float | None
    w2: tuple[float, float] | None  # bounds (lo, hi) on E_g[w²], w = q/g; equal when exact
    w2_source: str
    moments: LogRatioMoments | None
    sampler_q: SamplerMeans | None  # over q's float32 sampler: a = p, b = q
    sampler_proposal: SamplerMeans | None  # over g's float32 sampler: a = q, b = p
    snis_centre: Any
    snis_reason: str
    cv_gate: str  # "on", "off" (β = 0 always) or "sample" (decided per half)
    dim: int


_FACTS: dict = {}


def _key(case: Case):
    return (case.name, case.description, case.proposal_name, case.truth)


def _log_moment(q, p, order) -> float | None:
    value = log_ratio_moment(q, p, order)
    return None if value is None else float(np.asarray(value))


def _weight_second_moment(q, g) -> tuple[tuple[float, float] | None, str]:
    """Bounds on E_g[w²] = ∫q²/g for importance weights w = q/g."""
    log_value = _log_moment(g, q, 2.0)
    if log_value is not None and not math.isnan(log_value):
        v = math.exp(log_value) if log_value < 700 else math.inf
        return (v, v), "closed form"
    if isinstance(q, Mixture) and not q.batch_shape and not q.event_shape:
        # q = Σ wⱼqⱼ: wⱼ²qⱼ² ≤ q² ≤ Σ wⱼqⱼ² (Jensen), so
        # maxⱼ wⱼ²Mⱼ ≤ ∫q²/g ≤ Σ wⱼMⱼ with Mⱼ = ∫qⱼ²/g in closed form per component.
        comps = q.components
        weights = np.asarray(jax.nn.softmax(np.asarray(q.mixture_logits, np.float64)))
        per = []
        for j in range(weights.size):
            comp = jax.tree.map(lambda a, j=j: a[j], comps)
            m = _log_moment(g, comp, 2.0)
            if m is None or math.isnan(m):
                return None, "no closed form"
            per.append(math.exp(m) if m < 700 else math.inf)
        per = np.asarray(per)
        return (
            (float(np.max(weights**2 * per)), float(np.sum(weights * per))),
            "bounds from the mixture's components: maxⱼ wⱼ²Mⱼ ≤ ∫q²/g ≤ Σⱼ wⱼMⱼ, "
            "Mⱼ = ∫qⱼ²/g in closed form",
        )
    return None, "no closed form"


def case_facts(case: Case) -> CaseFacts:
    """The exact quantities of ``case`` that theory needs (cached per case)."""
    key = _key(case)
    if key in _FACTS:
        return _FACTS[key]
    moments = log_ratio_moments(case.q, case.p)
    log_r2, log_r4 = _log_moment(case.q, case.p, 2.0), _log_moment(case.q, case.p, 4.0)
    if log_r2 is None or math.isnan(log_r2):
        gate = "sample"
    else:
        gate = (
            "on"
            if log_r2 <= -math.log(CV_MIN_RATIO_ESS) and log_r4 is not None and log_r4 < math.inf
            else "off"
        )
    centre, reason = reflection_centre(case.q, case.p, case.proposal)
    w2, w2_source = _weight_second_moment(case.q, case.proposal)
    facts = CaseFacts(
        kl=moments.mean if moments is not None else case.truth,
        log_r2=log_r2,
        log_r4=log_r4,
        w2=w2,
        w2_source=w2_source,
        moments=moments,
        sampler_q=sampler_means(case.q, case.p, case.q),
        sampler_proposal=sampler_means(case.proposal, case.q, case.p),
        snis_centre=None if centre is None else centre.tolist(),
        snis_reason=reason,
        cv_gate=gate,
        dim=int(np.prod(case.q.event_shape)) if case.q.event_shape else 1,
    )
    _FACTS[key] = facts
    return facts


def _g(x: float) -> str:
    return f"{x:.4g}"


def _exp(log_value: float) -> str:
    return (
        f"e^{log_value:.4g} = {math.exp(log_value):.4g}"
        if log_value < 700
        else f"e^{log_value:.4g}"
    )


def _k1(f: CaseFacts) -> Theory:
    variance = "∝ 1/N"
    if f.moments is not None:
        var = f.moments.second - f.moments.mean**2
        variance += f": Var_q(log r) = {_g(var)} ({f.moments.method})"
    shift = None if f.sampler_q is None else f.sampler_q.log - f.kl
    bias, value = _with_sampler("0: unbiased for any normalised p", shift, "E_s[k1] − KL")
    return Theory(bias, value, None, variance, -1.0)


def _with_sampler(bias: str, shift: float | None, what: str) -> tuple[str, float]:
    """An unbiased estimator's bias statement and value, plus the float32 sampler's shift
    where it is at least SAMPLER_NOTE."""
    if shift is None or abs(shift) < SAMPLER_NOTE:
        return bias, 0.0
    return f"{bias}; float32 sampler: {what} = {shift:+.3g} ({FLOAT32_NORMAL_SOURCE})", shift


def _k2(f: CaseFacts) -> Theory:
    if f.moments is None:
        return Theory(
            "constant ≠ 0: E k2 − KL = ½E_q[(log r)²] − KL (no exact rule for this pair)",
            None,
            0.0,
            "∝ 1/N where E_q[(log r)⁴] < ∞",
            -1.0,
        )
    value = 0.5 * f.moments.second - f.moments.mean
    finite = f.moments.fourth_finite
    return Theory(
        f"constant: E k2 − KL = ½E_q[(log r)²] − KL = {value:+.4g} ({f.moments.method})",
        value,
        0.0,
        "∝ 1/N: E_q[(log r)⁴] < ∞" if finite else "infinite: E_q[(log r)⁴] = ∞",
        -1.0 if finite else None,
    )


def _sampler_ratio_bias(f: CaseFacts) -> float | None:
    if f.sampler_q is None:
        return None
    return (f.sampler_q.w - 1.0) + (f.sampler_q.log - f.kl)


def _ratio_variance(f: CaseFacts, what: str) -> tuple[str, float | None]:
    """Variance statement of a ratio-based estimator from E_q[r²] and E_q[r⁴]."""
    sampler = (
        f"; under the float32 sampler E_s[r²] = {_g(f.sampler_q.w2)} (exact enumeration)"
        if f.sampler_q is not None
        else ""
    )
    if f.log_r2 is None:
        return f"{what}: no closed form for E_q[r²]", None
    if f.log_r2 == math.inf:
        return (
            f"{what}: infinite — ∫p²/q diverges (E_q[r²] = ∞), so no stderr means anything"
            + sampler,
            None,
        )
    if math.isnan(f.log_r2):
        return f"{what}: ∝ 1/N — ∫p²/q converges (no closed form for its value)", -1.0
    text = f"{what}: ∝ 1/N — E_q[r²] = {_exp(f.log_r2)}"
    if f.log_r4 is not None and f.log_r4 == math.inf:
        text += "; but E_q[r⁴] = ∞, so the sample variance (and the stderr) does not settle"
    if f.sampler_q is not None and f.log_r2 > math.log(2.0) + math.log(f.sampler_q.w2):
        text += sampler
    return text, -1.0


def _k3(f: CaseFacts) -> Theory:
    sampler_bias = _sampler_ratio_bias(f)
    bias = "0 under the exact law (needs E_q[r] = 1: p normalised and reached by q's draws)"
    value = 0.0
    if sampler_bias is not None and abs(f.sampler_q.w - 1.0) >= SAMPLER_NOTE:
        bias += (
            f"; the float32 sampler has E_s[r] = {f.sampler_q.w:.4f}, so E_s[k3] − KL = "
            f"(E_s[r] − 1) + (E_s[k1] − KL) = {sampler_bias:+.4g} at every N "
            f"({FLOAT32_NORMAL_SOURCE})"
        )
        value = sampler_bias
    variance, slope = _ratio_variance(f, "Var(k3 terms)")
    return Theory(bias, value, None, variance, slope)


def _control_variate(f: CaseFacts) -> Theory:
    if f.cv_gate == "off":
        k1 = _k1(f)
        if f.log_r2 == math.inf:
            why = "E_q[r²] = ∞"
        elif f.log_r2 > -math.log(CV_MIN_RATIO_ESS):
            why = f"E_q[r²] = {_exp(f.log_r2)} > 1/{CV_MIN_RATIO_ESS:g}"
        else:
            why = "E_q[r⁴] = ∞"
        return Theory(
            f"identical to k1: the closed-form gate sets β = 0 on every draw ({why}); " + k1.bias,
            k1.bias_value,
            None,
            "identical to k1: " + k1.variance,
            k1.variance_slope,
        )
    bias = "0 under the exact law (β cross-fitted on the other half; needs E_q[r] = 1)"
    value = 0.0
    if f.sampler_q is not None and abs(f.sampler_q.w - 1.0) >= SAMPLER_NOTE:
        bias += (
            f"; float32 sampler: −E[β̂]·(E_s[r] − 1) with E_s[r] − 1 = "
            f"{f.sampler_q.w - 1.0:+.4g} (β̂ data-dependent)"
        )
        value = None
    gate = (
        "closed-form gate on"
        if f.cv_gate == "on"
        else "gate decided per half from the other half's ratios"
    )
    variance, slope = _ratio_variance(f, f"Var ({gate})")
    if slope is not None:
        variance += "; at most k1's asymptotically (optimal β)"
    return Theory(bias, value, None, variance, slope)


def _importance(f: CaseFacts, self_normalized: bool) -> Theory:
    if f.w2 is None:
        variance, slope = "no rule for E_g[w²] = ∫q²/g", None
    elif f.w2[0] == math.inf:
        variance, slope = "infinite: E_g[w²] = ∫q²/g diverges", None
    elif f.w2[0] == f.w2[1]:
        variance, slope = f"∝ 1/N: E_g[w²] = ∫q²/g = {_g(f.w2[0])} ({f.w2_source})", -1.0
    elif f.w2[1] < math.inf:
        variance = f"∝ 1/N: E_g[w²] = ∫q²/g ∈ [{_g(f.w2[0])}, {_g(f.w2[1])}] ({f.w2_source})"
        slope = -1.0
    else:
        variance, slope = "no rule for E_g[w²] = ∫q²/g", None
    if self_normalized:
        if slope is not None:
            variance = variance.replace("∝ 1/N", "∝ 1/N asymptotically (delta method)")
        if f.snis_centre is not None:
            return Theory(f"0 exactly at every N: {f.snis_reason}", 0.0, None, variance, slope)
        return Theory(
            f"O(1/N): ≈ −E_g[w²(f − KL)]/N ({f.snis_reason})", None, -1.0, variance, slope
        )
    shift = None if f.sampler_proposal is None else f.sampler_proposal.wf - f.kl
    bias, value = _with_sampler(
        "0: unbiased (q normalised, the proposal g covers q)", shift, "E_s[w·f] − KL"
    )
    return Theory(bias, value, None, variance, slope)


def _knn(f: CaseFacts) -> Theory:
    return Theory(
        f"→ 0 as N → ∞ (no closed form; the rate depends on d = {f.dim} and smoothness)",
        None,
        None,
        "∝ 1/N asymptotically (no closed form)",
        -1.0,
    )


def _pitfall(f: CaseFacts) -> Theory:
    if f.moments is None:
        return Theory(
            "constant: the average converges to ∫q²·log(q/p), not KL", None, 0.0, "∝ 1/N", -1.0
        )
    value = f.moments.pitfall - f.moments.mean
    return Theory(
        f"constant: the average converges to ∫q²·log(q/p) = {_g(f.moments.pitfall)}, not "
        f"KL (offset {value:+.4g}; {f.moments.method})",
        value,
        0.0,
        "∝ 1/N (its terms q·log(q/p) are bounded here)",
        -1.0,
    )


def case_theory(case: Case) -> dict[str, Theory]:
    """Theory for every estimator of the study on ``case``."""
    f = case_facts(case)
    return {
        "k1": _k1(f),
        "k2": _k2(f),
        "k3": _k3(f),
        "control_variate": _control_variate(f),
        "density_weighted": _pitfall(f),
        "importance": _importance(f, self_normalized=False),
        "importance_snis": _importance(f, self_normalized=True),
        "knn": _knn(f),
    }
