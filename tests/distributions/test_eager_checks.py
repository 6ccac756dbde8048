"""Eager parameter checks run as one compiled program and pass exactly what the primitives,
evaluated one by one, pass."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxkl
from jaxkl import _checks
from jaxkl.distributions import parameters
from tests._subset import slow_except

CONSTRAINTS = {
    "finite": _checks.FINITE,
    "positive_finite": _checks.POSITIVE_FINITE,
    "not_nan": _checks.NOT_NAN,
    "not_nan_or_pos_inf": _checks.NOT_NAN_OR_POS_INF,
    "probability": parameters.PROBABILITY,
    "some_mass_per_row": parameters.SOME_MASS_PER_ROW,
    "diagonal_positive": parameters.DIAGONAL_POSITIVE,
    "lower_triangular": parameters.LOWER_TRIANGULAR,
}

# Constraints on a square matrix [..., d, d].
SQUARE = {"diagonal_positive", "lower_triangular"}


def _awkward(dtype):
    """One entry of each kind a constraint draws a line at: zeros of both signs, the
    smallest subnormals (an eager XLA:CPU comparison reads them as 0, a jitted one may
    not), ±inf, NaN, the largest finite and the smallest normal numbers."""
    fin = jnp.finfo(dtype)
    return np.array(
        [
            0.0,
            -0.0,
            fin.smallest_subnormal,
            -fin.smallest_subnormal,
            1.0,
            -1.0,
            0.5,
            np.inf,
            -np.inf,
            np.nan,
            fin.max,
            fin.tiny,
            -fin.tiny,
        ],
        dtype,
    )


# CI keeps float32 and bfloat16, where eager and jitted comparisons each disagreed on a
# subnormal before the fast path handed those values back (float32 in an eager constraint,
# bfloat16 in a jitted one); float16 and float64 run under --run-slow.
DTYPES = {
    "bfloat16": jnp.bfloat16,
    "float16": np.float16,
    "float32": np.float32,
    "float64": np.float64,
}


@pytest.mark.parametrize(
    "dtype", slow_except(DTYPES.values(), list(DTYPES), keep=["float32", "bfloat16"])
)
@pytest.mark.parametrize("name", sorted(CONSTRAINTS))
def test_one_program_passes_exactly_what_the_primitives_pass(name, dtype):
    constraint = CONSTRAINTS[name]
    values = _awkward(dtype)
    with jax.enable_x64(dtype == np.float64):
        # All entries together, and each alone among entries that pass every constraint
        # of its kind: in a matrix of ones, in a lower-triangular one (at a diagonal and
        # at an upper entry) and in a column, whose rows have one entry each.
        bases = {
            "ones": (np.ones((3, 3), dtype), [(0, 0)]),
            "tril": (np.tril(np.ones((3, 3), dtype)), [(0, 0), (0, 2)]),
            "column": (np.ones((3, 1), dtype), [(0, 0)]),
        }
        cases = [] if name in SQUARE else [jnp.asarray(values)]
        for v in values:
            for kind, (base, entries) in bases.items():
                if name in SQUARE and kind == "column":
                    continue
                for where in entries:
                    m = base.copy()
                    m[where] = v
                    cases.append(jnp.asarray(m))
        tiny = float(jnp.finfo(dtype).tiny)
        verdicts = []
        for x in cases:
            assert x.dtype == jnp.dtype(dtype)
            eager = bool(jnp.all(constraint.holds(x)))  # primitive by primitive
            verdicts.append(eager)
            wide = np.asarray(x).astype(np.float64)  # NumPy on the host: no flushing
            subnormal = bool(np.any((wide != 0) & (np.abs(wide) < tiny)))
            # The one program passes what the primitives pass, except that a value with
            # a subnormal entry is always handed back to them ...
            one = _checks._hold_everywhere(((x, constraint),))
            assert one == (eager and not subnormal), (name, x)
            # ... so the check users get raises exactly where the primitives fail.
            try:
                _checks.require_constraints("T", [("x", x, constraint)])
                raised = False
            except ValueError:
                raised = True
            assert raised == (not eager), (name, x)
        # The cases reach both verdicts, so the comparison above could fail either way.
        assert True in verdicts and False in verdicts


def test_every_float_width_is_read_bit_by_bit():
    # float8 parameters are kept as they are by as_float; their subnormal test needs 8-bit
    # unsigned integers (a width table without them raised KeyError on construction).
    x = jnp.ones(3, jnp.float8_e4m3fn)
    assert jaxkl.Normal(x, x).scale.dtype == jnp.float8_e4m3fn
    tiny = jnp.asarray([jnp.finfo(jnp.float8_e4m3fn).smallest_subnormal], jnp.float8_e4m3fn)
    assert bool(_checks._any_subnormal(tiny)) and not bool(_checks._any_subnormal(x))


def test_a_failing_value_among_passing_ones_names_the_failure():
    # The one-program verdict is False; the message still comes from require_values.
    with pytest.raises(ValueError, match=r"Normal: scale must be > 0.*scale\[1\] = -2.0"):
        jaxkl.Normal(jnp.zeros(3), jnp.asarray([1.0, -2.0, 3.0]))
    with pytest.raises(ValueError, match=r"Normal: loc must be finite.*loc\[2\] = nan"):
        jaxkl.Normal(jnp.asarray([0.0, 1.0, np.nan]), jnp.ones(3))


def test_python_and_numpy_values_keep_their_own_comparison():
    # 1e-300 is > 0 as a Python float and as a float64 NumPy number, but 0 as a float32
    # array: those values must not be turned into JAX arrays by the fast path.
    assert not _checks._hold_everywhere(((1e-300, _checks.POSITIVE_FINITE),))
    assert not _checks._hold_everywhere(((np.float64(1e-300), _checks.POSITIVE_FINITE),))


def test_concrete_values_inside_a_trace_build_as_before():
    # Under jit or grad even concrete (closed-over) arrays give staged results: the check
    # has no verdict to read and must step aside, as the primitives did.
    loc, scale = jnp.zeros(2), jnp.ones(2)

    def f(x):
        return jnp.sum(jaxkl.Normal(loc, scale).log_prob(x))

    x = jnp.asarray([0.5, -1.0])
    expected = float(f(x))
    assert float(jax.jit(f)(x)) == expected
    assert np.allclose(jax.grad(f)(x), -x)


def test_traced_values_are_left_to_checkify():
    seen = []

    def f(s):
        seen.append(_checks._hold_everywhere(((s, _checks.POSITIVE_FINITE),)))
        return jaxkl.Normal(0.0, s).scale

    jax.jit(f)(2.0)
    assert seen == [False]
    with pytest.raises(ValueError, match="Normal: scale must be > 0"):
        jaxkl.checked(f)(-1.0)


def test_a_new_shape_compiles_one_check_program_and_a_repeat_none(caplog):
    loc, scale = jnp.zeros((5, 7)), jnp.ones((5, 7))  # shapes no other test uses
    program = _checks._everywhere_program((_checks.FINITE, _checks.POSITIVE_FINITE))
    before = program._cache_size()
    with caplog.at_level(logging.WARNING), jax.log_compiles(True):
        jaxkl.Normal(loc, scale)
        jaxkl.Normal(loc, scale)
    compiled = [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]
    assert len(compiled) == 1 and "everywhere" in compiled[0], compiled
    assert program._cache_size() == before + 1
