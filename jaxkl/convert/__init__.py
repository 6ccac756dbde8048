"""Bring your own distributions: numpyro, distrax and TFP-on-JAX objects in jaxkl.

``jaxkl.kl``, ``mc_kl``, ``importance_kl`` and the ``jaxkl.fit`` objectives accept
distributions of these libraries directly: a family jaxkl knows is converted to jaxkl's
(and uses its float32-careful kernels); for the Monte Carlo estimators any other one is
wrapped with its own ``sample``/``log_prob`` (:class:`ForeignDistribution`). None of the
three libraries is a dependency of jaxkl: they are imported only when their objects
arrive.

Public: :func:`from_numpyro`, :func:`from_distrax`, :func:`from_tfp` (foreign → jaxkl),
:func:`to_numpyro`, :func:`to_distrax`, :func:`to_tfp` (jaxkl → foreign),
:func:`as_jaxkl`, :func:`as_sampleable` and :class:`ForeignDistribution`.
"""

from jaxkl.convert.convert import (
    UnsupportedDistribution,
    as_jaxkl,
    as_sampleable,
    converters_listing,
    from_distrax,
    from_numpyro,
    from_tfp,
    qualified_name,
    to_distrax,
    to_numpyro,
    to_tfp,
)
from jaxkl.convert.foreign import ForeignDistribution
from jaxkl.convert.libraries import LIBRARIES, library_of

__all__ = [
    "LIBRARIES",
    "ForeignDistribution",
    "UnsupportedDistribution",
    "as_jaxkl",
    "as_sampleable",
    "converters_listing",
    "from_distrax",
    "from_numpyro",
    "from_tfp",
    "library_of",
    "qualified_name",
    "to_distrax",
    "to_numpyro",
    "to_tfp",
]
