"""One table per measuring section of ``report.md``, with the words that say how to read it.

(``versus`` has its own module, shared with the README; compile times and retraces are in
``compilation``.) A section that did not run gives no lines.
"""

from __future__ import annotations

from benchmarks.throughput.records import section_rows
from benchmarks.throughput.report.format import format_value, markdown_table, megabytes
from benchmarks.throughput.sections.variance import Z_MAX


def analytic_report(records) -> list[str]:
    """Section ``analytic``: GB/s against the read ceiling, per kernel and shape."""
    rows = section_rows(records, "analytic")
    if not rows:
        return []
    body = []
    for r in rows:
        extra = ""
        if r.get("fraction_of_stream") is not None:
            extra = f"{r['fraction_of_stream']:.2f} of read-4-write-1"
        if r.get("gflops") is not None:
            extra = f"{r['gflops']:.1f} GFLOP/s"
        body.append(
            [
                r["workload"],
                r["batch"],
                r["event"],
                megabytes(r["bytes_in"]),
                r["throughput"],
                r["ceiling"],
                r["fraction"],
                r.get("compile_s"),
                extra,
            ]
        )
    return [
        "## Analytic KL",
        "",
        "GB/s of parameter bytes read. `event` is D (Normal, MVNDiag), d (TriL) or K "
        "(Categorical). The Normal kernel is elementwise, so it also writes B·D outputs; "
        "its last column compares it with a jitted `a + b + c + d` over the same arrays "
        "(the same read-4-write-1 traffic).",
        "",
        markdown_table(
            [
                "kernel",
                "B",
                "event",
                "MB in",
                "GB/s",
                "read ceiling GB/s",
                "fraction",
                "compile s",
                "note",
            ],
            body,
        ),
        "",
    ]


def mc_report(records) -> list[str]:
    """Section ``monte_carlo``: M sample-dims/s against the RNG ceiling."""
    rows = section_rows(records, "monte_carlo")
    if not rows:
        return []
    body = [
        [
            r["workload"],
            r["batch"],
            r["samples"],
            r["event"],
            r["throughput"],
            r["ceiling"],
            r["fraction"],
            r.get("compile_s"),
        ]
        for r in rows
    ]
    return [
        "## Monte Carlo",
        "",
        "q, p MultivariateNormalDiag; M sample-dims/s = N·B·D / seconds. `importance_kl` "
        "draws from a proposal and computes ESS and PSIS k̂ (a sort of the N log weights per "
        "batch member), so its ratio is not a target.",
        "",
        markdown_table(
            ["estimator", "B", "N", "D", "M sample-dims/s", "RNG ceiling", "fraction", "compile s"],
            body,
        ),
        "",
    ]


def peers_report(records) -> list[str]:
    """Section ``peers``: the same workloads through other implementations."""
    rec = records.get("peers")
    if rec is None:
        return []
    body = [
        [
            r["workload"],
            r["impl"],
            r.get("throughput"),
            r.get("unit"),
            r.get("ceiling"),
            r.get("fraction"),
            r.get("note"),
        ]
        for r in rec["rows"]
    ]
    status = ", ".join(f"{k}: {v}" for k, v in rec["status"].items())
    return [
        "## Same workload, other implementations",
        "",
        f"Peers: {status}. Peers that are not installed are skipped (none is installed by "
        "this script). The textbook formulas are what a user writes by hand; "
        "they lose all precision when the scales are close (see the report of seed_cases).",
        "",
        markdown_table(
            ["workload", "implementation", "throughput", "unit", "ceiling", "fraction", "note"],
            body,
        ),
        "",
    ]


def anatomy_report(records) -> list[str]:
    """Section ``anatomy``: cost per element of each probe, with XLA's layout."""
    rows = section_rows(records, "anatomy")
    if not rows:
        return []
    body = [
        [
            r["impl"],
            r["ns_per_element"],
            r["throughput"],
            r["fraction"],
            r["xla_fusions"],
            r["xla_fused_ops"],
            megabytes(r["xla_temp_bytes"]),
        ]
        for r in rows
    ]
    b, d = rows[0]["batch"], rows[0]["event"]
    return [
        "## Anatomy: what XLA charges per element",
        "",
        f"Probes on one float32 [{b}, {d}] array (its read ceiling as above). `fusions` is "
        "the number of fused loops XLA launches, `HLO ops` the operations inside them, "
        "`temp MB` the intermediates it materialises.",
        "",
        markdown_table(
            ["probe", "ns / element", "GB/s", "fraction of read", "fusions", "HLO ops", "temp MB"],
            body,
        ),
        "",
    ]


def knn_report(records) -> list[str]:
    """Section ``knn``: time per call, estimate and peak memory per size."""
    rows = section_rows(records, "knn")
    if not rows:
        return []
    body = [
        [
            r["batch"],
            r["event"],
            r.get("seconds"),
            r.get("timed_calls"),
            r.get("throughput"),
            r.get("value"),
            r.get("stderr"),
            r.get("exact"),
            megabytes(r.get("xla_peak_bytes")),
            megabytes(r.get("rss_peak_growth_bytes")),
            r.get("note"),
        ]
        for r in rows
    ]
    return [
        "## k-nearest-neighbour KL",
        "",
        "`knn_kl(x, y)` with n = m, x ~ N(0, I), y ~ N(0.5·1, I) (true KL in the `exact` "
        "column). Peak memory two ways: XLA's buffer assignment for the compiled call "
        "(arguments + outputs + temporaries) and the growth of the process's resident "
        "high-water mark (`ru_maxrss`) since the section began — sizes run in increasing "
        "order, so each is the peak up to that size.",
        "",
        markdown_table(
            [
                "n = m",
                "d",
                "s per call",
                "timed calls",
                "M pairs/s",
                "estimate",
                "stderr",
                "exact",
                "XLA peak MB",
                "RSS peak growth MB",
                "note",
            ],
            body,
        ),
        "",
    ]


def knn_tree_report(records, cfg) -> list[str]:
    """Section ``knn_tree``: the tree and brute force against scipy, per (d, n)."""
    rows = section_rows(records, "knn_tree")
    if not rows:
        return []
    by_cell: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        by_cell.setdefault((r["event"], r["batch"]), {})[r["impl"]] = r
    body = []
    for (d, n), cell in sorted(by_cell.items()):
        sc, tr = cell["scipy cKDTree"], cell.get("jaxkl tree", {})
        br, auto = cell.get("jaxkl brute", {}), cell.get("jaxkl auto", {})
        body.append(
            [
                d,
                n,
                sc["seconds"],
                tr.get("seconds"),
                tr.get("fraction"),
                br.get("seconds"),
                br.get("fraction"),
                br.get("timed_calls"),
                auto.get("search"),
                auto.get("fraction"),
                tr.get("identical"),
                auto.get("value"),
                auto.get("stderr"),
                sc["value"],
            ]
        )
    min_n = cfg["knn_tree"]["target_min_n"]
    ratios = [r["vs_fastest_peer"] for r in rows if r.get("vs_fastest_peer") is not None]
    verdict = (
        f'`method="auto"` at least as fast as scipy at every n ≥ {min_n}: '
        f"{format_value(min(ratios) >= 1.0)} (lowest ratio {format_value(min(ratios))})."
        if ratios
        else f"No size n ≥ {min_n} with the search auto takes measured."
    )
    return [
        "## k-NN: the tree search against scipy",
        "",
        "`knn_kl(x, y, method=...)` with n = m, x ~ N(0, I), y ~ N(0.5·1, I), float32, "
        "called eagerly, against scipy's `cKDTree` computing the same estimate directly "
        "(value from `query(x, k + 1)` on x's tree and `query(x, k)` on y's, stderr from "
        "the same on 10 strided subsamples, `workers=-1`; exact copies unhandled, so a copy "
        "makes its value −inf or NaN). `× scipy` is scipy's time over jaxkl's, median of "
        "per-repeat ratios (> 1: jaxkl faster); `brute calls` = 1: the brute force ran "
        'once, against scipy\'s median. `auto`: the search `method="auto"` takes on CPU '
        "at that (d, n), and its `× scipy`. `identical`: the tree's value and stderr equal "
        "the brute force's bit for bit; `estimate`, `stderr`: auto's; an empty tree column: "
        "not timed there (`skip_tree`). The load average during the section is in the "
        "header above.",
        "",
        markdown_table(
            [
                "d",
                "n = m",
                "scipy s",
                "tree s",
                "tree × scipy",
                "brute s",
                "brute × scipy",
                "brute calls",
                "auto",
                "auto × scipy",
                "identical",
                "estimate",
                "stderr",
                "scipy estimate",
            ],
            body,
        ),
        "",
        verdict,
        "",
    ]


def variance_report(records, cfg) -> list[str]:
    """Section ``variance``: each option's variance, bias check and gain."""
    rec = records.get("variance")
    if rec is None:
        return []
    v = cfg["variance"]
    body = [
        [
            r["workload"],
            r["impl"],
            r.get("exact"),
            r.get("mean"),
            r.get("z"),
            r.get("unbiased"),
            r.get("variance"),
            r.get("mean_reported_stderr"),
            r.get("replicate_sd"),
            None if r.get("seconds") is None else r["seconds"] * 1e6,
            r.get("variance_ratio"),
            r.get("gain"),
            r.get("note"),
        ]
        for r in rec["rows"]
    ]
    return [
        "## Variance reduction: precision per second",
        "",
        f"Each option's estimate with n = {v['num_samples']} (QMC: "
        f"{v['qmc_randomizations']} randomisations) is replicated {v['replicates']} times "
        "in one vmapped, compiled call; variance is across replicates, seconds per estimate "
        "= median call time / replicates, precision per second = 1 / (variance × seconds). "
        f"`z` = (mean − exact) / SE over replicates; unbiased means |z| ≤ {Z_MAX:g}. "
        "`reported stderr` is the mean of the estimator's own stderr, to compare with "
        "the replicate sd. Gains are against jaxkl's own plain k1 on the same pair; "
        "other libraries' k1 are compared with it in the peers table of the same run.",
        "",
        markdown_table(
            [
                "pair",
                "option",
                "exact KL",
                "mean",
                "z",
                "unbiased",
                "variance",
                "reported stderr",
                "replicate sd",
                "µs / estimate",
                "variance ÷",
                "precision/s gain",
                "note",
            ],
            body,
        ),
        "",
    ]
