"""Can the benchmark be trusted? Three checks of `leannet bench` on this machine (issue 14):

(a) A/A repeatability: the same sweep twice in a row on a quiet machine (quiet1, quiet2); per
    cell |log(t2 / t1)|, target: median <= 5%. Also printed for each two sweeps with a block
    of isolated timings between them (minutes apart): on a VM whose host changes speed over
    minutes, the gap shows how much of a miss is the host's and how much the sweep's.
(b) Contention: the same sweep with one core held busy by `python -c "while True: pass"`;
    every cell that reads more than 1.25x its quiet value must be flagged (target: 0 unflagged).
(c) Isolation: each cell timed alone in a fresh process (one model, one runtime, the runtime's
    own default threading, ONNX Runtime spinning on; run untimed for STEADY seconds, then
    timed in the sweep's rounds, each followed by a round of the machine probe) against the
    sweep's figure; target: within 5%. The isolated timings run in blocks (GROUPS per pass)
    after quiet2, with a sweep after each block; a timing is compared with the geometric mean of
    the sweeps just before and after its block, so a machine that drifts over those minutes hits
    both sides alike. Each cell is timed alone twice (`--isolated-passes`), the second pass in
    reverse order. This is also the check that the sweep's settings (cells alternating, ONNX
    Runtime spinning as by default) do not slow a runtime measured alone.

Every sweep and every isolated timing also times leannet's machine probe (a fixed workload
on the same threads), and every sweep one sentinel network per runtime: when a sweep reads
slow with nothing in /proc to show for it, they tell whether the machine itself, or the
runtime's threads, ran slower then (a busy VM host). (a) is also given over the cells whose
probe and sentinel read the same machine in both sweeps.

(a) and (c) are also given with each process's latencies in units of its own probe: on this
workplace's VMs a process minutes later can find the host 4-6% slower (the probe moves with
every cell), which the raw comparison reads as leannet's error.

Run on an otherwise idle machine: `python benchmarks/bench_trust.py` (~50 min on 2 cores; ~10 more
with `--spread 30`).
Prints a table and writes runs/bench_trust/trust.json (one row per cell) and raw.json (every
sweep's and isolated process's rows); `--analyse DIR` prints the checks again from DIR/raw.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from leannet.bench.sweep import default_threads, environment
from leannet.runtime.timing import SLOWED

MODELS = ("pplcnet_x0_5", "pplcnet_x1_0", "ghostnet_x1_0", "mobileone_s0", "repvgg_a0",
          "mobilenetv3_large_x1_0", "shufflenetv2_x1_0", "resnet50")

ISOLATED = r"""
import json, sys, time
import numpy as np, torch
from leannet import create_model, reparameterize
from leannet.deploy.onnx import export_onnx
sys.path.insert(0, __BENCHMARKS__)  # benchmarks/sentinel.py
import sentinel
from leannet.runtime import runners, timing
name, runtime, threads, min_time, rounds, steady, spread, tmp = (
    sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]),
    float(sys.argv[7]), sys.argv[8])
torch.set_num_threads(threads)
model = reparameterize(create_model(name).eval())
x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
if runtime == "eager":
    r = runners.torch_runner(model)
else:
    path = export_onnx(model, f"{tmp}/{name}.onnx", input_size=(3, 224, 224), batch=1)
    r = (runners.onnxruntime_runner(path, threads) if runtime == "onnxruntime"   # spinning on: its default
         else runners.openvino_runner(path, threads))
call = r.bind(x)


def run_until(t_end):
    while time.perf_counter() < t_end:
        call()


# run flat out before timing: a process just started reads fast (see STEADY)
run_until(time.perf_counter() + steady)
# The sweep's rounds, one every spread / rounds seconds with the cell running untimed between
# them (see SPREAD), each followed by a round of the machine probe, which so reads the same moments.
cell, probe = timing.Cell("one", call), timing.Probe(threads)
t0 = time.perf_counter()
for i in range(rounds):
    run_until(t0 + i * spread / rounds)
    timing.time_rounds([cell], rounds=1, round_time=min_time / rounds)
    timing.time_rounds([probe], rounds=1, round_time=0.2)
out = timing.summarise(cell, threads)
# the runtime's own speed right after, to tell drift from a biased sweep
guard = sentinel.sentinels([runtime], threads)
timing.time_rounds(list(guard.values()), rounds=5, round_time=0.2)
print(json.dumps(out | probe.speed() | sentinel.reading(guard, runtime)))
"""


# Seconds an isolated process runs its cell untimed before timing it. Right after start-up
# (imports, building, export: mostly one core) this VM runs 7-10% faster for a few seconds: in
# fresh processes timing one cell in 12 rounds of 1.8 s, the first two rounds read 0.93x the
# median of the rest (2026-12-04, 12 processes, standard error 4%; run 15's isolated processes:
# last of 5 rounds / first 1.08, 16 of 24 rising). A sweep's cells are timed minutes into
# sustained load, so an isolated timing started cold compares a boosted machine with a steady
# one. OpenVINO's benchmark_app runs 60 s for the same reason.
STEADY = 15.0

# Seconds over which an isolated process spreads its timed rounds (0: back to back), the cell
# running untimed between them. The host changes speed within seconds (a 2-thread probe swung
# 1.37-2.26 ms across 36 s of 0.24-s rounds: its memory part +-25%, one thread hashing +-5%, a
# neighbour on the shared cache), so spreading looked like it would steady the isolated side, as
# a sweep spreads a cell's rounds over its run. Run 17 (30 s) says no: a cell's two isolated
# passes still differed by a median of 17.9% (run 16, back to back: 16.1%); the host's slow
# phases last minutes. Off by default; `--spread` to try it on another host.
SPREAD = 0.0

# Blocks of isolated timings per pass, each followed by a sweep that with the one before it
# brackets the block. Runs 12-18 timed all isolated processes (~20 min) between quiet2 and quiet3
# and compared them with the two sweeps' geometric mean; the host moved 13-22% between those
# two sweeps in runs 15-18 (quiet3 / quiet2 0.78-1.08), so the mean stood for no moment the
# isolated processes saw. Two blocks per pass put each timing within ~8 min of both its sweeps.
GROUPS = 2


def same_machine(ref: dict, row: dict) -> bool:
    """Whether `row` was timed on the machine `ref` saw: its probe and its runtime's sentinel
    within SLOWED of `ref`'s (False when there is nothing to compare)."""
    moved = [abs(math.log(ref[f] / row[f])) for f in ("probe_ms", "sentinel_ms") if ref.get(f) and row.get(f)]
    return bool(moved) and max(moved) <= math.log(SLOWED)


def sweep(models, runtimes, out: Path, min_time: float, rounds: int, retries: int) -> dict:
    """One `leannet bench` run in a process of its own, as a user runs it (two sweeps in one
    process are not independent: the second ran 5-40% slower here, every cell, see the doc)."""
    cmd = [sys.executable, "-m", "leannet", "bench", *models, "--runtimes", ",".join(runtimes), "--force",
           "--out", str(out), "--min-time", str(min_time), "--rounds", str(rounds), "--retries", str(retries),
           "--format", "json", "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return {(r["model"], r["runtime"]): r for r in rows if "error" not in r}


def isolated(model: str, runtime: str, threads: int, min_time: float, rounds: int, steady: float,
             spread: float, tmp: Path) -> dict:
    """One cell alone in a fresh process, timed as a sweep times it (`rounds` rounds of
    min_time / rounds seconds, spread over `spread` seconds) after `steady` seconds of running
    it untimed."""
    tmp.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([sys.executable, "-c", ISOLATED.replace("__BENCHMARKS__", repr(str(Path(__file__).parent))), model, runtime, str(threads), str(min_time), str(rounds),
                          str(steady), str(spread), str(tmp)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def isolated_blocks(cells: list[tuple[str, str]], passes: int, groups: int, threads: int, min_time: float,
                    rounds: int, steady: float, spread: float, tmp: Path,
                    run_sweep: Callable[[], dict]) -> tuple[dict[str, dict], list[dict]]:
    """Each cell alone in a fresh process, `passes` times, in blocks of len(cells) / `groups`
    cells with a sweep after each block. An isolated timing is compared with the sweeps just
    before and after its block (the first block's "before" is quiet2), minutes apart rather than
    the whole isolated phase apart: this host's speed moves 13-22% over 20 minutes (quiet2 vs
    quiet3 in runs 15-18), more than the 5% that (c) asks of leannet. Every other pass runs
    in reverse order, so a slow phase of the host that covers part of one pass hits a cell once
    (in run 12 the first 8 isolated processes ran in one and read up to 1.6x slow). Returns the
    bracket sweeps by name (s1, s2, ...) and one row per isolated timing, with its pass and the
    names of the sweeps around it."""
    size = math.ceil(len(cells) / groups)
    blocks = [cells[i:i + size] for i in range(0, len(cells), size)]
    brackets: dict[str, dict] = {}
    timings: list[dict] = []
    before = "q2"
    for i in range(passes):
        for block in (blocks if i % 2 == 0 else [b[::-1] for b in blocks[::-1]]):
            done = [(k, isolated(*k, threads, min_time, rounds, steady, spread, tmp)) for k in block]
            after = f"s{len(brackets) + 1}"
            brackets[after] = run_sweep()
            timings += [r | {"model": k[0], "runtime": k[1], "pass": i, "before": before, "after": after}
                        for k, r in done]
            before = after
    return brackets, timings


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--runtimes", default="eager,onnxruntime,openvino")
    p.add_argument("--min-time", type=float, default=3.0, help="per cell, as leannet bench")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--out", default="runs/bench_trust")
    p.add_argument("--skip-isolated", action="store_true")
    p.add_argument("--isolated-passes", type=int, default=2,
                   help="times each cell is timed alone (every other pass in reverse order)")
    p.add_argument("--groups", type=int, default=GROUPS,
                   help="blocks of isolated timings per pass, each followed by a sweep (1: one block, as runs 12-18)")
    p.add_argument("--steady", type=float, default=STEADY,
                   help="seconds each isolated process runs its cell untimed first (0: timed cold, as before run 16)")
    p.add_argument("--spread", type=float, default=SPREAD,
                   help="seconds over which an isolated process spreads its rounds (0: back to back; run 17 used 30)")
    p.add_argument("--analyse", metavar="DIR",
                   help="measure nothing: print the checks again from an earlier run's DIR/raw.json")
    args = p.parse_args()
    if args.analyse:
        raw = json.loads((Path(args.analyse) / "raw.json").read_text())
        sweeps = {name: {(r["model"], r["runtime"]): r for r in rows} for name, rows in raw["sweeps"].items()}
        timings = raw.get("isolated") or _one_block(sweeps.pop("iso", {}))
        analyse(raw["env"], raw["runtimes"], sweeps, timings)
        return
    models, runtimes = args.models.split(","), args.runtimes.split(",")
    out = Path(args.out)
    threads = default_threads()
    env = environment(threads)
    t0 = time.time()

    def run_sweep() -> dict:
        # one results file for the quiet sweeps, as a user's re-runs write: later sweeps' rows
        # are judged against the probe and sentinels the earlier ones put on record
        return sweep(models, runtimes, out / "quiet", args.min_time, args.rounds, 2)

    # quiet1 and quiet2 back to back for (a); then the isolated timings in blocks, a sweep after
    # each (runs 8-11 put the isolated timings between the two A/A sweeps, and the host's drift
    # over them missed (a) each time)
    sweeps = {"q1": run_sweep(), "q2": run_sweep()}
    timings: list[dict] = []
    if not args.skip_isolated:
        brackets, timings = isolated_blocks(list(sweeps["q1"]), args.isolated_passes, args.groups, threads,
                                            args.min_time, args.rounds, args.steady, args.spread, out / "iso",
                                            run_sweep)
        sweeps |= brackets
    busy_loop = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)
        sweeps["busy"] = sweep(models, runtimes, out / "busy", args.min_time, args.rounds, 2)
    finally:
        busy_loop.kill()
        busy_loop.wait()
    out.mkdir(parents=True, exist_ok=True)
    (out / "raw.json").write_text(json.dumps({
        "env": env, "runtimes": runtimes, "steady_s": args.steady, "spread_s": args.spread, "groups": args.groups,
        "sweeps": {name: [dict(r, model=k[0], runtime=k[1]) for k, r in sw.items()] for name, sw in sweeps.items()},
        "isolated": timings}))
    rows = analyse(env, runtimes, sweeps, timings)
    print(f"took {(time.time() - t0) / 60:.1f} min")
    (out / "trust.json").write_text(json.dumps({"env": env, "rows": rows}, indent=1))


def _one_block(iso: dict) -> list[dict]:
    """An earlier run's isolated rows (runs 12-18: every pass between quiet2 and quiet3, the
    passes' geometric mean per cell) as one timing per pass; each pass takes the mean's probe
    and sentinel, the only ones those runs kept."""
    return [{k: v for k, v in r.items() if k != "passes_ms"} | {"median_ms": ms, "pass": i, "before": "q2", "after": "q3"}
            for r in iso.values() for i, ms in enumerate(r.get("passes_ms") or [r["median_ms"]])]


def normalised(row: dict, ref: dict) -> float:
    """row's latency over ref's, each in units of its own process's machine probe: how the two
    compare on one machine speed. The probe reads the host, not leannet (no model, no runtime), so
    a host that ran slower in one process than in the other (seen here: 4-6% between processes
    minutes apart, with nothing else running) cancels out; NaN without both probes."""
    if not (row.get("probe_ms") and ref.get("probe_ms")):
        return math.nan
    return (row["median_ms"] / row["probe_ms"]) / (ref["median_ms"] / ref["probe_ms"])


def _geomean(values: list[float]) -> float:
    return statistics.geometric_mean(values) if values and all(values) else math.nan


def bracketed(sweeps: dict[str, dict], t: dict) -> dict:
    """The sweep side of one isolated timing `t`: the geometric mean of its cell's latency, probe
    and sentinel in the sweeps just before and after it (each a field only where both have it)."""
    k = (t["model"], t["runtime"])
    pair = [sweeps[t[side]].get(k) for side in ("before", "after")]
    if not all(pair):
        return {}
    return {f: math.sqrt(pair[0][f] * pair[1][f]) for f in ("median_ms", "probe_ms", "sentinel_ms")
            if pair[0].get(f) and pair[1].get(f)}


def _describe(label: str, devs: list[float], log: bool = True) -> str:
    """median and max of `devs` (|log ratio|s, or |ratio - 1|s with log=False), and how many are within 5%"""
    devs = [d for d in devs if not math.isnan(d)]
    what, limit = ("|log ratio|", math.log(1.05)) if log else ("|dev|", 0.05)
    return (f"{label}: median {what} {100 * statistics.median(devs):.2f}%, max {100 * max(devs):.2f}%, "
            f"within 5%: {sum(d <= limit for d in devs)} of {len(devs)}") if devs else f"{label}: none"


def analyse(env: dict, runtimes: list[str], sweeps: dict[str, dict], timings: list[dict]) -> list[dict]:
    """Print the three checks from the sweeps' rows (q1, q2, busy, and the sweeps between blocks of
    isolated timings) and the isolated timings; returns one row per cell."""
    print(f"# {env['cpu']} ({', '.join(env['cpu_features'])}), {env['threads']} threads; "
          + ", ".join(f"{k} {v}" for k, v in env["versions"].items()), flush=True)
    q1, q2, busy = sweeps["q1"], sweeps["q2"], sweeps["busy"]
    chain = ["q2", *(n for n in sweeps if n not in ("q1", "q2", "busy"))]  # in the order they ran
    for name, sw in sweeps.items():
        probes = [r["probe_ms"] for r in sw.values() if r.get("probe_ms")]
        if probes:
            print(f"{name}: machine probe {statistics.median(probes):.3f} ms (rows marked slowed: "
                  f"{sum(bool(r.get('machine_slowdown', 1) > SLOWED) for r in sw.values())}, "
                  f"contended: {sum(bool(r.get('contended')) for r in sw.values())} of {len(sw)})")
    p1, p2 = ([r["probe_ms"] for r in sw.values() if r.get("probe_ms")] for sw in (q1, q2))
    if p1 and p2:
        print(f"machine probe quiet2 / quiet1: {statistics.median(p2) / statistics.median(p1):.3f} "
              "(1.00 = the machine ran at the same speed in both sweeps)")
    for rt in runtimes:
        s1, s2 = (statistics.median([r["sentinel_ms"] for k, r in sw.items() if k[1] == rt and r.get("sentinel_ms")]
                                    or [math.nan]) for sw in (q1, q2))
        print(f"{rt} sentinel: quiet1 {s1:.3f} ms, quiet2 {s2:.3f} ms, quiet2 / quiet1 {s2 / s1:.3f}")
    iso_probe = [t["probe_ms"] for t in timings if t.get("probe_ms")]
    if iso_probe:
        print(f"isolated: machine probe median {statistics.median(iso_probe):.3f} ms, "
              f"range {min(iso_probe):.3f}-{max(iso_probe):.3f}")
    per_cell: dict[tuple, list[dict]] = {}
    for t in sorted(timings, key=lambda t: t["pass"]):
        per_cell.setdefault((t["model"], t["runtime"]), []).append(t)
    passes = [abs(math.log(ts[1]["median_ms"] / ts[0]["median_ms"])) for ts in per_cell.values() if len(ts) > 1]
    if passes:
        print(f"isolated passes 1 vs 2, per cell: median |log ratio| {100 * statistics.median(passes):.2f}%, "
              f"max {100 * max(passes):.2f}%")
    print(f"\n{'model':24} {'runtime':12} {'quiet1':>8} {'quiet2':>8} {'A/A':>7} {'busy':>8} {'busy/q':>7} "
          f"{'flag':>5} {'others':>7} {'alone':>8} {'sweep/alone':>11}")
    rows, aa, steady_aa, norm_aa, unflagged, slow = [], [], [], [], [], 0
    dev_raw, dev_steady, dev_norm = [], [], []
    for k, r1 in q1.items():
        r2, rb, ts = q2.get(k), busy.get(k), per_cell.get(k, [])
        a = math.log(r2["median_ms"] / r1["median_ms"]) if r2 else math.nan
        aa.append(abs(a))
        norm_aa.append(abs(math.log(normalised(r2, r1))) if r2 else math.nan)
        steady = bool(r2) and same_machine(r1, r2)
        if steady:
            steady_aa.append(abs(a))
        ratio = rb["median_ms"] / r1["median_ms"] if rb else math.nan
        if ratio > 1.25:
            slow += 1
            if not rb["contended"]:
                unflagged.append(k)
        # (c) per isolated timing: the sweeps around it over it, then the geometric mean over passes
        sides = [(bracketed(sweeps, t), t) for t in ts]
        sides = [(s, t) for s, t in sides if s]
        dev = _geomean([s["median_ms"] / t["median_ms"] for s, t in sides])
        iso_steady = bool(sides) and all(same_machine(s, t) for s, t in sides)
        if sides:
            dev_raw.append(abs(dev - 1))  # as runs 12-18 gave it
            dev_norm.append(abs(math.log(_geomean([normalised(s, t) for s, t in sides]))))
            if iso_steady:
                dev_steady.append(abs(dev - 1))
        alone = _geomean([t["median_ms"] for t in ts])
        rows.append({"model": k[0], "runtime": k[1], "quiet1_ms": r1["median_ms"], "quiet2_ms": r2 and r2["median_ms"],
                     "quiet1_contended": r1["contended"], "quiet2_contended": r2 and r2["contended"], "steady": steady,
                     "busy_ms": rb and rb["median_ms"], "busy_contended": rb and rb["contended"],
                     "busy_others_cores": rb and rb["others_cores"],
                     "isolated_ms": alone, "isolated_passes_ms": [t["median_ms"] for t in ts],
                     "bracket_ms": [s["median_ms"] for s, _ in sides], "sweep_over_alone": dev,
                     "isolated_contended": any(t.get("contended") for t in ts), "isolated_steady": iso_steady,
                     "quiet1_probe_ms": r1.get("probe_ms"), "isolated_probe_ms": [t.get("probe_ms") for t in ts],
                     "quiet1_sentinel_ms": r1.get("sentinel_ms"), "quiet2_sentinel_ms": r2 and r2.get("sentinel_ms"),
                     "isolated_sentinel_ms": [t.get("sentinel_ms") for t in ts]})
        print(f"{k[0]:24} {k[1]:12} {r1['median_ms']:8.3f} {r2['median_ms']:8.3f} {math.exp(a):7.3f} "
              f"{rb['median_ms']:8.3f} {ratio:7.2f} {'yes' if rb['contended'] else 'NO':>5} "
              f"{rb['others_cores']:7.2f} {alone:8.3f} {dev:11.3f}")
    for rt in runtimes:
        per = [r["quiet2_ms"] / r["quiet1_ms"] for r in rows if r["runtime"] == rt and r["quiet2_ms"]]
        alone = [r["sweep_over_alone"] for r in rows if r["runtime"] == rt and not math.isnan(r["sweep_over_alone"])]
        if per:
            print(f"{rt}: quiet2 / quiet1 median {statistics.median(per):.3f} (range {min(per):.3f}-{max(per):.3f})"
                  + (f"; sweep / alone median {statistics.median(alone):.3f}" if alone else ""))
    print(f"\n(a) A/A, two sweeps in a row: median |log ratio| {100 * statistics.median(aa):.2f}% (target <= 5%), "
          f"max {100 * max(aa):.2f}%; quiet cells flagged contended: quiet1 {sum(r['quiet1_contended'] for r in rows)}, "
          f"quiet2 {sum(bool(r['quiet2_contended']) for r in rows)} of {len(rows)}")
    if steady_aa:
        print(f"    over the {len(steady_aa)} cells whose probe and runtime sentinel read the same machine in both "
              f"sweeps (within {SLOWED:.2f}x): median {100 * statistics.median(steady_aa):.2f}%, "
              f"max {100 * max(steady_aa):.2f}%; the other {len(rows) - len(steady_aa)} saw the probe or "
              "sentinel move")
    for before, after in itertools.pairwise(chain):
        gap = [abs(math.log(sweeps[after][k]["median_ms"] / r["median_ms"]))
               for k, r in sweeps[before].items() if k in sweeps[after]]
        print(f"    {before} vs {after}, a block of isolated timings between them: median |log ratio| "
              f"{100 * statistics.median(gap):.2f}%, max {100 * max(gap):.2f}%")
    print(f"(b) one core busy: {slow} of {len(rows)} cells read > 1.25x quiet; unflagged among them: "
          f"{len(unflagged)} (target 0){': ' + ', '.join('/'.join(k) for k in unflagged) if unflagged else ''}; "
          f"flagged overall: {sum(bool(r['busy_contended']) for r in rows)} of {len(rows)}")
    if dev_raw:
        print(_describe("(c) sweep (the sweeps before and after each block) vs alone in a fresh process", dev_raw,
                        log=False))
        if dev_steady:
            print("    " + _describe(f"over the {len(dev_steady)} cells whose isolated processes saw the sweeps' "
                                     f"machine (probe and sentinel within {SLOWED:.2f}x)", dev_steady, log=False))
    # The same two comparisons with each process's latencies in units of its own machine probe.
    print(_describe("(a) A/A, each side in units of its process's machine probe", norm_aa))
    if dev_norm:
        print(_describe("(c) sweep vs alone, each side in units of its process's machine probe", dev_norm))
    return rows


if __name__ == "__main__":
    main()
