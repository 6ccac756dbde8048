"""jaxkl.study.residual_precision.exact_residual_kl: the reference of the NVAE precision study."""

import mpmath
import numpy as np
import pytest

from jaxkl.study.residual_precision import exact_residual_kl


def _mpmath_kl(dloc, dscale, scale_p):
    with mpmath.workdps(60):
        m, s, p = (mpmath.mpf(float(v)) for v in (dloc, dscale, scale_p))
        return float(((m / p) ** 2 + s * s) / 2 - mpmath.mpf("0.5") - mpmath.log(s))


@pytest.mark.parametrize(
    ("dloc", "dscale", "scale_p"),
    [(1.0, 1.0, 1.0), (0.3, 2.0, 0.5), (1e-7, 1 + 2**-20, 3.0), (-2.5, 0.25, 1.7)],
)
def test_matches_high_precision_arithmetic(dloc, dscale, scale_p):
    assert exact_residual_kl(dloc, dscale, scale_p) == pytest.approx(
        _mpmath_kl(dloc, dscale, scale_p), rel=1e-15
    )


def test_exact_at_float32_inputs_where_float64_formula_cancels():
    dscale = np.float32(1) + np.float32(2**-23)  # the float32 next to 1
    got = exact_residual_kl(0.0, dscale, 1.0)
    g = 2.0**-23  # KL = ½(1+g)² − ½ − log(1+g) = g² − g³/3 + …
    assert got == pytest.approx(g * g - g**3 / 3, rel=1e-12)
    assert exact_residual_kl(0.0, 1.0, 2.0) == 0.0
