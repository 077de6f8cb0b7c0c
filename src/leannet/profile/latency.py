"""Measured latency: one timing loop, an environment fingerprint, and a resumable sweep.

Timing (`measure`): warm-up calls (at least `warmup`, and at least 10% of `min_time`), then
timed calls until both `min_time` seconds and `min_repeats` calls are reached. Reported:
median, p90, p99, min, mean (ms), spread = (p90 - p10) / median, throughput = batch / median.

Peak memory on CPU is the growth of the process's resident set during warm-up and timing
(Linux: freed heap is returned with malloc_trim, the high-water mark VmHWM is reset through
/proc/self/clear_refs after the session is built, then read back): the activation and
workspace memory inference needs, without the weights already loaded. It is approximate: a
runtime that allocates its arena while building the session (ONNX Runtime) or memory kept by
an allocator from an earlier row shows as little growth; for an isolated figure, benchmark
one model per process. None where /proc is missing. On CUDA it is torch.cuda.max_memory_allocated over the same span.

The sweep (`bench`) appends one JSON row per model x runtime x batch to OUT/results.jsonl
as soon as it is measured; a re-run skips the rows already there (same model, runtime,
batch, image size, threads and form), so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import gc
import importlib.metadata
import json
import os
import platform
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from leannet import __version__
from leannet.errors import LeannetError, UnknownModelError
from leannet.profile.runtimes import Runtime, Session, get_runtime

# The seed papers' models and the baselines they compare against, at their base sizes.
# Sized so that `make run` (eager + ONNX Runtime + OpenVINO, batch 1) fits ~10 min on 2 cores.
PRESETS: dict[str, tuple[str, ...]] = {
    "seeds": (
        "pplcnet_x0_5", "pplcnet_x1_0", "ghostnet_x1_0", "g_ghost_regnetx_032", "mobileone_s0",
        "mobileone_s1", "repvgg_a0", "tresnet_m", "snet146", "mobilenetv1_x1_0",
        "mobilenetv2_x1_0", "mobilenetv3_large_x1_0", "mobilenetv3_small_x1_0",
        "shufflenetv2_x1_0", "resnet50", "regnetx_032",
    ),
    "tiny": ("pplcnet_x0_25", "mobilenetv3_small_x1_0"),  # a quick smoke run
}
DEFAULT_RUNTIMES = ("eager", "onnxruntime", "openvino")
KEY = ("model", "runtime", "batch", "img", "threads", "deployed")
FORM = {True: "deployed: re-parameterised, BatchNorm folded", False: "train-time form, eval mode"}


# --- timing ------------------------------------------------------------------------------


def _rss_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> int | None:
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # hand freed heap back to the OS first
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # 5 = reset the RSS high-water mark
    except OSError:
        return None
    return _rss_kb("VmRSS")


def measure(session: Session, batch: int, min_time: float = 1.0, warmup: int = 3,
            min_repeats: int = 10, max_repeats: int = 100_000) -> dict[str, Any]:
    """Time `session` (see the module docstring for the protocol). Never raises on noise."""
    cuda = session.device == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = None
    else:
        base = _reset_peak_rss()
    t_end = time.perf_counter() + 0.1 * min_time
    n = 0
    while n < warmup or time.perf_counter() < t_end:
        session.timed()
        n += 1
    times: list[float] = []
    t_end = time.perf_counter() + min_time
    while len(times) < max_repeats and (len(times) < min_repeats or time.perf_counter() < t_end):
        times.append(session.timed())
    if cuda:
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        hwm = _rss_kb("VmHWM")
        peak_mb = (hwm - base) / 1024 if base is not None and hwm is not None else None
    ms = np.asarray(times) * 1e3
    p10, median, p90, p99 = np.percentile(ms, [10, 50, 90, 99])
    return {
        "median_ms": float(median), "p90_ms": float(p90), "p99_ms": float(p99),
        "min_ms": float(ms.min()), "mean_ms": float(ms.mean()),
        "spread": float((p90 - p10) / median), "repeats": len(times), "warmup": n,
        "throughput_ips": float(batch * 1e3 / median), "peak_mem_mb": peak_mb,
    }


def default_threads() -> int:
    """The cores this process may run on (its affinity mask, not the machine's core count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def environment(threads: int) -> dict[str, Any]:
    """What a timing depends on besides the model: CPU, cores, threads, load, versions."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                cpu = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    versions = {"python": platform.python_version(), "torch": torch.__version__, "leannet": __version__}
    for dist in ("onnxruntime", "openvino", "onnx", "numpy"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    return {
        "cpu": cpu,
        "cpu_features": sorted(flags & {"avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8", "neon"}),
        "logical_cores": os.cpu_count(),
        "usable_cores": default_threads(),
        "threads": threads,
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "os": platform.platform(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "versions": versions,
    }


# --- sweep -------------------------------------------------------------------------------


def row_key(row: dict[str, Any]) -> tuple:
    return tuple(row.get(k) for k in KEY)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a results file; a line cut short by an interruption is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _drop_partial_line(path: Path) -> None:
    """Cut a last line left unfinished by a kill, so the next row starts on a line of its own."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        os.truncate(path, data.rfind(b"\n") + 1)


def _append(path: Path, row: dict[str, Any]) -> None:
    # Appending one line and fsyncing keeps every finished row; a crash mid-write leaves at
    # most one partial last line, which read_rows skips.
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def resolve_models(models: Iterable[str], preset: str | None = None) -> tuple[list[str], list[str]]:
    """Canonical names to benchmark, and notes for preset members not registered (yet)."""
    from leannet.registry import resolve

    names, notes = [resolve(m) for m in models], []
    if preset is not None:
        if preset not in PRESETS:
            raise LeannetError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        for m in PRESETS[preset]:
            try:
                names.append(resolve(m))
            except UnknownModelError:
                notes.append(f"preset {preset}: {m} is not registered in this build, skipped")
    if not names:
        raise LeannetError("nothing to benchmark: name models or use --preset")
    return list(dict.fromkeys(names)), notes


def resolve_runtimes(names: Sequence[str]) -> tuple[list[Runtime], list[str]]:
    """Runtimes that can run here, and one note per runtime that can't."""
    usable, notes = [], []
    for name in names:
        rt = get_runtime(name)
        if rt.available():
            usable.append(rt)
        else:
            notes.append(f"skipping runtime {name}: {rt.requires} is not available")
    return usable, notes


def _static_costs(model: nn.Module, input_size: tuple[int, int, int], batch: int) -> dict[str, int]:
    from leannet.profile.complexity import profile_model

    totals = profile_model(model, input_size, batch)["totals"]
    return {k: totals[k] for k in ("params", "macs", "memory_access_bytes", "activations")}


def _published(name: str) -> dict[str, Any]:
    from leannet.registry import model_info

    p = model_info(name).published
    return {"published_top1": p.top1, "published_latency_ms": p.latency_ms,
            "published_latency_hw": p.latency_hw, "published_source": p.source}


def bench(
    models: Sequence[str] = (),
    preset: str | None = None,
    runtimes: Sequence[str] = DEFAULT_RUNTIMES,
    batches: Sequence[int] = (1,),
    threads: int | None = None,
    img: int = 224,
    min_time: float = 0.5,
    out: str | Path = "runs/bench",
    deployed: bool = True,
    report: bool = False,
    progress: bool = True,
) -> Path:
    """Benchmark every model x runtime x batch, appending rows to OUT/results.jsonl.

    Models run in their deployed form (`leannet.reparameterize`: branches merged, BN folded)
    unless `deployed=False`; every row says which. Rows already in the file are skipped.
    With `report=True` also writes OUT/report.md and its plots. Returns the results path.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from leannet.deploy.reparam import reparameterize
    from leannet.factory import create_model

    names, notes = resolve_models(models, preset)
    rts, rt_notes = resolve_runtimes(runtimes)
    threads = threads or default_threads()
    out = Path(out)
    results = out / "results.jsonl"
    _drop_partial_line(results)
    done = {row_key(r) for r in read_rows(results) if "error" not in r}
    env = environment(threads)
    console = Console(stderr=True)
    for note in notes + rt_notes:
        console.print(f"[yellow]note:[/] {note}")

    todo = [(n, b, rt) for n in names for b in batches for rt in rts
            if (n, rt.name, b, img, threads, deployed) not in done]
    console.print(f"{len(names)} models ({FORM[deployed]}) x {len(rts)} runtimes x {len(batches)} batch "
                  f"sizes, {threads} threads: {len(todo)} to measure, "
                  f"{len(names) * len(rts) * len(batches) - len(todo)} already in {results}")
    torch_threads = torch.get_num_threads()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not progress) as bar, \
            tempfile.TemporaryDirectory(prefix="leannet-bench-") as tmp:
        task = bar.add_task("bench", total=len(todo))
        for name in dict.fromkeys(n for n, _, _ in todo):
            base = create_model(name).eval()
            model = reparameterize(base) if deployed else base
            in_chans = base.pretrained_cfg.input_size[0]
            for batch in dict.fromkeys(b for n, b, _ in todo if n == name):
                torch.manual_seed(0)
                x = torch.randn(batch, in_chans, img, img)
                with torch.inference_mode():
                    ref = model(x).float().numpy()
                common = {"model": name, "batch": batch, "img": img, "threads": threads,
                          "deployed": deployed, "form": FORM[deployed],
                          **_static_costs(model, (in_chans, img, img), batch), **_published(name)}
                workdir = Path(tmp) / f"{name}_b{batch}"
                for _, _, rt in [t for t in todo if t[0] == name and t[1] == batch]:
                    bar.update(task, description=f"{name} {rt.name} b{batch}")
                    row = {**common, "runtime": rt.name}
                    try:
                        session = rt.prepare(model, x, threads, workdir)
                        diff = np.abs(session() - ref).max()
                        row |= {"max_abs_diff": float(diff),
                                "max_rel_diff": float(diff / max(np.abs(ref).max(), 1e-12)),
                                **measure(session, batch, min_time), "runtime_info": session.info}
                    except Exception as e:  # one broken runtime must not lose the sweep
                        row["error"] = f"{type(e).__name__}: {e}".splitlines()[0][:300]
                        console.print(f"[red]error:[/] {name} {rt.name} b{batch}: {row['error']}")
                    row |= {"env": env, "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
                    _append(results, row)
                    bar.advance(task)
    torch.set_num_threads(torch_threads)  # the runtimes pin it; give the caller theirs back
    if report:
        from leannet.profile.report import write_report

        write_report(out)
    return results
