"""The config's checks: impossible values are refused before anything is computed."""

from __future__ import annotations

from typing import Any

from benchmarks.throughput.options import parse_option
from benchmarks.throughput.sections import SECTIONS
from benchmarks.throughput.sections.retrace import retrace_cases
from benchmarks.throughput.sections.variance import PAIRS
from jaxkl.study import require_config, require_min, require_nonempty


def validate(cfg: dict[str, Any]) -> None:
    """Impossible values, rejected before any compute."""
    require_nonempty(cfg, "sections")
    require_min(cfg, 1, "analytic.categorical_elements")
    require_min(cfg, 0, *(f"targets.{k}" for k in cfg["targets"]), strict=True)
    unknown = sorted(set(cfg["sections"]) - set(SECTIONS))
    require_config(not unknown, "sections", f"unknown {unknown}; choose from {list(SECTIONS)}")
    t = cfg["timing"]
    require_config(t["repeats"] >= 1, "timing.repeats", "must be >= 1")
    require_config(t["warmup"] >= 0, "timing.warmup", "must be >= 0")
    require_config(t["min_time"] >= 0, "timing.min_time", "must be >= 0")
    a = cfg["analytic"]
    for key in ("batch_sizes", "event_sizes", "categorical_categories"):
        vals = a[key]
        require_config(
            bool(vals) and all(v >= 1 for v in vals),
            f"analytic.{key}",
            "must be a non-empty list of integers >= 1",
        )
    require_config(
        all(len(c) == 2 and c[0] >= 1 and c[1] >= 1 for c in a["tril_cases"]),
        "analytic.tril_cases",
        "each case must be [d, B] with d, B >= 1",
    )
    require_config(
        all(a["categorical_elements"] % k == 0 for k in a["categorical_categories"]),
        "analytic.categorical_elements",
        "must be a multiple of every categorical K",
    )
    require_config(
        all(len(c) == 2 and min(c) >= 1 for c in cfg["versus"]["categorical_cases"]),
        "versus.categorical_cases",
        "each case must be [B, K] with B, K >= 1",
    )
    require_config(
        all(len(c) == 2 and min(c) >= 1 for c in cfg["versus"]["tril_cases"]),
        "versus.tril_cases",
        "each case must be [d, B] with d, B >= 1",
    )
    require_config(
        all(len(c) == 3 and min(c) >= 1 for c in cfg["versus"]["mc_cases"]),
        "versus.mc_cases",
        "each case must be [B, N, D] with B, N, D >= 1",
    )
    m = cfg["monte_carlo"]
    require_config(
        bool(m["cases"]) and all(len(c) == 3 and min(c) >= 1 for c in m["cases"]),
        "monte_carlo.cases",
        "each case must be [B, N, D] with B, N, D >= 1",
    )
    require_config(
        set(m["estimators"]) <= {"k1", "k2", "k3"} and bool(m["estimators"]),
        "monte_carlo.estimators",
        "must be a non-empty subset of k1, k2, k3",
    )
    require_config(m["importance_scale"] > 0, "monte_carlo.importance_scale", "must be > 0")
    k = cfg["knn"]
    require_config(
        bool(k["sizes"]) and all(n >= 2 for n in k["sizes"]),
        "knn.sizes",
        "must be a non-empty list of sizes >= 2",
    )
    require_config(k["dim"] >= 1, "knn.dim", "must be >= 1")
    require_config(1 <= k["k"] < min(k["sizes"]), "knn.k", "must be in [1, min(knn.sizes))")
    require_config(k["repeats"] >= 1, "knn.repeats", "must be >= 1")
    require_config(k["max_seconds"] > 0, "knn.max_seconds", "must be > 0")
    validate_knn_tree(cfg)
    v = cfg["variance"]
    require_config(v["num_samples"] >= 4, "variance.num_samples", "must be >= 4")
    require_config(v["replicates"] >= 8, "variance.replicates", "must be >= 8")
    require_config(v["qmc_randomizations"] >= 2, "variance.qmc_randomizations", "must be >= 2")
    for opt in v["options"]:
        try:
            parse_option(opt)
        except ValueError as err:
            require_config(False, "variance.options", str(err))
    require_config(
        "k1" in v["options"],
        "variance.options",
        "must include plain 'k1' (the reference of every gain)",
    )
    for name in PAIRS:
        pair = v["pairs"][name]
        require_config(
            pair["q_scale"] > 0 and pair["p_scale"] > 0,
            f"variance.pairs.{name}",
            "scales must be > 0",
        )
    names = {name for name, _, _ in retrace_cases(cfg)} | {"all"}
    unknown = sorted(set(cfg["retrace"]["eager"]) - names)
    require_config(not unknown, "retrace.eager", f"unknown {unknown}; choose from {sorted(names)}")
    require_config(cfg["plot"]["dpi"] >= 20, "plot.dpi", "must be >= 20")


def validate_knn_tree(cfg: dict[str, Any]) -> None:
    """The ``[knn_tree]`` table's checks."""
    t = cfg["knn_tree"]
    require_config(
        bool(t["dims"]) and all(d >= 1 for d in t["dims"]),
        "knn_tree.dims",
        "must be a non-empty list of dimensions >= 1",
    )
    require_config(
        bool(t["sizes"]) and all(n >= 2 * (t["k"] + 1) for n in t["sizes"]),
        "knn_tree.sizes",
        "must be a non-empty list of sizes >= 2·(k + 1)",
    )
    require_config(t["k"] >= 1, "knn_tree.k", "must be >= 1")
    require_config(t["repeats"] >= 1, "knn_tree.repeats", "must be >= 1")
    require_config(t["brute_max_n"] >= 0, "knn_tree.brute_max_n", "must be >= 0")
    require_config(t["brute_repeat_max_n"] >= 0, "knn_tree.brute_repeat_max_n", "must be >= 0")
    require_config(t["target_min_n"] >= 1, "knn_tree.target_min_n", "must be >= 1")
    require_config(
        all(isinstance(c, list) and len(c) == 2 for c in t["skip_tree"]),
        "knn_tree.skip_tree",
        "must be a list of [d, n] pairs",
    )
