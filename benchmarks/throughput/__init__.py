"""The throughput benchmark: jaxkl's speed as a fraction of ceilings timed in the same run.

``python -m benchmarks.throughput --config configs/throughput.toml`` (``cli``) runs the
configured sections and writes ``results/throughput/<run-name>/``. The modules, bottom up:

* ``harness``: compiling, interleaved timing, the read and RNG ceilings, XLA's layout;
* ``inputs``, ``records``, ``options``, ``peer_libraries``: what the sections share —
  random inputs, the row format, ``mc_kl``'s option strings, other libraries' KL;
* ``sections``: one module per section (``knn``, ``knn_tree``, ``analytic``, ``versus``,
  ``monte_carlo``, ``peers``, ``anatomy``, ``variance``, ``retrace``);
* ``config``: the config's checks;
* ``report``: targets, ``report.md``, the README section and the figure;
* ``cli``: the command line.
"""

from benchmarks.throughput.cli import DEFAULT_CONFIG, EXPERIMENT, PUBLISHED, main
from benchmarks.throughput.config import validate
from benchmarks.throughput.harness import (
    Compiled,
    Timing,
    compile_bound,
    read_ceiling,
    rng_ceiling,
    time_interleaved,
)
from benchmarks.throughput.options import parse_option
from benchmarks.throughput.records import COLUMNS
from benchmarks.throughput.report import evaluate_targets
from benchmarks.throughput.sections import SECTIONS
from benchmarks.throughput.sections.variance import PAIRS, Z_MAX

__all__ = [
    "COLUMNS",
    "DEFAULT_CONFIG",
    "EXPERIMENT",
    "PAIRS",
    "PUBLISHED",
    "SECTIONS",
    "Z_MAX",
    "Compiled",
    "Timing",
    "compile_bound",
    "evaluate_targets",
    "main",
    "parse_option",
    "read_ceiling",
    "rng_ceiling",
    "time_interleaved",
    "validate",
]
