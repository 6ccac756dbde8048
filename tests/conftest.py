"""Strict numerics for every test, the --run-slow switch for long statistical sweeps, and
one compilation cache shared by the run's test processes."""

import os
import shutil
import tempfile

import jax
import pytest

# Implicit rank promotion hides shape bugs; every kernel must broadcast explicitly.
jax.config.update("jax_numpy_rank_promotion", "raise")
# Implicit dtype promotion hides precision bugs (a float64 constant widening a float32
# kernel, an int array turning a sum into float32): every mix of dtypes is spelled out.
# Python scalars stay weakly typed and take the array's dtype.
jax.config.update("jax_numpy_dtype_promotion", "strict")

# The suite is compile-bound: most of its CPU time is XLA compiling programs, many of them
# identical (the same kernel jitted afresh by another test, the same eager op in both
# pytest-xdist workers). JAX's persistent cache, in a directory private to this run and
# shared by its worker processes, compiles each distinct program once; a hit loads the
# executable the compiler produced, so the tests still run the code users run. The
# directory is made by the first process (the xdist controller, or pytest alone), handed
# to the workers through the environment they inherit, and removed at the end.
_CACHE_ENV = "JAXKL_TEST_XLA_CACHE"
_OWN_CACHE = _CACHE_ENV not in os.environ
if _OWN_CACHE:
    os.environ[_CACHE_ENV] = tempfile.mkdtemp(prefix="jaxkl-xla-cache-")
# Cache every program: the default skips those compiling in under a second, which here are
# nearly all of them.
_CACHE_SETTINGS = {
    "jax_compilation_cache_dir": os.environ[_CACHE_ENV],
    "jax_persistent_cache_min_compile_time_secs": 0.0,
    "jax_persistent_cache_min_entry_size_bytes": 0,
}
for _name, _value in _CACHE_SETTINGS.items():
    jax.config.update(_name, _value)
    # The scripts that tests start as subprocesses (a killed study resumed, two local
    # processes, the command lines) read the same settings from the environment, which JAX
    # reads at import: a program compiled by a test in-process is loaded, not compiled again.
    os.environ[_name.upper()] = str(_value)


def pytest_unconfigure(config):
    if _OWN_CACHE:
        shutil.rmtree(os.environ.pop(_CACHE_ENV), ignore_errors=True)


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow", action="store_true", default=False, help="also run tests marked slow"
    )


# Test files that take the most CPU time, longest first (seconds of CPU on 2 cores, full
# suite, measured 2026-12-08; the order matters, not the figures). pytest-xdist hands whole
# files to its workers (--dist loadfile) and by default starts with the files holding the
# most tests, which put the longest file (the in-process bias-variance study) near the
# end, where one worker ran it while the other sat idle. Longest first (then the rest in
# collection order) lets the short files fill in at the end.
LONGEST_FIRST = (
    "tests/study/test_bias_variance.py",  # 120
    "tests/estimators/test_knn.py",  # 72
    "tests/test_docstring_examples.py",  # 43
    "tests/analytic/test_discrete.py",  # 40
    "tests/distributions/test_family_conformance.py",  # 39
    "tests/convert/test_convert.py",  # 36
    "tests/fit/test_experiments.py",  # 36
    "tests/estimators/test_coverage.py",  # 29
    "tests/estimators/test_samplers.py",  # 23
    "tests/fit/test_objectives.py",  # 22
    "tests/rl/test_configurations.py",  # 22
    "tests/test_throughput.py",  # 21
    "tests/estimators/test_conformance.py",  # 20
)


def pytest_configure(config):
    # Keep the collection order below (xdist's default reorders files by test count).
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    root = config.rootpath
    items.sort(key=lambda item: rank.get(item.path.relative_to(root).as_posix(), len(rank)))
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow statistical sweep: run with --run-slow (make test-all)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
