"""One way to run any model: `Runner`.

A runner maps a float32 NCHW array to the model's first output (`runner(x)`), or to the list of
all its outputs for an artefact opened with `all_outputs=True` (a detector's class logits and
box deltas); `runner.bind(x)`
gives a zero-argument call on a fixed input for timing (the input is converted once, so the
timer sees only the inference). `runtime` and `precision` say what actually runs, `batch` is
the fixed batch size of an artefact (None when dynamic), and `info` holds the settings a
timing must be recorded with (threads, versions, the precision the runtime read back).

Precisions are spelt one way everywhere: fp32, bf16, fp16, int8. An INT8 runner is an
INT8 artefact (quantised by `leannet.deploy.quantize`) run by ONNX Runtime or OpenVINO.

Threads and spinning: ONNX Runtime's intra-op threads spin while waiting for work by
default, which steals the cores of whatever runs next for 50-100 ms. Runners keep that
default (`spin=False` made small models 7-28% slower alone); a sweep that alternates cells
lets each settle before timing it (`timing.SETTLE`).
OpenVINO's compute precision is pinned (its CPU default is bf16 where the CPU supports it).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from leannet.errors import LeannetError, reason
from leannet.extras import require
from leannet.runtime.threads import torch_threads

ARTEFACT_SUFFIXES = (".onnx", ".xml", ".pte", ".param", ".tflite")  # mobile ones: runtime/mobile.py
PRECISIONS = ("fp32", "bf16", "fp16", "int8")
_TORCH_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
RUN_ALL_BATCH = 32  # chunk of `run_all` for a dynamic-batch runner: bounded memory, few calls


@dataclass
class Runner:
    fn: Callable[[np.ndarray], np.ndarray]
    runtime: str
    precision: str
    batch: int | None = None
    info: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    # bind(x) -> zero-argument call; the default converts nothing beyond fn's own work
    binder: Callable[[np.ndarray], Callable[[], Any]] | None = None
    # seconds of one call measured on the device's own clock (CUDA events), else None
    device_timer: Callable[[Callable[[], Any]], float] | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray | list[np.ndarray]:
        return self.fn(np.ascontiguousarray(x, dtype=np.float32))

    def bind(self, x: np.ndarray) -> Callable[[], Any]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.binder is not None:
            return self.binder(x)
        return lambda: self.fn(x)


# --- PyTorch -------------------------------------------------------------------------------------


def torch_runner(model: nn.Module, precision: str = "fp32", channels_last: bool = False,
                 compile: bool = False, device: str = "cpu", threads: int | None = None) -> Runner:
    """PyTorch in eval mode (a module in training mode is copied, never switched: the caller's
    model is left as it was). bf16/fp16 run under autocast (weights stay fp32, as a user of
    autocast would run them); `channels_last` converts the model and every input;
    `compile` wraps a copy in torch.compile (the first call compiles: warm up before timing)."""
    if precision not in ("fp32", *_TORCH_DTYPES):
        raise LeannetError(f"PyTorch runs fp32, bf16 or fp16, not {precision}")
    if channels_last or compile or device != "cpu" or any(m.training for m in model.modules()):
        model = copy.deepcopy(model)  # the caller's module keeps its mode, layout and device
    model = model.eval()
    model = model.to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        model = model.to(memory_format=fmt)
    if compile:
        model = torch.compile(model)
    amp = _TORCH_DTYPES.get(precision)
    dev_type = "cuda" if device.startswith("cuda") else "cpu"

    def forward(t: torch.Tensor) -> torch.Tensor:
        with torch_threads(threads), torch.inference_mode(), \
                torch.autocast(dev_type, dtype=amp, enabled=amp is not None):
            return model(t)

    def to_input(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).to(device).contiguous(memory_format=fmt)

    def fn(x: np.ndarray) -> np.ndarray:
        return forward(to_input(x)).float().cpu().numpy()

    def binder(x: np.ndarray) -> Callable[[], Any]:
        t = to_input(x)
        return lambda: forward(t)

    timer = None
    if dev_type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def timer(call: Callable[[], Any]) -> float:  # the GPU's clock, not the launch time
            start.record()
            call()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3

    name = "cuda" if dev_type == "cuda" else "compile" if compile else "channels_last" if channels_last else "eager"
    info = {"torch": torch.__version__, "threads": threads or torch.get_num_threads(), "precision": precision}
    if dev_type == "cuda":
        info["device"] = torch.cuda.get_device_name(device)
    return Runner(fn, name, precision, None, info, device=device, binder=binder, device_timer=timer)


# --- ONNX Runtime --------------------------------------------------------------------------------


def onnxruntime_runner(path: str | Path, threads: int | None = None, precision: str = "fp32",
                       spin: bool = True, all_outputs: bool = False) -> Runner:
    """ONNX Runtime's CPU provider with every graph optimisation. `spin=False` stops its idle
    threads from spinning (needed when other runtimes run between its calls)."""
    ort = require("onnxruntime", "running ONNX artefacts")

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own exception types for unreadable models
        raise LeannetError(f"{path}: ONNX Runtime cannot load it ({reason(e, 200)})") from None
    inp = sess.get_inputs()[0]
    name = inp.name
    batch = inp.shape[0] if isinstance(inp.shape[0], int) else None

    def fn(x: np.ndarray) -> np.ndarray | list[np.ndarray]:
        outs = sess.run(None, {name: x})
        return outs if all_outputs else outs[0]

    def binder(x: np.ndarray) -> Callable[[], Any]:
        feed = {name: x}
        return lambda: sess.run(None, feed)

    info = {"onnxruntime": ort.__version__, "threads": threads, "spinning": spin,
            "graph_optimization": "all", "precision": precision}
    return Runner(fn, "onnxruntime", precision, batch, info, binder=binder)


# --- OpenVINO ------------------------------------------------------------------------------------


@functools.cache
def openvino_precision_supported(precision: str) -> bool:
    """Whether OpenVINO's CPU plugin computes in `precision` here (bf16 needs AVX512_BF16/AMX)."""
    if precision != "bf16":
        return True
    ov = require("openvino", "OpenVINO")

    caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return "BF16" in [str(c).upper() for c in caps]


def openvino_runner(path: str | Path, threads: int | None = None, precision: str = "fp32",
                    all_outputs: bool = False) -> Runner:
    """Compile for CPU with the inference precision pinned: OpenVINO would otherwise pick bf16
    on CPUs that support it and silently change the numbers. INT8 models keep their
    non-quantised ops in fp32. The precision it actually runs is read back into `info`."""
    ov = require("openvino", "OpenVINO")

    core = ov.Core()
    try:
        model = core.read_model(str(path))
    except Exception as e:  # OpenVINO raises RuntimeError subclasses with long texts
        raise LeannetError(f"{path}: OpenVINO cannot read it ({reason(e, 200)})") from None
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
                              "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    dim = model.inputs[0].get_partial_shape()[0]
    batch = dim.get_length() if dim.is_static else None
    out = compiled.outputs[0]

    def fn(x: np.ndarray) -> np.ndarray | list[np.ndarray]:
        res = request.infer({0: x})
        return [res[o].copy() for o in compiled.outputs] if all_outputs else res[out].copy()

    def binder(x: np.ndarray) -> Callable[[], Any]:
        return lambda: request.infer({0: x})

    ran = compiled.get_property("INFERENCE_PRECISION_HINT")
    info = {"openvino": ov.get_version(), "threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
            "inference_precision": ran.to_string() if hasattr(ran, "to_string") else str(ran),
            "performance_hint": "LATENCY", "precision": precision}
    return Runner(fn, "openvino", precision, batch, info, binder=binder)


def open_runner(path: str | Path, runtime: str | None = None, threads: int | None = None,
                precision: str | None = None, spin: bool = True, all_outputs: bool = False) -> Runner:
    """A runner for an exported artefact: .onnx runs on ONNX Runtime (or OpenVINO when asked),
    .xml on OpenVINO. Precision defaults to the sidecar's (`<stem>.json`), else fp32."""
    import json

    path = Path(path)
    if not path.is_file():
        raise LeannetError(f"{path}: no such file")
    if path.suffix not in ARTEFACT_SUFFIXES:
        raise LeannetError(f"{path}: not an exported artefact (expected .onnx, OpenVINO .xml, ExecuTorch "
                           ".pte, ncnn .param or LiteRT .tflite)")
    if precision is None:
        sidecar = path.with_suffix(".json")
        try:
            precision = json.loads(sidecar.read_text()).get("precision", "fp32") if sidecar.is_file() else "fp32"
        except (json.JSONDecodeError, AttributeError):
            raise LeannetError(f"{sidecar}: not a valid sidecar (JSON object expected)") from None
    if path.suffix in (".pte", ".param", ".tflite"):
        from leannet.runtime.mobile import open_mobile

        return Runner(**open_mobile(path, runtime, threads, precision, all_outputs=all_outputs))
    runtime = runtime or ("onnxruntime" if path.suffix == ".onnx" else "openvino")
    if runtime == "onnxruntime":
        if path.suffix != ".onnx":
            raise LeannetError(f"{path}: ONNX Runtime runs .onnx files; use the openvino runtime for .xml")
        return onnxruntime_runner(path, threads, precision, spin=spin, all_outputs=all_outputs)
    if runtime == "openvino":
        return openvino_runner(path, threads, precision, all_outputs=all_outputs)
    raise LeannetError(f"runtime {runtime!r} cannot run {path.suffix} files; use onnxruntime or openvino")


def run_all(runner: Runner, x: np.ndarray, batch: int = RUN_ALL_BATCH) -> np.ndarray:
    """Outputs for every row of `x`, in chunks the artefact accepts (padded to a fixed batch)."""
    b = runner.batch or batch
    outs = []
    for i in range(0, len(x), b):
        chunk = x[i:i + b]
        n = len(chunk)
        if runner.batch and n < b:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], b - n, axis=0)])
        outs.append(runner(chunk)[:n])
    return np.concatenate(outs)
