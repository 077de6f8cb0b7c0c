"""How long one cell's runtime slows the next cell of a sweep (the evidence for `timing.SETTLE`).

For a model in eager, ONNX Runtime and OpenVINO: run another cell (a different model, each
runtime in turn, or the same cell) for 0.3 s, then call the measured cell for 1 s and record
each call's latency against the time since the switch; 8 switches per pair. Prints the median
latency (ms) per time bin. A runtime whose workers keep spinning after its last call shows as
slow first bins in whatever runs next.

    python benchmarks/bench_spill.py mobileone_s0     # ~1.5 min on 2 cores; run on an idle machine
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np

from leannet import create_model, reparameterize
from leannet.bench.sweep import default_threads
from leannet.deploy.onnx import export_onnx
from leannet.runtime import runners

RUNTIMES = ("eager", "onnxruntime", "openvino")
BINS = (0, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)


def calls(name: str, tmp: Path, threads: int, x: np.ndarray) -> dict:
    model = reparameterize(create_model(name).eval())
    path = export_onnx(model, tmp / f"{name}.onnx", input_size=tuple(x.shape[1:]), batch=1)
    made = {"eager": runners.torch_runner(model, threads=threads),
            "onnxruntime": runners.onnxruntime_runner(path, threads),  # spinning on: its default
            "openvino": runners.openvino_runner(path, threads)}
    return {rt: r.bind(x) for rt, r in made.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", default="mobileone_s0")
    p.add_argument("--other", default="resnet50", help="the model run before the measured cell")
    p.add_argument("--switches", type=int, default=8)
    args = p.parse_args()
    threads = default_threads()
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        cells, before = calls(args.model, Path(tmp), threads, x), calls(args.other, Path(tmp), threads, x)
        print(f"median ms per call of {args.model}, by seconds since the switch; {threads} threads")
        print(f"{'cell':12} {'after':26} " + " ".join(f"{f'{a}-{b}':>9}" for a, b in itertools.pairwise(BINS)))
        for target, call in cells.items():
            for prev in (*RUNTIMES, "itself"):
                run_before = call if prev == "itself" else before[prev]
                rec = []
                for _ in range(args.switches):
                    t_end = time.perf_counter() + 0.3
                    while time.perf_counter() < t_end:
                        run_before()
                    t0 = time.perf_counter()
                    while time.perf_counter() - t0 < BINS[-1]:
                        a = time.perf_counter()
                        call()
                        rec.append((a - t0, time.perf_counter() - a))
                since, ms = np.array(rec).T
                meds = [np.median(ms[(since >= a) & (since < b)]) * 1e3 if ((since >= a) & (since < b)).any()
                        else float("nan") for a, b in itertools.pairwise(BINS)]
                label = prev if prev == "itself" else f"{args.other} {prev}"
                print(f"{target:12} {label:26} " + " ".join(f"{m:9.2f}" for m in meds), flush=True)


if __name__ == "__main__":
    main()
