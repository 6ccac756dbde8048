"""Load an ``experiments/`` script as a module, as its end-to-end tests do."""

import importlib.util
import sys
from pathlib import Path

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def load_experiment(name: str, module_name: str | None = None):
    """``experiments/<name>.py`` imported under ``module_name`` (default ``_exp_<name>``).

    The module is registered in ``sys.modules`` before it runs: dataclasses resolve their
    annotations through it.
    """
    spec = importlib.util.spec_from_file_location(
        module_name or f"_exp_{name}", EXPERIMENTS / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
