"""The KL-regularisation configurations of RL code and what their gradients follow.

A configuration is (placement, estimator, correction, aggregate, baseline); see
:func:`jaxkl.rl.kl_surrogate`. This module holds the derivation of its expected gradient
as data, so that the table in ``kl_surrogate``'s docstring, the exact oracle
(:mod:`jaxkl.rl.toy`) and the tests read the same statements.
"""

from __future__ import annotations

import dataclasses
import itertools

from jaxkl.rl.aggregate import AGGREGATIONS
from jaxkl.rl.importance import CORRECTIONS
from jaxkl.rl.token_kl import TOKEN_ESTIMATORS

__all__ = [
    "BASELINES",
    "LEMMAS",
    "PLACEMENTS",
    "KLConfig",
    "all_configs",
    "expected_gradient",
    "format_gradient",
    "render_table",
]

PLACEMENTS = ("reward", "loss")
BASELINES = ("none", "loo")

# The exact identities behind the table (tests/rl/test_configurations.py proves each by
# enumeration on the toy). Primitives, for y ~ π_θ and ∇ = ∇_θ with the tokens held:
#   D(k)  = E[Σ_t ∇k_t]                      the estimator differentiated
#   S(k)  = E[Σ_t ∇log π_t · Σ_{s≥t} k_s]    score function, reward-to-go
#   S0(k) = E[Σ_t ∇log π_t · k_t]            score function, this token only
# Named gradients:
#   kl_seq        = ∇KL_seq(π_θ‖π_ref)
#   token_reverse = Σ_t E_{y<t}[∇KL(π_θ(·|y<t) ‖ π_ref(·|y<t))]  (prefix law held)
#   token_forward = Σ_t E_{y<t}[∇KL(π_ref(·|y<t) ‖ π_θ(·|y<t))]  (prefix law held)
LEMMAS: dict[str, dict[str, int]] = {
    "D(k1)": {},  # ∂k1/∂log π = 1 and E[∇log π_t | y<t] = 0
    "D(k2)": {"token_reverse": 1},  # ∂k2/∂log π = k1
    "D(k3)": {"token_forward": 1},  # ∂k3/∂log π = 1 − r; Σ_y π(1 − r)∇log π = −Σ_y π_ref ∇log π
    "S(k1)": {"kl_seq": 1},  # the policy-gradient theorem with reward −log r
    "S0(k1)": {"token_reverse": 1},
    # k3 = k1 + (r − 1): E[r_s − 1 | y<s] = 0 kills every term s > t, the term s = t is
    # E[∇log π_t (r_t − 1)] = Σ_y π_ref ∇log π = −∇KL(π_ref‖π_θ) at that prefix.
    "S(k3)": {"kl_seq": 1, "token_forward": -1},
    "S0(k3)": {"token_reverse": 1, "token_forward": -1},
}
NAMED = ("kl_seq", "token_reverse", "token_forward")
_AGG_NAMES = {"token-mean": "tokmean", "seq-mean-token-mean": "seqmeantokmean", "seq-sum": "seqsum"}
SYMBOLS = {
    "kl_seq": "∇KL_seq",
    "token_reverse": "∇R_tok",
    "token_forward": "∇F_tok",
    "S(k2)": "S(k2)",
    "S0(k2)": "S₀(k2)",
}


@dataclasses.dataclass(frozen=True)
class KLConfig:
    """One way of putting a sampled KL into an RL objective (see ``kl_surrogate``)."""

    placement: str
    estimator: str
    correction: str | None = None
    aggregate: str = "seq-mean-token-sum"
    baseline: str = "none"

    def __post_init__(self):
        for name, value, allowed in (
            ("placement", self.placement, PLACEMENTS),
            ("estimator", self.estimator, TOKEN_ESTIMATORS),
            ("correction", self.correction, CORRECTIONS),
            ("aggregate", self.aggregate, AGGREGATIONS),
            ("baseline", self.baseline, BASELINES),
        ):
            if value not in allowed:
                raise ValueError(
                    f"KLConfig: {name} must be one of {', '.join(map(repr, allowed))}; "
                    f"got {value!r}"
                )
        if self.placement == "reward" and self.estimator == "k3+":
            raise ValueError(
                "KLConfig: 'k3+' differs from 'k3' only in its gradient, which "
                "placement='reward' does not use (the reward is held fixed); use 'k3'"
            )
        if self.placement == "loss" and self.baseline != "none":
            raise ValueError(
                "KLConfig: a baseline applies to placement='reward' (the score function)"
            )

    @property
    def name(self) -> str:
        """A short, file-safe name, e.g. ``loss-k3-prefix`` or ``reward-k1-none-tokmean``."""
        parts = [self.placement, self.estimator.replace("+", "plus"), self.correction or "none"]
        if self.aggregate != "seq-mean-token-sum":
            parts.append(_AGG_NAMES[self.aggregate])
        if self.baseline != "none":
            parts.append(self.baseline)
        return "-".join(parts)

    @classmethod
    def from_name(cls, name: str) -> KLConfig:
        """The configuration of a :attr:`name` (``loss-k3plus-token-tokmean-…``)."""
        parts = name.split("-")
        if len(parts) < 3:
            raise ValueError(
                f"KLConfig.from_name: expected placement-estimator-correction…; got {name!r}"
            )
        fields = {
            "placement": parts[0],
            "estimator": parts[1].replace("plus", "+"),
            "correction": None if parts[2] == "none" else parts[2],
        }
        aggregates = {v: k for k, v in _AGG_NAMES.items()}
        for extra in parts[3:]:
            if extra in aggregates:
                fields["aggregate"] = aggregates[extra]
            elif extra in BASELINES:
                fields["baseline"] = extra
            else:
                raise ValueError(f"KLConfig.from_name: unknown part {extra!r} in {name!r}")
        config = cls(**fields)
        if config.name != name:
            raise ValueError(f"KLConfig.from_name: {name!r} is not canonical; use {config.name!r}")
        return config

    def kwargs(self) -> dict:
        """Keyword arguments of ``kl_surrogate`` for this configuration."""
        return dataclasses.asdict(self)


def all_configs(**fixed) -> list[KLConfig]:
    """Every valid (placement, estimator, correction) with the other fields ``fixed``."""
    out = []
    for placement, estimator, correction in itertools.product(
        PLACEMENTS, TOKEN_ESTIMATORS, CORRECTIONS
    ):
        if placement == "reward" and estimator == "k3+":
            continue
        out.append(KLConfig(placement, estimator, correction, **fixed))
    return out


def expected_gradient(config: KLConfig) -> dict[str, int]:
    """The on-policy expected gradient per sequence, in primitives (``D(k2)``, ``S(k3)``…).

    The estimator k supplies the value; its gradient is k's own, except for ``"k3+"``
    (value k3, gradient k2). With the tokens drawn from π_θ:

    * reward (any correction, any baseline): S(k);
    * loss, no correction: D(k_grad); token ratio: D(k_grad) + S0(k);
      prefix ratio: D(k_grad) + S(k).

    This is per sequence, i.e. for ``aggregate="seq-mean-token-sum"``; see
    ``kl_surrogate`` for the other aggregations.
    """
    value = "k3" if config.estimator == "k3+" else config.estimator
    grad = "k2" if config.estimator == "k3+" else config.estimator
    if config.placement == "reward":
        return {f"S({value})": 1}
    out = {f"D({grad})": 1}
    if config.correction == "token":
        out[f"S0({value})"] = 1
    elif config.correction == "prefix":
        out[f"S({value})"] = 1
    return out


def named_gradient(terms: dict[str, int]) -> dict[str, int]:
    """``terms`` with every primitive that a lemma names replaced by named gradients."""
    out: dict[str, int] = dict.fromkeys(NAMED, 0)
    for prim, coef in terms.items():
        for name, c in LEMMAS.get(prim, {prim: 1}).items():
            out[name] = out.get(name, 0) + coef * c
    return {k: v for k, v in out.items() if v}


def is_unbiased(config: KLConfig, *, off_policy: bool = False) -> bool:
    """Whether the expected gradient is ∇KL_seq (per sequence), on- or off-policy.

    Off-policy (tokens from π_old ≠ π_θ) only the prefix ratio keeps the expectation of
    the on-policy case: E_old[w_t f(y≤t)] = E_θ[f(y≤t)] needs the ratio of the whole
    prefix. The per-token ratio and no ratio leave the prefixes distributed as π_old's.
    """
    unbiased = named_gradient(expected_gradient(config)) == {"kl_seq": 1}
    return unbiased and (not off_policy or config.correction == "prefix")


def is_exact_regulariser(config: KLConfig, *, off_policy: bool = False) -> bool:
    """Whether β·(the surrogate) has expected gradient β·∇KL_seq at every batch size.

    That is what training towards π* ∝ π_ref·exp(R/β) needs: :func:`is_unbiased` with
    the per-sequence mean (``"seq-mean-token-sum"``). The other aggregations change the
    regulariser even when their direction is right: ``"seq-sum"`` multiplies it by the
    batch size, ``"token-mean"`` divides it by the batch's token count (β·E[L] in the
    limit, a ratio biased at finite N), ``"seq-mean-token-mean"`` weights each sequence
    by 1/L.

    Example:
      >>> is_exact_regulariser(KLConfig("loss", "k3", "prefix"))
      True
      >>> is_exact_regulariser(KLConfig("reward", "k1", aggregate="token-mean"))
      False
    """
    return config.aggregate == "seq-mean-token-sum" and is_unbiased(config, off_policy=off_policy)


def format_gradient(terms: dict[str, int], symbols: dict | None = None) -> str:
    """``{"kl_seq": 1, "token_forward": -1}`` → ``"∇KL_seq − ∇F_tok"`` (``symbols``: names)."""
    if not terms:
        return "0"
    out = ""
    for key, coef in terms.items():
        sym = (symbols or {}).get(key, key)
        mag = "" if abs(coef) == 1 else f"{abs(coef)}·"
        sign = "−" if coef < 0 else "+"
        out += (f"{sign} " if out else ("−" if coef < 0 else "")) + f"{mag}{sym} "
    return out.strip().replace("S0(", "S₀(")


def render_table() -> str:
    """The configuration table of ``kl_surrogate``'s docstring (a markdown pipe table)."""
    lines = [
        "| placement | k | correction | E[∇] | equals | = ∇KL_seq? | b ≠ π_θ |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in all_configs():
        terms = expected_gradient(c)
        on, off = is_unbiased(c), is_unbiased(c, off_policy=True)
        lines.append(
            f"| {c.placement} | {c.estimator} | {c.correction or 'none'} | "
            f"{format_gradient(terms)} | "
            f"{format_gradient(named_gradient(terms), SYMBOLS)} | {'**yes**' if on else 'no'} | "
            f"{'**yes**' if off else 'no'} |"
        )
    return "\n".join(lines)
