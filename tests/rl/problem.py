"""The enumerable toy every jaxkl.rl test uses: V = 4 tokens, T ≤ 3, token 0 ends a sequence.

Logit scales keep every (prefix, token) pair reachable with probability ≥ 2e-4, so 20 000
sampled sequences visit each many times and the sample means are close to normal.
"""

import numpy as np

from jaxkl.rl.toy import SequenceToy

PROBLEM = SequenceToy(vocab_size=4, horizon=3)
REF = PROBLEM.random_logits(1, 0.5)
THETA = REF + PROBLEM.random_logits(0, 0.8)
# The behaviour policy of the off-policy tests: a perturbed earlier policy.
BEHAVIOUR = THETA + PROBLEM.random_logits(5, 0.7)


def flat(x):
    return np.asarray(x, np.float64).ravel()
