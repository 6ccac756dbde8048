"""KL regularisation of sequence policies (RLHF, GRPO, PPO) on ``[B, T]`` arrays.

Pure functions on the log-probabilities of sampled tokens under the current policy
(``logp``, differentiable), the reference (``ref_logp``), optionally the behaviour
policy (``old_logp``), and a ``mask`` of real tokens:

* :func:`token_kl` — per-token k1/k2/k3/k3+, exactly 0 (value and gradient) when masked;
* :func:`aggregate` — the four aggregation conventions, as an ``Estimate`` across sequences;
* :func:`sequence_kl` — the sequence-level KL(π‖π_ref) with its standard error;
* :func:`full_vocab_token_kl` — the exact per-token KL from logits ``[B, T, V]``;
* :func:`kl_surrogate` — a scalar whose gradient is exactly that of a named configuration
  (placement × estimator × importance correction × aggregation), with the table of which
  ones follow ∇KL_seq;
* :mod:`jaxkl.rl.toy` — an exactly enumerable policy: the oracle behind every claim;
* :mod:`jaxkl.rl.gradient_study`, :mod:`jaxkl.rl.training` — bias/variance of every
  configuration's gradient against N, and training to the regularised optimum;
* :mod:`jaxkl.rl.categorical_penalty` — k1/k2/k3 penalties on sampled tokens of a
  one-step categorical policy: their gradients' bias, training with them, and the
  regularised optima.
"""

from jaxkl.rl import toy
from jaxkl.rl.aggregate import AGGREGATIONS, aggregate, aggregate_value
from jaxkl.rl.configurations import KLConfig, all_configs, expected_gradient
from jaxkl.rl.full_vocab import full_vocab_token_kl
from jaxkl.rl.importance import CORRECTIONS, log_importance_weights
from jaxkl.rl.sequence_kl import sequence_kl
from jaxkl.rl.surrogate import kl_surrogate
from jaxkl.rl.token_kl import TOKEN_ESTIMATORS, token_kl

__all__ = [
    "AGGREGATIONS",
    "CORRECTIONS",
    "TOKEN_ESTIMATORS",
    "KLConfig",
    "aggregate",
    "aggregate_value",
    "all_configs",
    "expected_gradient",
    "full_vocab_token_kl",
    "kl_surrogate",
    "log_importance_weights",
    "sequence_kl",
    "token_kl",
    "toy",
]
