"""An exactly enumerable autoregressive policy: the oracle for every claim of ``jaxkl.rl``.

A policy over sequences of at most T tokens from a vocabulary of V, with an optional end
token that stops a sequence early (so lengths vary, as in language models). It is
*tabular*: every unfinished prefix (a "state") has its own logits, ``theta[state, :]``,
so every autoregressive distribution on these sequences is one θ, including the
KL-regularised optimum π* ∝ π_ref·exp(R/β). With V ≤ 8 and T ≤ 4 all sequences can be
listed, and every expectation below is an exact finite sum:

* :meth:`SequenceToy.kl_seq` — KL_seq(π_θ‖π_ref) and, by ``jax.grad``, its gradient;
* :meth:`SequenceToy.exact_gradients` — the named gradients and the primitives of
  :mod:`jaxkl.rl.configurations` (D(k), S(k), S₀(k), ∇R_tok, ∇F_tok), each from its
  definition;
* :meth:`SequenceToy.expected_surrogate_gradient` — the exact expected gradient of any
  :func:`jaxkl.rl.kl_surrogate` configuration (yours too: pass a function), summed over
  all sequences (or all pairs of them, for batch-coupled ones) drawn from any behaviour
  policy;
* :meth:`SequenceToy.sample` — an exact sampler, returning ``[B, T]`` arrays;
* :meth:`SequenceToy.optimum_logits` — π* in closed form (soft Bellman recursion).

Example:
  >>> import jax
  >>> from jaxkl.rl.toy import SequenceToy
  >>> problem = SequenceToy(vocab_size=3, horizon=2)  # token 0 ends a sequence
  >>> problem.num_sequences, problem.num_states  # "0", "1 *", "2 *"; states "", "1", "2"
  (7, 3)
  >>> theta, ref = problem.random_logits(0), problem.random_logits(1)
  >>> batch = problem.sample(2, theta, 5)
  >>> batch.mask.shape, batch.log_probs(theta).shape
  ((5, 2), (5, 2))
  >>> exact = problem.exact_gradients(theta, ref)
  >>> bool(abs(exact["S(k1)"] - exact["kl_seq"]).max() < 1e-5)  # policy-gradient theorem
  True
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxkl import _random
from jaxkl._keys import as_key
from jaxkl.analytic.discrete import categorical
from jaxkl.distributions.categorical import Categorical
from jaxkl.estimators.monte_carlo import per_sample_kl
from jaxkl.rl.configurations import KLConfig

__all__ = ["SequenceBatch", "SequenceToy"]

sg = jax.lax.stop_gradient
_MAX_ENUMERATED_BATCHES = 1 << 18


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SequenceBatch:
    """Sampled sequences as ``[B, T]`` arrays (a pytree: passes through jit and vmap).

    Attributes:
      index: ``[B]`` which enumerated sequence each row is.
      tokens: ``[B, T]`` int32 tokens (0 past the end).
      states: ``[B, T]`` int32 the prefix (state) each token was drawn at (0 past the end).
      mask: ``[B, T]`` bool, True on the tokens of the sequence (its end token included).
    """

    index: jax.Array
    tokens: jax.Array
    states: jax.Array
    mask: jax.Array

    def log_probs(self, theta) -> jax.Array:
        """``[B, T]`` log π_θ(y_t | y_<t) of the tokens (finite, meaningless past the end)."""
        log_pi = jax.nn.log_softmax(theta, axis=-1)
        return log_pi[self.states, self.tokens]


@dataclasses.dataclass(frozen=True, eq=False)
class SequenceToy:
    """All sequences of at most ``horizon`` tokens over ``vocab_size``, listed exactly.

    Args:
      vocab_size: V ≥ 2 (≤ 8 keeps the enumeration small).
      horizon: T ≥ 1, the longest length.
      end_token: the token that ends a sequence (default 0), or ``None`` for fixed length
        T. The end token is part of the sequence (it is sampled, and masked in).

    Attributes:
      num_sequences: S, the number of sequences.
      num_states: the number of unfinished prefixes; ``theta`` has shape
        ``[num_states, vocab_size]``.
      sequences: a :class:`SequenceBatch` of all S sequences (``index`` = 0 … S − 1).
    """

    vocab_size: int = 4
    horizon: int = 3
    end_token: int | None = 0

    def __post_init__(self):
        v, t, end = self.vocab_size, self.horizon, self.end_token
        if not (isinstance(v, int) and v >= 2 and isinstance(t, int) and t >= 1):
            raise ValueError(f"SequenceToy: need vocab_size >= 2 and horizon >= 1; got {v}, {t}")
        if end is not None and not 0 <= end < v:
            raise ValueError(f"SequenceToy: end_token must be in [0, {v}) or None; got {end}")
        states: dict[tuple, int] = {}
        rows: list[tuple] = []

        def expand(prefix: tuple) -> None:
            states.setdefault(prefix, len(states))
            for token in range(v):
                y = (*prefix, token)
                if token == end or len(y) == t:
                    rows.append(y)
                else:
                    expand(y)

        expand(())
        s = len(rows)
        if s > 100_000:
            raise ValueError(f"SequenceToy: {s} sequences is too many to enumerate")
        tokens = np.zeros((s, t), np.int32)
        state_ids = np.zeros((s, t), np.int32)
        mask = np.zeros((s, t), bool)
        for i, y in enumerate(rows):
            tokens[i, : len(y)] = y
            state_ids[i, : len(y)] = [states[y[:j]] for j in range(len(y))]
            mask[i, : len(y)] = True
        object.__setattr__(self, "num_sequences", s)
        object.__setattr__(self, "num_states", len(states))
        object.__setattr__(
            self,
            "sequences",
            SequenceBatch(
                jnp.arange(s, dtype=jnp.int32),
                jnp.asarray(tokens),
                jnp.asarray(state_ids),
                jnp.asarray(mask),
            ),
        )
        # visits[s, k] = 1 if sequence s passes through state k (each at most once).
        visits = np.zeros((s, len(states)), np.float32)
        for i in range(s):
            visits[i, state_ids[i, mask[i]]] = 1.0
        object.__setattr__(self, "_visits", visits)

    # ------------------------------------------------------------------ parameters
    def random_logits(self, key, scale: float = 1.0, dtype=jnp.float32) -> jax.Array:
        """``[num_states, V]`` i.i.d. N(0, scale²) logits."""
        shape = (self.num_states, self.vocab_size)
        return scale * _random.normal(as_key(key), shape, dtype)

    def random_reward(self, key, scale: float = 1.0, dtype=jnp.float32) -> jax.Array:
        """``[S]`` i.i.d. N(0, scale²) rewards, one per sequence."""
        return scale * _random.normal(as_key(key), (self.num_sequences,), dtype)

    # ------------------------------------------------------------------ exact laws
    def sequence_log_probs(self, theta) -> jax.Array:
        """``[S]`` log π_θ(y) of every sequence (Σ over its tokens)."""
        seqs = self.sequences
        return jnp.sum(jnp.where(seqs.mask, seqs.log_probs(theta), 0.0), axis=-1)

    def state_probs(self, theta) -> jax.Array:
        """``[num_states]`` the probability that π_θ reaches each unfinished prefix."""
        probs = jnp.exp(self.sequence_log_probs(theta))
        return probs @ jnp.asarray(self._visits, probs.dtype)

    def kl_seq(self, theta, ref) -> jax.Array:
        """KL_seq(π_θ‖π_ref) = Σ_y π_θ(y)(log π_θ(y) − log π_ref(y)), exact."""
        lp, lq = self.sequence_log_probs(theta), self.sequence_log_probs(ref)
        return jnp.sum(jnp.exp(lp) * (lp - lq))

    def token_kl_sum(self, theta, ref, *, forward: bool = False) -> jax.Array:
        """Σ_states d(state)·KL(π_θ(·|state)‖π_ref(·|state)) with d = P_θ(reach) held fixed.

        Its gradient is ∇R_tok (``forward=True``: KL(π_ref‖π_θ), ∇F_tok): the per-token
        KLs differentiated with the law of the prefixes held, computed with jaxkl's
        categorical kernel. Its value equals KL_seq (reverse) by the chain rule of KL.
        """
        d = sg(self.state_probs(theta))
        kl = categorical(ref, theta) if forward else categorical(theta, ref)
        return jnp.sum(d * kl)

    def exact_gradients(self, theta, ref) -> dict[str, jax.Array]:
        """Every named gradient and primitive of :mod:`jaxkl.rl.configurations`, exactly.

        Each from its own definition, as an expectation over all sequences with the
        weights π_θ(y) held (the tokens are data):

        * ``kl_seq`` = ∇KL_seq(π_θ‖π_ref) (autodiff of :meth:`kl_seq`);
        * ``token_reverse``, ``token_forward`` = ∇R_tok, ∇F_tok (:meth:`token_kl_sum`);
        * ``D(k)`` = ∇ Σ_y π(y) Σ_t k_t, the estimator differentiated;
        * ``S(k)`` = ∇ Σ_y π(y) Σ_t log π_t · G_t (G_t = Σ_{s≥t} k_s held);
        * ``S0(k)`` = ∇ Σ_y π(y) Σ_t log π_t · k_t (k_t held), for k in k1, k2, k3.

        Returns:
          dict name → ``[num_states, V]`` gradient with respect to ``theta``.
        """
        seqs = self.sequences
        weight = sg(jnp.exp(self.sequence_log_probs(theta)))

        def expect(per_token):  # Σ_y π(y) Σ_t x_t(y) over the tokens of each sequence
            return lambda th: jnp.sum(
                weight * jnp.sum(jnp.where(seqs.mask, per_token(th), 0.0), axis=-1)
            )

        lq = seqs.log_probs(ref)
        out = {
            "kl_seq": jax.grad(self.kl_seq)(theta, ref),
            "token_reverse": jax.grad(self.token_kl_sum)(theta, ref),
            "token_forward": jax.grad(lambda th: self.token_kl_sum(th, ref, forward=True))(theta),
        }
        for k in ("k1", "k2", "k3"):
            terms = sg(jnp.where(seqs.mask, per_sample_kl(seqs.log_probs(theta), lq, k), 0.0))
            to_go = jnp.flip(jnp.cumsum(jnp.flip(terms, -1), axis=-1), -1)
            out[f"D({k})"] = jax.grad(
                expect(lambda th, k=k: per_sample_kl(seqs.log_probs(th), lq, k))
            )(theta)
            out[f"S({k})"] = jax.grad(expect(lambda th, g=to_go: seqs.log_probs(th) * g))(theta)
            out[f"S0({k})"] = jax.grad(expect(lambda th, g=terms: seqs.log_probs(th) * g))(theta)
        return out

    def stated_gradient(self, exact: dict[str, jax.Array], terms: dict[str, int]) -> jax.Array:
        """Σ coef·exact[name] over ``terms`` (a combination from the configuration table)."""
        total = jnp.zeros_like(exact["kl_seq"])
        for name, coef in terms.items():
            total = total + coef * exact[name]
        return total

    # ------------------------------------------------------------------ surrogates
    def expected_surrogate_gradient(
        self,
        theta,
        ref,
        config: KLConfig | Callable,
        *,
        behaviour=None,
        batch_size: int = 1,
        **kwargs,
    ) -> jax.Array:
        """The exact E[∇θ surrogate] over batches of ``batch_size`` sequences from b.

        All S^B batches are listed with their probability Π_i b(y_i) (b = π_θ, held fixed,
        when ``behaviour`` is None), so batch-coupled configurations (a leave-one-out
        baseline, ``"token-mean"``) are exact at that batch size. Off-policy (a
        ``behaviour``), ``old_logp`` is b's log-probabilities of the tokens.

        Args:
          theta, ref: ``[num_states, V]`` logits of π_θ and π_ref.
          config: a :class:`~jaxkl.rl.configurations.KLConfig`, or your own function
            ``f(logp, ref_logp, mask, old_logp) -> scalar`` (``old_logp`` None
            on-policy).
          behaviour: ``[num_states, V]`` logits of the sampling policy b, or None.
          batch_size: B; S^B must be at most 2¹⁸.
          **kwargs: more keyword arguments of ``kl_surrogate`` (e.g. ``clip_log_ratio``).

        Returns:
          ``[num_states, V]``.
        """
        from jaxkl.rl.surrogate import kl_surrogate

        s = self.num_sequences
        if s**batch_size > _MAX_ENUMERATED_BATCHES:
            raise ValueError(
                f"expected_surrogate_gradient: {s}^{batch_size} batches is too many to list"
            )
        if isinstance(config, KLConfig):
            cfg = config.kwargs()

            def surrogate(logp, ref_logp, mask, old_logp):
                return kl_surrogate(logp, ref_logp, mask, old_logp=old_logp, **cfg, **kwargs)
        else:
            surrogate = config
        law = theta if behaviour is None else behaviour
        log_b = sg(self.sequence_log_probs(law))
        idx = jnp.asarray(list(itertools.product(range(s), repeat=batch_size)), jnp.int32)
        weights = jnp.exp(jnp.sum(log_b[idx], axis=-1))  # [S^B]
        seqs = self.sequences

        def one(rows):
            batch = jax.tree_util.tree_map(lambda a: a[rows], seqs)
            old = None if behaviour is None else batch.log_probs(behaviour)
            return jax.grad(
                lambda th: surrogate(batch.log_probs(th), batch.log_probs(ref), batch.mask, old)
            )(theta)

        grads = jax.lax.map(one, idx, batch_size=4096)
        return jnp.tensordot(weights, grads, axes=1)

    # ------------------------------------------------------------------ sampling
    def sample(self, key, theta, num: int) -> SequenceBatch:
        """``num`` i.i.d. sequences from π_θ, exactly (a categorical over all S of them)."""
        index = Categorical(sg(self.sequence_log_probs(theta))).sample(as_key(key), (num,))
        return jax.tree_util.tree_map(lambda a: a[index], self.sequences)

    # ------------------------------------------------------------------ regularised optimum
    def optimum_log_probs(self, ref, reward, beta: float) -> jax.Array:
        """``[S]`` log π*(y), π* ∝ π_ref(y)·exp(R(y)/β): the maximiser of E_π[R] − β KL_seq."""
        return jax.nn.log_softmax(self.sequence_log_probs(ref) + reward / beta)

    def optimum_logits(self, ref, reward, beta: float) -> jax.Array:
        """``[num_states, V]`` logits of π*, by the soft Bellman recursion from the leaves.

        π*(v | s) ∝ π_ref(v | s)·exp(Q(s, v)) with Q = R(y)/β where (s, v) ends sequence y
        and Q = log Σ_v' π_ref(v'|s')exp(Q(s', v')) at the state s' it leads to otherwise.
        """
        seqs = self.sequences
        log_ref = jax.nn.log_softmax(ref, axis=-1)
        q = jnp.zeros_like(ref)
        tokens, states, mask = (np.asarray(a) for a in (seqs.tokens, seqs.states, seqs.mask))
        lengths = mask.sum(-1)
        # Sequences ending at step t fix Q(s, v) at their last token; a state's value is
        # known once all deeper entries are, so fill from the longest prefixes up.
        for depth in range(self.horizon - 1, -1, -1):
            ends = lengths == depth + 1
            q = q.at[states[ends, depth], tokens[ends, depth]].set(reward[ends] / beta)
            if depth + 1 == self.horizon:
                continue
            cont = lengths > depth + 1
            nxt = states[cont, depth + 1]
            value = jax.nn.logsumexp(log_ref[nxt] + q[nxt], axis=-1)
            q = q.at[states[cont, depth], tokens[cont, depth]].set(value)
        return log_ref + q
