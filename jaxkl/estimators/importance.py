"""PLACEHOLDER — being written; replace this whole file."""

__all__ = ["importance_kl"]


def importance_kl(*args, **kwargs):
    raise NotImplementedError
