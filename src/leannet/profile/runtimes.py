"""Inference runtimes behind one small protocol, so the benchmark treats them all alike.

A runtime has a `name`, says whether it can run here (`available()`, plus `requires` naming
what is missing when it can't), and turns a model and an example input into a `Session`:
a callable that runs one inference on that input and returns the output, together with the
settings that must be recorded beside its timing (`info`: precision, threads, versions).

ONNX Runtime and OpenVINO run the ONNX file written by leannet's own export path
(`leannet.deploy.onnx.export_onnx`), exported once per model and input shape into `workdir`
and shared by both. OpenVINO's precision is pinned with INFERENCE_PRECISION_HINT (it runs
bf16 by default on CPUs with AVX-512 BF16, which is a different numeric result).
"""

from __future__ import annotations

import copy
import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from leannet.errors import UnknownRuntimeError


@dataclass
class Session:
    run: Callable[[], Any]
    info: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    # Seconds taken by one call; CUDA replaces this with event timing.
    time_once: Callable[[], float] | None = None

    def __call__(self) -> np.ndarray:
        out = self.run()
        if isinstance(out, torch.Tensor):
            return out.detach().float().cpu().numpy()
        return np.asarray(out, dtype=np.float32)

    def timed(self) -> float:
        if self.time_once is not None:
            return self.time_once()
        t0 = time.perf_counter()
        self.run()
        return time.perf_counter() - t0


class Runtime(Protocol):
    name: str
    requires: str  # what must be installed (or present) for this runtime

    def available(self) -> bool: ...

    def prepare(self, model: nn.Module, example: torch.Tensor, threads: int, workdir: Path) -> Session: ...


def _torch_session(model: nn.Module, x: torch.Tensor, **info: Any) -> Session:
    def run():
        with torch.inference_mode():
            return model(x)

    return Session(run, {"torch": torch.__version__, "precision": "f32", **info})


class Eager:
    name, requires = "eager", "torch"

    def available(self) -> bool:
        return True

    def prepare(self, model, example, threads, workdir):
        torch.set_num_threads(threads)
        return _torch_session(model.eval(), example, threads=torch.get_num_threads())


class ChannelsLast:
    name, requires = "channels_last", "torch"

    def available(self) -> bool:
        return True

    def prepare(self, model, example, threads, workdir):
        torch.set_num_threads(threads)
        model = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
        x = example.contiguous(memory_format=torch.channels_last)
        return _torch_session(model, x, threads=torch.get_num_threads(), memory_format="channels_last")


class Compile:
    name, requires = "compile", "torch.compile (inductor)"

    def available(self) -> bool:
        return hasattr(torch, "compile")

    def prepare(self, model, example, threads, workdir):
        torch.set_num_threads(threads)
        # The first call compiles (~16 s here); the benchmark's warm-up absorbs it.
        compiled = torch.compile(copy.deepcopy(model).eval())
        return _torch_session(compiled, example, threads=torch.get_num_threads(), compile_mode="default")


def _onnx_file(model: nn.Module, example: torch.Tensor, workdir: Path) -> Path:
    from leannet.deploy.onnx import export_onnx

    path = Path(workdir) / f"model_b{example.shape[0]}_{'x'.join(map(str, example.shape[1:]))}.onnx"
    if not path.exists():
        export_onnx(model.eval(), path, input_size=tuple(example.shape[1:]), batch=example.shape[0])
    return path


class OnnxRuntime:
    name, requires = "onnxruntime", "onnxruntime"

    def available(self) -> bool:
        return importlib.util.find_spec("onnxruntime") is not None

    def prepare(self, model, example, threads, workdir):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(str(_onnx_file(model, example, workdir)), opts,
                                    providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: example.numpy()}
        return Session(lambda: sess.run(None, feed)[0],
                       {"onnxruntime": ort.__version__, "providers": sess.get_providers(),
                        "threads": threads, "graph_optimization": "all", "precision": "f32"})


class OpenVINO:
    requires = "openvino"

    def __init__(self, precision: str = "f32"):
        self.precision = precision
        self.name = "openvino" if precision == "f32" else f"openvino_{precision}"

    def available(self) -> bool:
        return importlib.util.find_spec("openvino") is not None

    def prepare(self, model, example, threads, workdir):
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": self.precision, "INFERENCE_NUM_THREADS": threads,
                  "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        compiled = core.compile_model(core.read_model(str(_onnx_file(model, example, workdir))),
                                      "CPU", config)
        request = compiled.create_infer_request()
        precision = compiled.get_property("INFERENCE_PRECISION_HINT")
        x = example.numpy()

        def run():
            request.infer({0: x})
            return request.get_output_tensor(0).data

        return Session(run, {
            "openvino": ov.get_version(),
            # Read back from the compiled model: what actually runs, not what was asked.
            "precision": precision.to_string() if hasattr(precision, "to_string") else str(precision),
            "threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
            "performance_hint": str(compiled.get_property("PERFORMANCE_HINT")),
        })


class Cuda:
    requires = "a CUDA device"

    def __init__(self, dtype: str | None = None):
        self.dtype = dtype  # autocast dtype: None (fp32), "fp16" or "bf16"
        self.name = "cuda" if dtype is None else f"cuda_{dtype}"

    def available(self) -> bool:
        return torch.cuda.is_available()

    def prepare(self, model, example, threads, workdir):
        model = copy.deepcopy(model).eval().cuda()
        x = example.cuda()
        amp = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.dtype)

        def run():
            with torch.inference_mode(), torch.autocast("cuda", dtype=amp, enabled=amp is not None):
                return model(x)

        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def time_once() -> float:  # CUDA events: the GPU's own clock, not the launch time
            start.record()
            run()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3

        return Session(run, {"torch": torch.__version__, "device": torch.cuda.get_device_name(),
                             "precision": self.dtype or "f32"}, device="cuda", time_once=time_once)


RUNTIMES: dict[str, Runtime] = {rt.name: rt for rt in (
    Eager(), ChannelsLast(), Compile(), OnnxRuntime(), OpenVINO(), OpenVINO("bf16"),
    Cuda(), Cuda("fp16"), Cuda("bf16"),
)}


def get_runtime(name: str) -> Runtime:
    if name not in RUNTIMES:
        raise UnknownRuntimeError(f"unknown runtime {name!r}; choose from {', '.join(RUNTIMES)}")
    return RUNTIMES[name]
