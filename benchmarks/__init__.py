"""Benchmarks of jaxkl: speed measured against this machine's own ceilings, in one process.

``benchmarks.throughput`` is the one benchmark (``python -m benchmarks.throughput``). It is
no part of the installed package: run it from the repository root, where ``benchmarks`` is
importable, as the tests import it.
"""
