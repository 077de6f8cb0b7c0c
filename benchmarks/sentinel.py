"""An experiment of bench_trust.py and bench_detect.py, kept out of the library (the sweep does
not use it): a runtime's own speed: one fixed small network, run by each runtime of a sweep in every round.

The machine probe (`leannet.runtime.timing.Probe`) reads the machine's speed on plain threads.
Some slow phases of a VM host hit only the runtimes whose worker threads spin: in one A/A run on
a 2-vCPU EPYC every ONNX Runtime and OpenVINO cell of a sweep read 1.26x (up to 1.5x) its
figure in the other sweep, eager 1.05x, the probe 0.93x, with nothing in /proc. A sentinel per
runtime (this network, in that runtime's own thread pool, timed beside its cells) was meant
to slow down with them. Each row records its runtime's sentinel against the fastest on record
here (`runtime_slowdown`), but it does not mark rows contended: in its first check
(bench_trust run 10) ONNX Runtime's sentinel read 1.24x between two sweeps while ONNX
Runtime's cells read 0.96x, and the cells whose sentinel held steady repeated no better than
the rest. At 0.2 ms in ONNX Runtime it may be too small to read a phase that a model feels.

The network is part of the timing method (`timing.METHOD`): change it and old rows no longer
compare, so bump the method with it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from leannet.runtime import timing

# The runtimes that share a thread pool share a sentinel: channels_last and compile run in
# torch's pool as eager does. CUDA has none (the device's own clock times it).
SENTINEL_OF = {"eager": "eager", "channels_last": "eager", "compile": "eager",
               "onnxruntime": "onnxruntime", "openvino": "openvino"}
SHAPE = (1, 3, 96, 96)


def network() -> nn.Module:
    """A stem conv and four depthwise-separable blocks (7.8 MMACs at 96 px): the ops every zoo model is
    made of, about a millisecond on 2 cores, weights fixed by a seed."""

    def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cin, 3, stride, 1, groups=cin), nn.BatchNorm2d(cin), nn.Hardswish(),
                nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout), nn.ReLU()]

    gen = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(),
                        *block(16, 32, 1), *block(32, 64, 2), *block(64, 64, 1), *block(64, 128, 2),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return net.eval()


def sentinels(runtimes: Iterable[str], threads: int) -> dict[str, timing.Cell]:
    """One timing cell per thread pool among `runtimes` ({sentinel name: cell}). A sentinel that
    cannot be built here (say ONNX Runtime installed without the `onnx` exporter, benching
    `.onnx` files only) is left out: its runtime's rows then carry no sentinel reading."""
    from leannet.deploy.onnx import export_onnx
    from leannet.runtime.runners import onnxruntime_runner, openvino_runner, torch_runner

    wanted = sorted({SENTINEL_OF[r] for r in runtimes if r in SENTINEL_OF})
    net = network()
    x = np.random.default_rng(0).standard_normal(SHAPE, dtype=np.float32)
    cells = {}
    with tempfile.TemporaryDirectory(prefix="leannet-sentinel-") as tmp:
        path = Path(tmp) / "sentinel.onnx"
        for name in wanted:
            try:
                if name == "eager":
                    runner = torch_runner(net)
                else:
                    if not path.is_file():
                        export_onnx(net, path, input_size=SHAPE[1:])
                    runner = (onnxruntime_runner if name == "onnxruntime" else openvino_runner)(path, threads)
            except Exception:  # a missing exporter must not cost the sweep; the row just lacks a reading
                continue
            cells[name] = timing.Cell(("sentinel", name), runner.bind(x))  # compiled: the file may go
    return cells


def reading(cells: dict[str, timing.Cell], runtime: str) -> dict[str, float]:
    """The row fields of `runtime`'s sentinel: its time and round-to-round spread."""
    cell = cells.get(SENTINEL_OF.get(runtime, ""))
    if cell is None or not cell.rounds:
        return {}
    ms, iqr = timing.round_means(cell)
    return {"sentinel_ms": ms, "sentinel_iqr": iqr}
