"""PLACEHOLDER — being written; replace this whole file."""

__all__ = ["pareto_khat"]


def pareto_khat(*args, **kwargs):
    raise NotImplementedError
