"""The engine behind ``experiments/``: configs, result folders, resumable cells, figures.

An experiment script is thin::

    parser = experiment_parser("my_exp", default_config="configs/my_exp.toml")
    args, cfg = parse_experiment_args(parser, argv, validate=my_checks)
    run = RunDir.open(args.out, "my_exp", cfg, run_name=args.run_name,
                      stem=args.config.stem)
    for n in cfg["sweep"]["sizes"]:
        rec = run.cells.get_or_compute(cell_id(n=n), lambda: compute(n))
    run.write_metrics(rows); run.write_figure("fig.png", fig)
    run.write_report(markdown); run.write_summary(results)
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
    "resolve_config",
    "save_figure",
    "sharded_map",
    "to_jsonable",
]
