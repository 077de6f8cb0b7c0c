"""This machine's limits, measured: peak arithmetic throughput per precision and memory bandwidth.

The roofline model (Williams et al. 2009) bounds a layer's or a model's throughput by
`min(peak_gflops, intensity x bandwidth)`, where intensity = FLOPs / bytes of memory access
(`leannet.profile.complexity`, FLOPs = 2 x MACs). Below the ridge point
`peak_gflops / bandwidth` a workload is memory-bound on this machine, above it compute-bound.

How each limit is measured (`measure_limits`), at the sweep's threads:

* Peak fp32: `torch.mm` of two `MATMUL_N` x `MATMUL_N` matrices (2 N^3 FLOPs, ~170 FLOP/byte:
  far above any CPU's ridge point, so compute-bound); the best of `REPEATS` calls, since a
  peak is what the machine can do, not what it did on average.
* bf16 / int8: the same matmul in bf16 (`torch.mm`) and int8 (`torch._int_mm`, int32 out),
  measured only where the ISA has the instructions that make them fast (avx512_bf16 / amx_bf16;
  avx512_vnni / avx_vnni / amx_int8); elsewhere they are emulated and their figure would be a
  library's fallback, not a limit, so they are recorded as absent.
* Bandwidth: `dst.copy_(src)` of `COPY_BYTES` (far beyond the last-level cache), counted as
  read + write bytes (2 x size), best of `REPEATS`.

Each figure is checked against an independent one (`checks`):

* fp32 peak vs the datasheet formula cores x FMA units x fp32 lanes x 2 x clock, with the
  clock from lscpu's max MHz, else /proc/cpuinfo's MHz (a VM often shows only the nominal
  clock, and the boost clock can be higher: a ratio slightly above 1 is possible there), and
  2 FMA units (every AVX2/AVX-512 x86 core since Haswell / Zen 2). MKL/oneDNN sgemm reaches
  70-90% of it on an idle machine; on a shared or throttled host less.
* bandwidth vs a single-threaded `numpy.copyto` of the same size, an independent copy loop
  (numpy's own, not torch's). On a VM with a few cores one core can already saturate what the
  host gives us: expect a ratio of 0.5-1.5 (1.4 on the 2-vCPU EPYC, busy); a ratio outside
  0.3-2 points at a broken measurement.

Results are cached per environment fingerprint (`leannet.bench.results.fingerprint`: CPU,
flags, threads, versions) in `$LEANNET_HOME/machine/<fingerprint>.json`: about 3 s once, then
free. Measured on a busy machine, every figure is low: `refresh=True` re-measures.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from leannet.fileio import atomic_path

MATMUL_N = 1024  # 2.1 GFLOP per call: ~10-30 ms on 2 cores, long enough to time, short to repeat
COPY_BYTES = 256 << 20  # 8x the largest last-level cache seen here (32 MiB): DRAM, not cache
REPEATS = 7  # best of 7: a peak, robust to a neighbour taking a few time slices
FMA_UNITS = 2  # per core, every AVX2 / AVX-512 x86 core since Haswell and Zen 2
VERSION = 1  # how the limits are measured; part of the cache file's name


def cpu_flags() -> set[str]:
    from leannet.bench.results import cpuinfo

    return set(cpuinfo().get("flags", "").split())


def cpu_clock_mhz() -> tuple[float | None, str]:
    """The CPU's clock and where it came from: lscpu's max MHz, else /proc/cpuinfo's MHz."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "CPU max MHz":
                return float(value), "lscpu max MHz"
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    from leannet.bench.results import cpuinfo

    with contextlib.suppress(KeyError, ValueError):
        return float(cpuinfo()["cpu MHz"]), "/proc/cpuinfo cpu MHz (nominal; a VM may hide the boost clock)"
    return None, "unknown"


def supported_precisions(flags: set[str] | None = None) -> dict[str, bool]:
    flags = cpu_flags() if flags is None else flags
    return {
        "fp32": True,
        "bf16": bool(flags & {"avx512_bf16", "amx_bf16"}),
        "int8": bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"}),
    }


def fp32_lanes(flags: set[str]) -> int:
    return 16 if "avx512f" in flags else 8 if "avx2" in flags or "avx" in flags else 4


def _best(call, repeats: int = REPEATS) -> float:
    call()  # warm-up: first-touch pages, library dispatch
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t0)
    return best


def _matmul_gflops(dtype: torch.dtype, n: int) -> float:
    if dtype == torch.int8:
        a = torch.randint(-64, 64, (n, n), dtype=torch.int8)
        b = torch.randint(-64, 64, (n, n), dtype=torch.int8)

        def call():
            return torch._int_mm(a, b)
    else:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)

        def call():
            return torch.mm(a, b)
    return 2 * n**3 / _best(call) / 1e9


def _copy_gbps(nbytes: int, torch_copy: bool) -> float:
    """Read + write bandwidth of one large copy: torch's (threaded) or numpy's (one thread)."""
    n = nbytes // 4
    if torch_copy:
        src, dst = torch.ones(n), torch.empty(n)
        return 2 * nbytes / _best(lambda: dst.copy_(src), 5) / 1e9
    a, b = np.ones(n, np.float32), np.empty(n, np.float32)
    return 2 * nbytes / _best(lambda: np.copyto(b, a), 5) / 1e9


def measure_limits(threads: int | None = None, matmul_n: int | None = None,
                   copy_bytes: int | None = None) -> dict[str, Any]:
    """Measure peak GFLOP/s per supported precision and copy bandwidth (GB/s), with checks
    (sizes default to `MATMUL_N` and `COPY_BYTES`, read at call time so tests can shrink them)."""
    matmul_n, copy_bytes = matmul_n or MATMUL_N, copy_bytes or COPY_BYTES
    from leannet.runtime.threads import torch_threads
    from leannet.runtime.timing import usable_cores

    flags = cpu_flags()
    supported = supported_precisions(flags)
    threads = threads or len(usable_cores())
    peak: dict[str, float | None] = {}
    with torch_threads(threads), torch.inference_mode():
        for prec, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("int8", torch.int8)):
            if not supported[prec]:
                peak[prec] = None
                continue
            try:
                peak[prec] = round(_matmul_gflops(dtype, matmul_n), 2)
            except RuntimeError:  # no kernel for this dtype in this torch build
                peak[prec] = None
        bw = _copy_gbps(copy_bytes, torch_copy=True)
    np_bw = _copy_gbps(copy_bytes, torch_copy=False)

    mhz, clock_source = cpu_clock_mhz()
    lanes = fp32_lanes(flags)
    theory = threads * FMA_UNITS * lanes * 2 * mhz / 1e3 if mhz else None
    peak_fp32 = peak["fp32"]
    limits = {
        "threads": threads,
        "peak_gflops": peak,
        "bandwidth_gbps": round(bw, 2),
        "ridge_flop_per_byte": round(peak_fp32 / bw, 2) if peak_fp32 else None,
        "supported": supported,
        "checks": {
            "fp32_theoretical_gflops": round(theory, 1) if theory else None,
            "fp32_formula": f"{threads} cores x {FMA_UNITS} FMA units x {lanes} fp32 lanes x 2 x "
                            f"{mhz} MHz ({clock_source})",
            "fp32_measured_over_theoretical": round(peak_fp32 / theory, 3) if theory and peak_fp32 else None,
            "numpy_copy_gbps": round(np_bw, 2),
            "numpy_over_measured_bandwidth": round(np_bw / bw, 3),
        },
        "method": {"matmul_n": matmul_n, "copy_bytes": copy_bytes, "repeats": REPEATS, "version": VERSION},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return limits


def limits(threads: int | None = None, refresh: bool = False) -> dict[str, Any]:
    """This machine's limits at `threads`, measured once per environment fingerprint and cached."""
    from leannet.bench.results import default_threads, environment
    from leannet.weights.hub import leannet_home

    threads = threads or default_threads()
    env = environment(threads)
    path = leannet_home() / "machine" / f"limits-v{VERSION}-{env['fingerprint']}.json"
    if not refresh and path.is_file():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            pass
    result = measure_limits(threads) | {"cpu": env["cpu"], "cpu_features": env["cpu_features"],
                                        "fingerprint": env["fingerprint"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(result, indent=1))
    return result


# --- the roofline ------------------------------------------------------------------------------


def roof_gflops(intensity: float, lim: dict[str, Any], precision: str = "fp32") -> float | None:
    """The roofline bound (GFLOP/s) at `intensity` FLOP/byte: min(peak, intensity x bandwidth)."""
    peak = lim["peak_gflops"].get(precision) or lim["peak_gflops"].get("fp32")
    if not peak:
        return None
    return min(peak, intensity * lim["bandwidth_gbps"])


def bound(intensity: float, lim: dict[str, Any], precision: str = "fp32") -> str:
    """'compute' or 'memory': which roof limits a workload of `intensity` FLOP/byte here."""
    peak = lim["peak_gflops"].get(precision) or lim["peak_gflops"].get("fp32")
    return "compute" if peak and intensity * lim["bandwidth_gbps"] >= peak else "memory"


def roofline_fields(row: dict[str, Any], lim: dict[str, Any] | None) -> dict[str, Any]:
    """`achieved_gflops` (2 x MACs x batch / latency) and `roofline_share` (that over the roofline
    bound at the row's intensity = 2 x MACs / memory access bytes) for a finished bench row.
    Rows without MACs, memory access or a latency get None for both."""
    out: dict[str, Any] = {"achieved_gflops": None, "roofline_share": None}
    macs, mem, ms = row.get("macs"), row.get("memory_access_bytes"), row.get("median_ms")
    if not macs or not ms:
        return out
    batch = row.get("batch") or 1
    # `macs` of a row is per image (profile at batch 1); memory access grows ~ with the batch
    achieved = 2 * macs * batch / (ms / 1e3) / 1e9
    out["achieved_gflops"] = round(achieved, 3)
    if mem and lim:
        intensity = 2 * macs / mem
        roof = roof_gflops(intensity, lim, row.get("precision", "fp32"))
        out["intensity"] = round(intensity, 3)
        out["roofline_share"] = round(achieved / roof, 4) if roof else None
    return out


def add_roofline(rows: list[dict[str, Any]], threads: int | None = None) -> None:
    """The sweep's hook: give every finished row `achieved_gflops` and `roofline_share`
    (in place). The machine's limits are measured once per environment and cached."""
    todo = [r for r in rows if r.get("median_ms") and "error" not in r]
    if not todo:
        return
    try:
        lim = limits(threads or todo[0].get("threads"))
    except (OSError, RuntimeError):  # limits unavailable: the rows still get achieved GFLOP/s
        lim = None
    for r in todo:
        r.update(roofline_fields(r, lim))
        if lim:  # the roof the share was taken against travels with the row (the report draws it)
            r["machine_peak_gflops"] = lim["peak_gflops"].get(r.get("precision", "fp32")) or lim["peak_gflops"]["fp32"]
            r["machine_bandwidth_gbps"] = lim["bandwidth_gbps"]


# --- the report's roofline section -------------------------------------------------------------


def roofline_section(rows: list[dict[str, Any]], out: Path, tag: str, where: str) -> list[str]:
    """Markdown for `bench.report`: a roofline plot with one point per (model, runtime) row
    and, per runtime, the rows furthest below their roof. Rows measured before the sweep
    recorded `roofline_share` are left out (re-run the sweep to get them)."""
    rs = [r for r in rows if r.get("roofline_share") and r.get("machine_bandwidth_gbps")]
    if not rs:
        return []
    _plot_roofline(rs, out / f"roofline_{tag}.png", f"Roofline ({where})")
    md = ["#### Roofline: how close each model runs to this machine's limits", "",
          "x: arithmetic intensity (2 x MACs / memory access bytes, leannet's static count); y: "
          "achieved GFLOP/s (2 x MACs x batch / median latency). The roof is min(peak, intensity x "
          "bandwidth) with peak matmul GFLOP/s and copy bandwidth measured here "
          "(`leannet.bench.machine`). A model's tensors often stay in cache, so a point can sit "
          "above the DRAM roof.", "", f"![roofline](roofline_{tag}.png)", "",
          "Furthest from the limit, per runtime (lowest share of the roof first):", "",
          "| runtime | model | precision | FLOP/B | GFLOP/s | roof GFLOP/s | share of roof |",
          "|---|---|---|---|---|---|---|"]
    for series in sorted({r.get("series", r["runtime"]) for r in rs}):
        mine = sorted((r for r in rs if r.get("series", r["runtime"]) == series), key=lambda r: r["roofline_share"])
        for r in mine[:3]:
            roof = r["achieved_gflops"] / r["roofline_share"]
            md.append(f"| {series} | {r['model']} | {r.get('precision', 'fp32')} | {r.get('intensity', 0):.1f} | "
                      f"{r['achieved_gflops']:.1f} | {roof:.1f} | {100 * r['roofline_share']:.0f}% |")
    return [*md, ""]


def _plot_roofline(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    peak = max(r["machine_peak_gflops"] for r in rows)
    bw = max(r["machine_bandwidth_gbps"] for r in rows)
    xs = np.logspace(-1, 2.5, 200)
    ax.plot(xs, np.minimum(peak, xs * bw), color="black", lw=1.5,
            label=f"roof: {peak:.0f} GFLOP/s, {bw:.0f} GB/s")
    series = sorted({r.get("series", r["runtime"]) for r in rows})
    cmap = plt.get_cmap("tab10")
    for i, s in enumerate(series):
        mine = [r for r in rows if r.get("series", r["runtime"]) == s]
        ax.scatter([r["intensity"] for r in mine], [r["achieved_gflops"] for r in mine],
                   color=cmap(i % 10), label=s, s=22)
        for r in mine:
            ax.annotate(r["model"], (r["intensity"], r["achieved_gflops"]), fontsize=6, alpha=0.7,
                        xytext=(3, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / byte of memory access)")
    ax.set_ylabel("achieved GFLOP/s")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight", dpi=130)
    plt.close(fig)
