"""``mc_kl``'s variance-reduction options as the config spells them (``"k1+qmc+cv"``)."""

from __future__ import annotations

import inspect

import jaxkl

# Variance-reduction tokens of an option string and the mc_kl keyword each one sets.
VR_FLAGS = {"antithetic": "antithetic", "qmc": "qmc", "cv": "control_variate"}
# The estimators an option may start with.
VR_ESTIMATORS = ("k1", "k3")


def parse_option(option: str) -> tuple[str, dict[str, bool]]:
    """``"k1+antithetic+cv"`` → ``("k1", {"antithetic": True, "control_variate": True})``."""
    tokens = option.split("+")
    estimator, flags = tokens[0], tokens[1:]
    if estimator not in VR_ESTIMATORS:
        raise ValueError(f"option {option!r}: must start with one of {VR_ESTIMATORS}")
    bad = [f for f in flags if f not in VR_FLAGS]
    if bad:
        raise ValueError(f"option {option!r}: unknown flag {bad[0]!r}; use {sorted(VR_FLAGS)}")
    if len(set(flags)) != len(flags):
        raise ValueError(f"option {option!r}: a flag is repeated")
    return estimator, {VR_FLAGS[f]: True for f in flags}


def mc_kl_keywords() -> set[str]:
    """The keywords this checkout's ``jaxkl.mc_kl`` accepts."""
    return set(inspect.signature(jaxkl.mc_kl).parameters)
