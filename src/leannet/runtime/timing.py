"""Timing you can trust on a shared machine: interleaved rounds and a contention monitor.

`time_rounds(cells, rounds)` times every cell in each of `rounds` rounds, in a fresh random
order per round, so drift in the machine (clock boost, a neighbour waking up) hits all cells
alike. In a round a cell is warmed up, then called until `round_time` seconds and
`min_calls` calls are reached. A cell's latency is the median over its rounds of each
round's median call; its spread is the inter-quartile range of those round medians.

While a cell runs, the monitor reads the CPU time the machine spent on the cores this
process may use (/proc/stat, per core) and the CPU time of this process (its threads
included): the difference is work done by other processes, reported as `others_cores`
(average cores taken from us during the cell), with hypervisor steal time as
`steal_cores`, and the kernel's CPU pressure (/proc/pressure/cpu, "some"): the fraction of
the time at least one task was ready to run but waiting for a core. A cell is `contended`
when others + steal exceed `CONTENDED_CORES` or the pressure exceeds `CONTENDED_PRESSURE`:
its timing competed with something else and reads slow (one busy core made a 2-thread sweep
read up to 2.3x slow). Consumption alone misses one case: a runtime whose spinning threads
starve the other process (OpenVINO read 4-5x slow while the busy loop got 0.2 cores); the
waiting task shows in the pressure (~0.5 with one busy core, <= 0.03 quiet, measured here).
Where /proc is missing (macOS, Windows) the monitor reports None, never a false "quiet".

What /proc cannot show: a virtual machine whose host is busy (neighbours on the same
physical cores, a lowered clock) runs every cell slower with no steal, no pressure and no
other process in sight. The `Probe`, a fixed workload on as many threads as the cells use,
timed in every round beside the cells, measures the machine's speed itself: a sweep whose
probe reads slower than the fastest probe this machine has on record in the same environment
ran on a slowed machine (see `leannet.bench.sweep`). The measurements behind the thresholds
below are in docs/dev/.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import random
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CONTENDED_CORES = 0.25  # other processes' average use of our cores that makes a cell suspect
CONTENDED_PRESSURE = 0.15  # fraction of the time some task waited for a core (PSI "some")
SLOWED = 1.10  # a probe this much over the fastest probe on record: the machine itself ran slow
UNSTEADY = 0.10  # the probe's round-to-round spread (IQR / median) above which the machine's speed moved
# Seconds a cell runs untimed each round when cells alternate. The runtime timed just before
# leaves its workers spinning (ONNX Runtime's intra-op pool, by default) for 50-100 ms, and the
# next cell's calls read 1.2-3.5x slow meanwhile (measured on a 2-vCPU EPYC: eager, ORT and
# OpenVINO after an ORT cell; recovered by 0.1-0.2 s). A settle past that keeps every runtime
# at its default threading and still times it as it runs alone.
SETTLE = 0.2
# The version of how a cell is timed (settle, warm-up, probe workload): part of a result's
# fingerprint, so rows timed another way are re-measured rather than mixed with these.
METHOD = 3
WARMUP_FRACTION = 0.2  # of each round, run untimed first: caches, clocks and thread pools settle
MIN_CALLS = 3  # timed calls per round at least: a round median of fewer is one call's noise
WARMUP_CALLS = 2  # untimed calls per round at least: the first call of a round picks kernels
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def usable_cores() -> list[int]:
    """The cores this process may run on (its affinity mask, not the machine's core count)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


@dataclass
class CpuSample:
    wall: float
    own: float  # CPU seconds of this process, all threads
    busy: float | None  # CPU seconds the usable cores spent on anything but idle/iowait/steal
    steal: float | None  # CPU seconds the hypervisor took from the usable cores
    stall: float | None = None  # seconds some task waited for a CPU (PSI "some" total)


def cpu_sample(cores: Sequence[int] | None = None) -> CpuSample:
    t = os.times()
    wall = time.perf_counter()
    busy = steal = None
    wanted = {f"cpu{c}" for c in (usable_cores() if cores is None else cores)}
    try:
        with open("/proc/stat") as f:
            busy = steal = 0.0
            for line in f:
                if not line.startswith("cpu") or line.startswith("cpu "):
                    continue
                parts = line.split()
                if parts[0] not in wanted:
                    continue
                v = [int(p) for p in parts[1:]]
                # user nice system idle iowait irq softirq steal (guest is inside user)
                busy += (v[0] + v[1] + v[2] + v[5] + v[6]) / _TICK
                steal += (v[7] if len(v) > 7 else 0) / _TICK
    except OSError:
        busy = steal = None
    return CpuSample(wall, t.user + t.system, busy, steal, _stall())


def _stall() -> float | None:
    try:
        with open("/proc/pressure/cpu") as f:
            for line in f:
                if line.startswith("some"):
                    return int(line.rsplit("total=", 1)[1]) / 1e6
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class Usage:
    """What other processes took from our cores between two samples."""

    wall: float = 0.0
    others: float | None = 0.0  # CPU seconds
    steal: float | None = 0.0
    stall: float | None = 0.0  # seconds some task waited for a core

    def add(self, a: CpuSample, b: CpuSample) -> None:
        self.wall += b.wall - a.wall
        if a.stall is None or b.stall is None or self.stall is None:
            self.stall = None
        else:
            self.stall += max(0.0, b.stall - a.stall)
        if a.busy is None or b.busy is None or self.others is None:
            self.others = self.steal = None
            return
        # Both counters tick at 1/_TICK s: a short span can read slightly negative.
        self.others += max(0.0, (b.busy - a.busy) - (b.own - a.own))
        self.steal += max(0.0, b.steal - a.steal)

    @property
    def others_cores(self) -> float | None:
        return None if self.others is None or self.wall <= 0 else self.others / self.wall

    @property
    def pressure(self) -> float | None:
        return None if self.stall is None or self.wall <= 0 else min(1.0, self.stall / self.wall)

    @property
    def steal_cores(self) -> float | None:
        return None if self.steal is None or self.wall <= 0 else self.steal / self.wall


@dataclass
class Cell:
    """One thing to time: `call` runs one inference of `batch` items."""

    key: Any
    call: Callable[[], Any]
    batch: int = 1
    device_timer: Callable[[Callable[[], Any]], float] | None = None
    rounds: list[list[float]] = field(default_factory=list)  # seconds per call, per round
    usage: Usage = field(default_factory=Usage)

    def once(self) -> float:
        if self.device_timer is not None:
            return self.device_timer(self.call)
        t0 = time.perf_counter()
        self.call()
        return time.perf_counter() - t0

    def reset(self) -> None:
        self.rounds, self.usage = [], Usage()


def _time_round(cell: Cell, round_time: float, min_calls: int, warmup: int, cores, settle: float) -> None:
    t_end = time.perf_counter() + max(WARMUP_FRACTION * round_time, settle)
    n = 0
    while n < warmup or time.perf_counter() < t_end:  # caches and clocks settle per round
        cell.once()
        n += 1
    before = cpu_sample(cores)
    times: list[float] = []
    t_end = time.perf_counter() + round_time
    while len(times) < min_calls or time.perf_counter() < t_end:
        times.append(cell.once())
    cell.usage.add(before, cpu_sample(cores))
    cell.rounds.append(times)


def time_rounds(cells: Sequence[Cell], rounds: int = 5, round_time: float = 0.2, min_calls: int = MIN_CALLS,
                warmup: int = WARMUP_CALLS, seed: int = 0, on_round: Callable[[int], None] | None = None,
                settle: float | None = None) -> None:
    """Time every cell in each of `rounds` rounds, cells shuffled anew each round. Each round
    starts with an untimed warm-up of WARMUP_FRACTION of `round_time`, and at least `settle` seconds
    (default `SETTLE` when several cells alternate, none for one cell that follows itself)."""
    rng = random.Random(seed)
    cores = usable_cores()
    order = list(cells)
    if settle is None:
        settle = SETTLE if len(order) > 1 else 0.0
    for r in range(rounds):
        rng.shuffle(order)
        for cell in order:
            _time_round(cell, round_time, min_calls, warmup, cores, settle)
        if on_round is not None:
            on_round(r)


# The probe's work per thread (part of timing.METHOD: change them and bump it). Sized together
# to about 1.5 ms: long enough to read, short beside a round.
PROBE_HASH_BYTES = 1 << 19  # 512 KiB hashed: integer work
PROBE_SINES = 1 << 15  # 32 Ki sines: float math
PROBE_STREAM_BYTES = 8 << 20  # 8 MiB summed: larger than a core's share of last-level cache


class Probe(Cell):
    """The machine's own speed: a fixed workload run at once on `threads` threads, as a model's
    parallel region runs, so one slowed core slows it as it slows a 2-thread model. Each thread
    does integer work (SHA-256), float math (sine) and streams memory of its own (the
    last-level cache and memory a model's weights stream through, which a neighbour on the
    shared cache slows while compute holds). All release the GIL. About 1.5 ms, timed in every
    round like a cell; it depends on no model and no runtime, so its time changes only with the
    machine."""

    def __init__(self, threads: int = 1) -> None:
        import hashlib
        from concurrent.futures import ThreadPoolExecutor

        data = np.random.default_rng(0).integers(0, 255, PROBE_HASH_BYTES, dtype=np.uint8).tobytes()
        vec = np.linspace(0.0, 10.0, PROBE_SINES)
        memory = np.ones((max(threads, 1), PROBE_STREAM_BYTES // 4), dtype=np.float32)

        def part(i: int = 0) -> None:
            hashlib.sha256(data).digest()
            np.sin(vec).sum()
            memory[i].sum()

        if threads <= 1:
            work = part
        else:
            import threading

            pool = ThreadPoolExecutor(threads, thread_name_prefix="leannet-probe")
            # Each part waits for the others before it works, so the parts run at once on
            # `threads` threads: without it, a worker done with its part early could take the
            # next one too (the pool starts a thread only when none is idle), and the probe
            # would run part of its work serially (seen on a loaded 2-vCPU host).
            start = threading.Barrier(threads)

            def together(i: int) -> None:
                start.wait()
                part(i)

            def work() -> None:
                for f in [pool.submit(together, i) for i in range(threads)]:
                    f.result()

        super().__init__("probe", work)
        if threads > 1:
            weakref.finalize(work, pool.shutdown, wait=False)  # the pool lives as long as its call

    def speed(self) -> dict[str, float]:
        ms, iqr = round_means(self)
        return {"probe_ms": ms, "probe_iqr": iqr}


def round_means(cell: Cell) -> tuple[float, float]:
    """A reference workload's speed: the median over rounds of each round's mean ms, and their
    spread (IQR / median). The mean, not the median call: time slices taken by an unseen
    neighbour land on a few calls."""
    means = np.array([np.mean(t) for t in cell.rounds]) * 1e3
    q25, q50, q75 = np.percentile(means, [25, 50, 75])
    return round(float(q50), 4), round(float((q75 - q25) / q50), 4)


def summarise(cell: Cell, threads: int | None = None, contended_cores: float = CONTENDED_CORES,
              contended_pressure: float = CONTENDED_PRESSURE) -> dict[str, Any]:
    """Latency figures (ms) and the contention verdict of a timed cell."""
    medians = np.array([np.median(t) for t in cell.rounds]) * 1e3
    pooled = np.concatenate([np.asarray(t) for t in cell.rounds]) * 1e3
    median = float(np.median(medians))
    q25, q75 = (float(v) for v in np.percentile(medians, [25, 75]))
    p10, p90, p99 = np.percentile(pooled, [10, 50, 90, 99])[[0, 2, 3]]
    others, steal, pressure = cell.usage.others_cores, cell.usage.steal_cores, cell.usage.pressure
    n_cores = len(usable_cores())
    taken = None if others is None else others + (steal or 0.0)
    why = [] if taken is None else [name for name, hit in (
        ("busy", taken > contended_cores),
        ("waiting", pressure is not None and pressure > contended_pressure),
        ("threads", threads is not None and threads > n_cores - taken + 0.5)) if hit]
    return {
        "median_ms": median, "q25_ms": q25, "q75_ms": q75, "iqr_ms": q75 - q25,
        "round_medians_ms": [round(float(m), 4) for m in medians],
        "p90_ms": float(p90), "p99_ms": float(p99), "min_ms": float(pooled.min()),
        "mean_ms": float(pooled.mean()), "spread": float((p90 - p10) / median),
        "rounds": len(cell.rounds), "repeats": int(pooled.size),
        "throughput_ips": float(cell.batch * 1e3 / median),
        "others_cores": None if others is None else round(others, 3),
        "steal_cores": None if steal is None else round(steal, 3),
        "cpu_pressure": None if pressure is None else round(pressure, 3),
        "free_cores": None if taken is None else round(max(0.0, n_cores - taken), 2),
        "contended": None if taken is None else bool(why),
        "contended_by": why,  # what marked it: others on our cores, a task kept waiting, too few free cores
    }


def measure(call: Callable[[], Any], batch: int = 1, min_time: float = 0.6, rounds: int = 3,
            device_timer: Callable[[Callable[[], Any]], float] | None = None,
            threads: int | None = None) -> dict[str, Any]:
    """Time one call alone (a quick check, e.g. export's fp32-vs-INT8 line or detector FPS):
    `rounds` rounds of min_time / rounds seconds; same figures as a sweep's cell."""
    cell = Cell("one", call, batch, device_timer)
    time_rounds([cell], rounds=rounds, round_time=min_time / rounds)
    return summarise(cell, threads)


# --- memory --------------------------------------------------------------------------------------


def _rss_kb(name: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> int | None:
    """Reset the resident-set high-water mark (Linux); returns the current RSS in KiB."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # hand freed heap back to the OS first
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # 5 = reset the RSS high-water mark
    except OSError:
        return None
    return _rss_kb("VmRSS")


def peak_rss_growth_mb(base_kb: int | None) -> float | None:
    hwm = _rss_kb("VmHWM")
    return None if base_kb is None or hwm is None else (hwm - base_kb) / 1024
