"""PLACEHOLDER — being written; replace this whole file."""

__all__ = ["knn_kl"]


def knn_kl(*args, **kwargs):
    raise NotImplementedError
