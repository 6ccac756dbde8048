"""The report's "what bounds the figures": each limit explained in numbers of the same run."""

from __future__ import annotations

from benchmarks.throughput.records import largest, section_rows
from benchmarks.throughput.report.format import megabytes


def bounds_report(records, targets, cfg) -> list[str]:
    """What limits each missed target, in numbers from this same run."""
    out = ["## What bounds the figures", ""]
    if not [t for t in targets if t["met"] is False]:
        out += ["Every target was met in this run.", ""]
    probe = {r["impl"]: r for r in section_rows(records, "anatomy")}
    peers = {r["impl"]: r for r in section_rows(records, "peers") if r.get("fraction") is not None}
    diag = largest(section_rows(records, "analytic", "mvn_diag"))
    textbook = peers.get("jax textbook formula (jit)")
    if diag:
        line = (
            f"* **Gaussian reductions (MVNDiag, B={diag['batch']}, D={diag['event']}): "
            f"{diag['fraction']:.2f} of the read ceiling.** XLA:CPU compiles the kernel into "
            f"{diag['xla_fusions']} fused loop(s) with {diag['xla_fused_ops']} HLO ops and "
            f"{megabytes(diag['xla_temp_bytes']):.0f} MB of materialised [B, D] intermediates."
        )
        if textbook:
            line += (
                f" The textbook formula on the same arrays ({textbook['xla_fused_ops']} ops, "
                f"{textbook['xla_fusions']} loop) reaches {textbook['fraction']:.2f} — but "
                "loses all precision when the scales are close."
            )
        out.append(line)
    keys = (
        "row sum: sum(x, -1)",
        "row sum of 1 log: sum(log x, -1)",
        "row sum of 11 multiply-adds",
        "row sum of a select: sum(where(x > 1, x, -x), -1)",
        "row sum of sign(x - 1)",
    )
    if all(k in probe for k in keys):
        base, log1, fma, sel, sgn = (probe[k] for k in keys)
        per_op = (fma["ns_per_element"] - base["ns_per_element"]) / 11
        out.append(
            f"  Why: the row reduction runs as XLA:CPU's library fusion (`__ynn_fusion`), "
            f"which evaluates the fused elementwise graph op by op: a plain row sum costs "
            f"{base['ns_per_element']:.2f} ns/element ({base['fraction']:.2f} of the read "
            f"ceiling), one log {log1['ns_per_element']:.2f}, eleven multiply-adds "
            f"{fma['ns_per_element']:.2f} (≈ {per_op:.2f} ns per extra op), `sign` "
            f"{sgn['ns_per_element']:.2f}. A `jnp.where` cannot join that fusion at all: the "
            f"select probe needs {sel['xla_fusions']} loops and "
            f"{megabytes(sel['xla_temp_bytes']):.0f} MB of temporaries "
            f"({sel['ns_per_element']:.2f} ns/element). So the accurate scale term "
            "½(r² − 1) − log r is written with no compare or select at all "
            "(`jaxkl.analytic._gaussian_scale.gaussian_scale_kl`: its series and log r − 2s are "
            "blended arithmetically), which made the kernel 2.5× faster than the earlier "
            "form with two branches; what remains is one log, three divisions and ~30 "
            "arithmetic ops per coordinate, and at the per-op cost above that, not memory "
            "bandwidth, sets the pace. A kernel that cannot be expressed in fewer ops "
            "cannot reach the multi-threaded `jnp.sum`; against a single-threaded "
            "`numpy.sum` over the same bytes, timed in the same run, the targets table "
            "gives the second figure."
        )
    normal = largest(section_rows(records, "analytic", "normal"))
    if normal and normal.get("fraction_of_stream") is not None:
        mapped = probe.get("elementwise map (writes [B, D]): x + 1")
        extra = (
            ""
            if mapped is None
            else (
                f"; even `x + 1` over one such array runs at {mapped['fraction']:.2f} of the read "
                "ceiling, because every call allocates and writes a new [B, D] output"
            )
        )
        out.append(
            f"* **Normal ({normal['fraction']:.2f} of the read ceiling)** is elementwise: it "
            f"writes one float per four read. A jitted `(a + b) + (c + d)` over the same "
            f"arrays — the same traffic, no arithmetic — reaches "
            f"{normal['stream_gbs'] / normal['ceiling']:.2f} of the read ceiling and the "
            f"kernel {normal['fraction_of_stream']:.2f} of that stream{extra}. The read "
            "ceiling is not attainable for any kernel that writes [B, D]."
        )
    tril = [r for r in section_rows(records, "analytic", "mvn_tril") if r.get("gflops")]
    if tril:
        calls = sorted({c for r in tril for c in r.get("xla_custom_calls", [])})
        where = (
            f"its triangular solve is a library call ({', '.join(f'`{c}`' for c in calls)}), "
            "which runs outside XLA's fused loops, on the LAPACK that jaxlib borrows from "
            "SciPy (OpenBLAS, with its own thread pool competing with XLA's)"
            if calls
            else "its triangular solve runs in XLA's own loops"
        )
        if not any("xla_custom_calls" in r for r in tril):
            where = "the triangular solve sets the pace"
        out.append(
            f"* **MultivariateNormalTriL: {min(r['fraction'] for r in tril):.3f}–"
            f"{max(r['fraction'] for r in tril):.2f} of the read ceiling, "
            f"{min(r['gflops'] for r in tril):.1f}–{max(r['gflops'] for r in tril):.1f} "
            f"GFLOP/s** (d² flops per right-hand side of the solve): not memory-bound; "
            f"{where}."
        )
    cat = [r for r in section_rows(records, "analytic", "categorical") if r.get("fraction")]
    if cat:
        big = max(cat, key=lambda r: r["event"])
        out.append(
            f"* **Categorical (K={big['event']}): {big['fraction']:.2f} of the read "
            f"ceiling.** {big['xla_fusions']} fused loops, {big['xla_fused_ops']} HLO ops "
            f"and {megabytes(big['xla_temp_bytes']):.0f} MB of intermediates. The precise form "
            "KL = log1p(Σ p·(eˣ − 1 − x)), x = E_p[g] − g, needs five dependent row sums "
            "(max a, max b, Σ e^(a − max a), the mean gap, then the sum itself) that read "
            "seven [B, K] arrays — 3.5× the input bytes, so at most ≈ 0.29 of the read "
            "ceiling even with free arithmetic — and the last of them costs ~33 ops and "
            "three exps per element at the per-op price above. XLA:CPU gives each fused "
            "reduction one output, so the sums cannot share a pass. Rows longer than "
            "16 384 categories are reduced as chunks of at most that many, each a row of "
            "its own: over one long row (K = 151 936) the same fused reductions ran ~14× "
            "slower per element (`jaxkl.analytic.discrete._chunks`)."
        )
    for est in ("k1", "k3"):
        mc = largest(section_rows(records, "monte_carlo", f"mc_kl_{est}"), key="count")
        if mc:
            out.append(
                f"* **mc_kl {est}: {mc['fraction']:.2f} of the RNG ceiling** (B={mc['batch']}, "
                f"N={mc['samples']}, D={mc['event']}): generating the N·B·D standard normals "
                f"alone (threefry bits, then the inverse error function) takes "
                f"{min(mc['fraction'], 1.0):.0%} of the call's time; the rest is the two log "
                f"densities, the mean and the stderr ({mc['xla_fusions']} fused loops, "
                f"{megabytes(mc['xla_temp_bytes']):.0f} MB of intermediates)."
            )
    rbg = peers.get("jaxkl.mc_kl k1, unsafe_rbg key")
    if rbg:
        verdict = (
            "so a faster generator would speed Monte Carlo up in proportion"
            if rbg["fraction"] > 1.0
            else "so threefry is the faster generator on this CPU and the RNG ceiling above "
            "is the right one"
        )
        out.append(
            f"* The same `mc_kl` call given an `unsafe_rbg` key (XLA's counter-based "
            f"generator) runs at {rbg['throughput']:.0f} M sample-dims/s, "
            f"{rbg['fraction']:.2f} × the threefry ceiling, {verdict}."
        )
    out.append("")
    return out
