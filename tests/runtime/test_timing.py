"""The timer and the contention monitor. No wall-clock time is asserted, and the default tier
does not depend on how busy the machine is (the monitor's readings are injected); the tests
that read the real machine (a real busy loop is *seen*; a starved core slows the probe) are
`slow`."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from leannet.runtime import timing


def _spin(seconds: float = 0.002) -> None:
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        pass


def test_usage_counts_only_other_processes():
    u = timing.Usage()
    a = timing.CpuSample(wall=0.0, own=1.0, busy=10.0, steal=0.5)
    b = timing.CpuSample(wall=2.0, own=2.5, busy=13.0, steal=0.9)  # we used 1.5 of the 3.0 busy s
    u.add(a, b)
    assert u.others_cores == pytest.approx(0.75) and u.steal_cores == pytest.approx(0.2)
    u.add(b, timing.CpuSample(wall=4.0, own=4.5, busy=14.0, steal=0.9))  # tick rounding: never < 0
    assert u.others == pytest.approx(1.5) and u.others_cores == pytest.approx(1.5 / 4)
    u.add(b, timing.CpuSample(wall=5.0, own=5.0, busy=None, steal=None))  # no /proc: unknown, not 0
    assert u.others_cores is None
    p = timing.Usage()
    p.add(timing.CpuSample(0.0, 0.0, 0.0, 0.0, stall=3.0), timing.CpuSample(2.0, 1.0, 1.0, 0.0, stall=3.5))
    assert p.pressure == pytest.approx(0.25) and p.others_cores == 0.0


def test_pressure_alone_flags_a_starved_neighbour():
    """A runtime whose spinning threads starve the other process: others took little CPU, but
    the kernel saw a task waiting for a core most of the time."""
    cell = timing.Cell("c", lambda: None)
    cell.rounds = [[0.001, 0.001]]
    cell.usage = timing.Usage(wall=1.0, others=0.1, steal=0.0, stall=0.5)
    s = timing.summarise(cell, threads=1)
    assert s["contended"] is True and s["contended_by"] == ["waiting"]
    cell.usage = timing.Usage(wall=1.0, others=0.1, steal=0.0, stall=0.02)
    s = timing.summarise(cell, threads=1)
    assert s["contended"] is False and s["contended_by"] == []


def test_each_reason_for_contention_is_recorded():
    """The row says what marked it: others' CPU (steal included), a waiting task, or more
    threads than the cores left free."""
    cell = timing.Cell("c", lambda: None)
    cell.rounds = [[0.001, 0.001]]
    n = len(timing.usable_cores())
    cell.usage = timing.Usage(wall=1.0, others=0.2, steal=0.1, stall=0.0)  # 0.3 cores taken
    assert timing.summarise(cell, threads=1)["contended_by"] == ["busy"]
    cell.usage = timing.Usage(wall=1.0, others=0.6, steal=0.0, stall=0.3)
    assert timing.summarise(cell, threads=n)["contended_by"] == ["busy", "waiting", "threads"]
    cell.usage = timing.Usage(wall=1.0, others=0.0, steal=0.0, stall=0.0)
    assert timing.summarise(cell, threads=n + 1)["contended_by"] == ["threads"]
    cell.usage = timing.Usage(wall=1.0, others=None, steal=None, stall=None)  # no /proc: unknown
    s = timing.summarise(cell, threads=1)
    assert s["contended"] is None and s["contended_by"] == []


def test_rounds_are_summarised_as_median_of_round_medians():
    cells = [timing.Cell(k, lambda: _spin(0.0005)) for k in "abc"]
    timing.time_rounds(cells, rounds=4, round_time=0.005, min_calls=3, warmup=1, settle=0.0)
    for c in cells:
        assert len(c.rounds) == 4 and all(len(t) >= 3 for t in c.rounds)
    s = timing.summarise(cells[0])
    assert s["rounds"] == 4 and s["repeats"] == sum(len(t) for t in cells[0].rounds)
    med = np.median([np.median(t) for t in cells[0].rounds]) * 1e3
    assert s["median_ms"] == pytest.approx(med)
    assert s["q25_ms"] <= s["median_ms"] <= s["q75_ms"] and s["iqr_ms"] == pytest.approx(s["q75_ms"] - s["q25_ms"])


def test_shuffled_order_differs_between_rounds():
    seen = []
    cells = [timing.Cell(k, lambda: None) for k in range(6)]
    real = timing._time_round

    def record(cell, *a):
        seen.append(cell.key)
        real(cell, *a)

    try:
        timing._time_round = record
        timing.time_rounds(cells, rounds=3, round_time=0.0005, min_calls=1, warmup=0, settle=0.0)
    finally:
        timing._time_round = real
    rounds = [seen[i * 6:(i + 1) * 6] for i in range(3)]
    assert all(sorted(r) == list(range(6)) for r in rounds)  # every cell once per round
    assert len({tuple(r) for r in rounds}) > 1  # not the same order every round


def test_alternating_cells_settle_before_timing_and_a_lone_cell_does_not(monkeypatch):
    """Counted on a fake clock (each call takes 1 ms of it), so a busy machine changes nothing."""
    clock = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])
    calls = {"a": 0, "b": 0, "lone": 0}

    def call(k):
        def f():
            calls[k] += 1
            clock[0] += 0.001
        return f

    cells = [timing.Cell(k, call(k)) for k in "ab"]
    timing.time_rounds(cells, rounds=2, round_time=0.01, min_calls=1, warmup=0, settle=0.05)
    for c in cells:  # 50 untimed 1 ms calls per round before the timed ones
        assert calls[c.key] - sum(map(len, c.rounds)) == 2 * 50
    lone = timing.Cell("lone", call("lone"))
    timing.time_rounds([lone], rounds=2, round_time=0.01, min_calls=1, warmup=0)
    assert calls["lone"] - sum(map(len, lone.rounds)) == pytest.approx(2 * timing.WARMUP_FRACTION * 10, abs=2)


def _machine(others_cores: float):
    """A fake /proc: the usable cores are busy with our own CPU time plus `others_cores` cores
    of other processes' work per second of wall time, whatever the real machine does."""

    def sample(cores=None):
        t = os.times()
        wall = time.perf_counter()
        own = t.user + t.system
        return timing.CpuSample(wall, own, own + others_cores * wall, 0.0, None)

    return sample


def test_the_monitor_turns_other_processes_work_into_a_verdict(monkeypatch):
    """time_rounds samples the machine around each timed stretch, summarise turns what others
    took into `others_cores` and the verdict: quiet and busy are injected, so the test holds on
    a busy machine (and beside another pytest-xdist worker)."""
    verdicts = {}
    for name, others in (("quiet", 0.0), ("busy", 0.9)):
        monkeypatch.setattr(timing, "cpu_sample", _machine(others))
        cell = timing.Cell(name, lambda: _spin(0.0005))
        timing.time_rounds([cell], rounds=2, round_time=0.01)
        verdicts[name] = timing.summarise(cell, threads=1)
    assert verdicts["quiet"]["contended"] is False and verdicts["quiet"]["others_cores"] == pytest.approx(0.0, abs=1e-6)
    assert verdicts["busy"]["contended"] is True and verdicts["busy"]["contended_by"][0] == "busy"
    assert verdicts["busy"]["others_cores"] == pytest.approx(0.9, abs=1e-3)


@pytest.mark.slow  # the real machine must be quiet for its first half: not a default-tier assumption
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the monitor reads /proc (Linux only)")
def test_busy_loop_is_detected_and_quiet_run_is_not():
    cell = timing.Cell("quiet", _spin)
    timing.time_rounds([cell], rounds=3, round_time=0.3)
    quiet = timing.summarise(cell, threads=1)
    busy_loop = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # let it start spinning
        cell = timing.Cell("busy", _spin)
        timing.time_rounds([cell], rounds=3, round_time=0.3)
        busy = timing.summarise(cell, threads=1)
    finally:
        busy_loop.kill()
        busy_loop.wait()
    assert quiet["contended"] is False, f"a quiet machine read as contended: {quiet['others_cores']} cores"
    assert busy["contended"] is True
    assert busy["others_cores"] >= quiet["others_cores"] + 0.6  # the loop takes most of a core


def test_measure_one_call_gives_the_same_fields():
    r = timing.measure(lambda: _spin(0.0002), batch=4, min_time=0.03, rounds=3)
    assert r["rounds"] == 3 and r["throughput_ips"] == pytest.approx(4e3 / r["median_ms"])
    assert r["min_ms"] <= r["median_ms"] <= r["p99_ms"]


def test_probe_summarises_its_rounds():
    probe = timing.Probe()
    timing.time_rounds([probe], rounds=3, round_time=0.02, min_calls=2, warmup=1)
    medians = sorted(np.mean(t) * 1e3 for t in probe.rounds)
    speed = probe.speed()
    assert speed["probe_ms"] == pytest.approx(medians[1], rel=1e-3)
    assert speed["probe_iqr"] == pytest.approx((np.percentile(medians, 75) - np.percentile(medians, 25)) / medians[1],
                                               abs=1e-3)


@pytest.mark.slow  # compares two real timings: another process on the machine moves them
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_probe_reads_slow_on_a_starved_core():
    """What the probe is for: the machine runs slow with nothing for /proc to blame (here
    faked by sharing our one core with two spinning processes). Generous threshold."""
    mine = os.sched_getaffinity(0)
    core = min(mine)
    os.sched_setaffinity(0, {core})
    loops = []
    try:
        quiet = timing.Probe()
        timing.time_rounds([quiet], rounds=3, round_time=0.1)
        loops = [subprocess.Popen([sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{core}}})\nwhile True: pass"])
                 for _ in range(2)]
        time.sleep(0.5)
        starved = timing.Probe()
        timing.time_rounds([starved], rounds=3, round_time=0.1)
    finally:
        for p in loops:
            p.kill()
            p.wait()
        os.sched_setaffinity(0, mine)
    assert starved.speed()["probe_ms"] > 1.5 * quiet.speed()["probe_ms"]


def test_probe_runs_its_work_on_every_thread_asked():
    import threading

    before = set(threading.enumerate())  # by thread, not name: earlier probes' pools use the same names
    timing.Probe(threads=2).call()
    new = [t for t in threading.enumerate() if t.name.startswith("leannet-probe") and t not in before]
    assert len(new) == 2, new  # one worker per thread of the cells it sits beside
