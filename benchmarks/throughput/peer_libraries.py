"""Other libraries' KL, and the textbook formulas a user would write by hand.

Each builder returns callables for the peers that import on this machine; a peer that is
not installed or fails to import is left out, and ``peer_status`` says why, for the
report. Nothing here installs a peer.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.throughput.harness import compile_bound

PEER_PACKAGES = ("torch", "distrax", "numpyro", "optax", "tfp")
# Where each peer is imported from (TFP on JAX lives in a substrate module).
PEER_MODULES = {"tfp": "tensorflow_probability.substrates.jax"}


def peer_status() -> dict[str, str]:
    """``{package: version or "not installed" / "import failed: ..."}``."""
    out = {}
    for name in PEER_PACKAGES:
        module = PEER_MODULES.get(name, name)
        if importlib.util.find_spec(module.split(".")[0]) is None:
            out[name] = "not installed"
            continue
        try:
            importlib.import_module(module)
        except Exception as err:  # a broken peer must not stop the benchmark
            out[name] = f"import failed: {type(err).__name__}: {err}"
        else:
            top = importlib.import_module(module.split(".")[0])
            out[name] = str(getattr(top, "__version__", "installed"))
    return out


def installed(status: dict[str, str], name: str) -> bool:
    """Whether ``peer_status`` found ``name`` importable."""
    return status[name] != "not installed" and not status[name].startswith("import failed")


def lenient(fn: Callable) -> Callable:
    """``fn`` traced under JAX's default rank and dtype promotion.

    Peer libraries broadcast arrays of different ranks and mix dtypes implicitly (TFP's
    Categorical KL compares int32 with float32); jaxkl's test suite forbids both for
    jaxkl's own code (``jax_numpy_rank_promotion="raise"``,
    ``jax_numpy_dtype_promotion="strict"``), which must not stop a peer from being measured.
    """

    @functools.wraps(fn)
    def wrapped(*args):
        with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
            return fn(*args)

    return wrapped


# --------------------------------------------------------------------------- textbook formulas


def textbook_mvn_diag(loc_a, scale_a, loc_b, scale_b):
    """The textbook formula, as written by hand: cancels badly when scale_a ≈ scale_b."""
    var_ratio = jnp.square(scale_a / scale_b)
    diff = jnp.square((loc_a - loc_b) / scale_b)
    return 0.5 * jnp.sum(var_ratio + diff - 1.0 - jnp.log(var_ratio), -1)


def numpy_mvn_diag(loc_a, scale_a, loc_b, scale_b):
    """The textbook diagonal-Gaussian KL in NumPy, on the host."""
    var_ratio = np.square(scale_a / scale_b)
    diff = np.square((loc_a - loc_b) / scale_b)
    return 0.5 * np.sum(var_ratio + diff - 1.0 - np.log(var_ratio), -1)


def textbook_mc_k1(n: int) -> Callable:
    """Hand-written reparameterised k1 for diagonal Gaussians (what a user writes by hand)."""

    def f(key, loc_q, scale_q, loc_p, scale_p):
        eps = jax.random.normal(key, (n, *loc_q.shape), loc_q.dtype)
        eps, lq, sq, lp, sp = jnp.broadcast_arrays(eps, loc_q, scale_q, loc_p, scale_p)
        x = lq + sq * eps
        zp = (x - lp) / sp
        terms = 0.5 * jnp.sum(zp * zp - eps * eps, -1) + jnp.sum(jnp.log(sp / sq), -1)
        return jnp.mean(terms, 0)

    return f


def _textbook_categorical(a, b):
    """KL from log_softmax, as written by hand: [B, K] intermediates, cancels as b → a."""
    log_p, log_q = jax.nn.log_softmax(a), jax.nn.log_softmax(b)
    return jnp.sum(jnp.exp(log_p) * (log_p - log_q), -1)


# --------------------------------------------------------------------------- peers by workload


def peer_analytic_calls(status: dict[str, str], arrays) -> dict[str, Callable]:
    """Callables computing the diagonal-Gaussian KL [B, D] → [B] with each installed peer."""
    calls: dict[str, Callable] = {}
    host = [np.asarray(x) for x in arrays]
    if installed(status, "torch"):
        import torch

        t = [torch.from_numpy(x.copy()) for x in host]  # torch wants writable arrays

        def torch_call():
            with torch.no_grad():
                qa = torch.distributions.Normal(t[0], t[1])
                qb = torch.distributions.Normal(t[2], t[3])
                return torch.distributions.kl_divergence(qa, qb).sum(-1).numpy()

        calls["torch.distributions"] = torch_call
    if installed(status, "distrax"):
        import distrax

        for label, build in (
            ("distrax Normal", lambda l, s: distrax.Normal(l, s)),
            ("distrax MultivariateNormalDiag", lambda l, s: distrax.MultivariateNormalDiag(l, s)),
        ):

            def fn(la, sa, lb, sb, build=build, label=label):
                kl = build(la, sa).kl_divergence(build(lb, sb))
                return kl.sum(-1) if label == "distrax Normal" else kl

            calls[label] = compile_bound(lenient(fn), *arrays).call
    if installed(status, "numpyro"):
        import numpyro.distributions as nd

        def npy(la, sa, lb, sb):
            return nd.kl_divergence(nd.Normal(la, sa).to_event(1), nd.Normal(lb, sb).to_event(1))

        calls["numpyro"] = compile_bound(lenient(npy), *arrays).call
    return calls


def peer_mc_calls(status: dict[str, str], key, params, n: int) -> dict[str, Callable]:
    """Reparameterised k1 for diagonal Gaussians with each installed peer."""
    calls: dict[str, Callable] = {}
    if installed(status, "torch"):
        import torch

        t = [torch.from_numpy(np.array(x)) for x in params]  # a writable copy

        def torch_call():
            with torch.no_grad():
                q = torch.distributions.Independent(torch.distributions.Normal(t[0], t[1]), 1)
                p = torch.distributions.Independent(torch.distributions.Normal(t[2], t[3]), 1)
                x = q.rsample((n,))
                return (q.log_prob(x) - p.log_prob(x)).mean(0).numpy()

        calls["torch.distributions"] = torch_call
    if installed(status, "distrax"):
        import distrax

        def dx(k, lq, sq, lp, sp):
            q = distrax.MultivariateNormalDiag(lq, sq)
            p = distrax.MultivariateNormalDiag(lp, sp)
            x, log_q = q.sample_and_log_prob(seed=k, sample_shape=n)
            return jnp.mean(log_q - p.log_prob(x), 0)

        calls["distrax"] = compile_bound(lenient(dx), key, *params).call
    if installed(status, "numpyro"):
        import numpyro.distributions as nd

        def npy(k, lq, sq, lp, sp):
            q = nd.Normal(lq, sq).to_event(1)
            p = nd.Normal(lp, sp).to_event(1)
            x = q.rsample(k, (n,))
            return jnp.mean(q.log_prob(x) - p.log_prob(x), 0)

        calls["numpyro"] = compile_bound(lenient(npy), key, *params).call
    return calls


def categorical_peers(status: dict[str, str]) -> dict[str, Callable]:
    """Categorical KL [B, K] × 2 → [B] with each installed peer (jit-compiled by the caller)."""
    fns: dict[str, Callable] = {"textbook jit": _textbook_categorical}
    if installed(status, "optax"):
        import optax

        def optax_kl(a, b):
            # (log_predictions, log_targets) → KL(targets ‖ predictions).
            return optax.losses.kl_divergence_with_log_targets(
                jax.nn.log_softmax(b), jax.nn.log_softmax(a)
            )

        fns["optax kl_divergence_with_log_targets"] = lenient(optax_kl)
    if installed(status, "tfp"):
        tfd = importlib.import_module(PEER_MODULES["tfp"]).distributions

        def tfp_kl(a, b):
            return tfd.kl_divergence(tfd.Categorical(logits=a), tfd.Categorical(logits=b))

        fns["tfp Categorical"] = lenient(tfp_kl)
    return fns


def mvn_diag_peers(status: dict[str, str]) -> dict[str, Callable]:
    """Diagonal-Gaussian KL [B, D] × 4 → [B] with each installed JAX peer."""
    fns: dict[str, Callable] = {"textbook jit": textbook_mvn_diag}
    if installed(status, "numpyro"):
        import numpyro.distributions as nd

        def numpyro_kl(la, sa, lb, sb):
            return nd.kl_divergence(nd.Normal(la, sa).to_event(1), nd.Normal(lb, sb).to_event(1))

        fns["numpyro Normal.to_event(1)"] = lenient(numpyro_kl)
    if installed(status, "distrax"):
        import distrax

        def distrax_normal(la, sa, lb, sb):
            return distrax.Normal(la, sa).kl_divergence(distrax.Normal(lb, sb)).sum(-1)

        def distrax_mvn(la, sa, lb, sb):
            q = distrax.MultivariateNormalDiag(la, sa)
            return q.kl_divergence(distrax.MultivariateNormalDiag(lb, sb))

        fns["distrax Normal"] = lenient(distrax_normal)
        fns["distrax MultivariateNormalDiag"] = lenient(distrax_mvn)
    if installed(status, "tfp"):
        fns["tfp MultivariateNormalDiag"] = _tfp_pair_kl("MultivariateNormalDiag")
    return fns


def _tfp_pair_kl(family: str) -> Callable:
    """(loc_a, scale_a, loc_b, scale_b) → TFP's own KL between two ``family`` laws."""
    tfd = importlib.import_module(PEER_MODULES["tfp"]).distributions
    cls = getattr(tfd, family)

    def tfp_kl(la, sa, lb, sb):
        return tfd.kl_divergence(cls(la, sa), cls(lb, sb))

    return lenient(tfp_kl)


def mvn_tril_peers(status: dict[str, str]) -> dict[str, Callable]:
    """MVNTriL KL (loc, L) × 2 → [B] with each installed JAX peer and a textbook solve."""

    def textbook(la, ta, lb, tb):
        # ½[tr(Σb⁻¹Σa) + Δᵀ Σb⁻¹ Δ − d] + log det Lb − log det La, with triangular solves.
        m = jax.scipy.linalg.solve_triangular(tb, ta, lower=True)
        y = jax.scipy.linalg.solve_triangular(tb, (lb - la)[..., None], lower=True)[..., 0]
        logdet = jnp.sum(
            jnp.log(jnp.diagonal(tb, axis1=-2, axis2=-1) / jnp.diagonal(ta, axis1=-2, axis2=-1)),
            -1,
        )
        sq = jnp.sum(jnp.square(m), (-2, -1)) + jnp.sum(jnp.square(y), -1)
        return 0.5 * (sq - la.shape[-1]) + logdet

    fns: dict[str, Callable] = {"textbook jit": textbook}
    if installed(status, "distrax"):
        import distrax

        def distrax_kl(la, ta, lb, tb):
            return distrax.MultivariateNormalTri(la, ta).kl_divergence(
                distrax.MultivariateNormalTri(lb, tb)
            )

        fns["distrax MultivariateNormalTri"] = lenient(distrax_kl)
    if installed(status, "tfp"):
        fns["tfp MultivariateNormalTriL"] = _tfp_pair_kl("MultivariateNormalTriL")
    return fns
