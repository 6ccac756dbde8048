"""The engine behind ``experiments/``: configs, result folders, resumable cells, figures.

An experiment script is thin: it states what is specific to it as an
:class:`~jaxkl.study.experiment.Experiment` and hands it to the protocol, which owns the
command line, the config, the run folder (resume), atomic writes, provenance and the
progress bar::

    from jaxkl.study.experiment import Experiment, Outputs

    def compute(cfg, run):                       # each resumable unit is one cell
        return [run.cell(cell_id(n=n), lambda n=n: measure(cfg, n)) for n in cfg["sizes"]]

    def report(records, cfg, run):               # what to write
        return Outputs(markdown(records), metrics=rows(records), summary=headline(records))

    main = Experiment("my_exp", DEFAULT_CONFIG, __doc__, compute, report,
                      example="sweep.replicates=500", validate=my_checks).main

Report pieces shared by every experiment (value ± SE, markdown tables, z-score claims)
are in :mod:`jaxkl.study.report`.
"""

from jaxkl.study.config import (
    ConfigError,
    apply_overrides,
    dumps_toml,
    experiment_parser,
    flatten,
    load_toml,
    merge_config,
    parse_experiment_args,
    require_config,
    require_min,
    require_nonempty,
    require_one_of,
    require_subset,
    resolve_config,
)
from jaxkl.study.misuse import clipping_discrete_kl, normalising_discrete_kl
from jaxkl.study.plotting import figure_png, new_figure, save_figure
from jaxkl.study.results import (
    CellStore,
    RunConflictError,
    RunDir,
    atomic_write_bytes,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    cell_id,
    derive_run_name,
    environment_info,
    git_revision,
    to_jsonable,
)
from jaxkl.study.sharded import sharded_map

__all__ = [
    "CellStore",
    "ConfigError",
    "RunConflictError",
    "RunDir",
    "apply_overrides",
    "atomic_write_bytes",
    "atomic_write_csv",
    "atomic_write_json",
    "atomic_write_text",
    "cell_id",
    "clipping_discrete_kl",
    "derive_run_name",
    "dumps_toml",
    "environment_info",
    "experiment_parser",
    "figure_png",
    "flatten",
    "git_revision",
    "load_toml",
    "merge_config",
    "new_figure",
    "normalising_discrete_kl",
    "parse_experiment_args",
    "require_config",
    "require_min",
    "require_nonempty",
    "require_one_of",
    "require_subset",
    "resolve_config",
    "save_figure",
    "sharded_map",
    "to_jsonable",
]
