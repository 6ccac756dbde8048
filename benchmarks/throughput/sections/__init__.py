"""The benchmark's sections, one module each; ``RUNNERS`` in the order they run.

Each ``run_<section>(cfg)`` returns that section's record, ``{"rows": [...], ...}``
(``benchmarks.throughput.records``), and does nothing else: no file is written here.
"""

from benchmarks.throughput.sections.analytic import run_analytic
from benchmarks.throughput.sections.anatomy import run_anatomy
from benchmarks.throughput.sections.knn import run_knn
from benchmarks.throughput.sections.knn_tree import run_knn_tree
from benchmarks.throughput.sections.monte_carlo import run_monte_carlo
from benchmarks.throughput.sections.peers import run_peers
from benchmarks.throughput.sections.retrace import run_retrace
from benchmarks.throughput.sections.variance import run_variance
from benchmarks.throughput.sections.versus import run_versus

# kNN first: it reports the growth of the process's resident high-water mark, which the
# larger arrays of later sections would already have raised.
RUNNERS = {
    "knn": run_knn,
    "knn_tree": run_knn_tree,
    "analytic": run_analytic,
    "versus": run_versus,
    "monte_carlo": run_monte_carlo,
    "peers": run_peers,
    "anatomy": run_anatomy,
    "variance": run_variance,
    "retrace": run_retrace,
}
SECTIONS = tuple(RUNNERS)
