"""The numerics layer: special-function pieces that the closed forms and estimators share.

The lowest layer of the package: it imports only jax and numpy. One concept per module —

* :mod:`~jaxkl.special.quotients`: x/y and log(a/b) whose derivatives never square y;
* :mod:`~jaxkl.special.series`: the Horner evaluator and the ζ coefficients of log Γ(1 + x);
* :mod:`~jaxkl.special.expm1`: eˣ − 1 − x, log(1 − eᵃ), log|eᵘ − 1|;
* :mod:`~jaxkl.special.stirling`: Stirling's correction δ(x) and its derivatives;
* :mod:`~jaxkl.special.log_gamma`: log Γ remainders, the Gamma entropy term, log B;
* :mod:`~jaxkl.special.double_float`: twice-working-precision sums, products and log Γ;
* :mod:`~jaxkl.special.linalg`: triangular solves and batched LAPACK calls that cannot
  deadlock XLA:CPU.
"""

from jaxkl.special import double_float
from jaxkl.special.expm1 import expm1_minus_x, log1mexp, log_abs_expm1
from jaxkl.special.linalg import map_batch_on_cpu, solve_lower
from jaxkl.special.log_gamma import (
    log_beta,
    log_gamma_remainder,
    log_gamma_remainder_grad,
    scaled_log_gamma_remainder_hess,
    standard_gamma_entropy,
)
from jaxkl.special.quotients import div, log_ratio, log_ratio_given_difference
from jaxkl.special.series import ZETA_MINUS_1, horner, series_radius
from jaxkl.special.stirling import (
    HALF_LOG_2PI,
    STIRLING_COEFFS,
    STIRLING_MIN,
    scaled_stirling_correction_hess,
    stirling_correction,
    stirling_correction_grad,
    stirling_correction_hess,
)

__all__ = [
    "HALF_LOG_2PI",
    "STIRLING_COEFFS",
    "STIRLING_MIN",
    "ZETA_MINUS_1",
    "div",
    "double_float",
    "expm1_minus_x",
    "horner",
    "log1mexp",
    "log_abs_expm1",
    "log_beta",
    "log_gamma_remainder",
    "log_gamma_remainder_grad",
    "log_ratio",
    "log_ratio_given_difference",
    "map_batch_on_cpu",
    "scaled_log_gamma_remainder_hess",
    "scaled_stirling_correction_hess",
    "series_radius",
    "solve_lower",
    "standard_gamma_entropy",
    "stirling_correction",
    "stirling_correction_grad",
    "stirling_correction_hess",
]
