"""What every deploy tool shares: loading a model to deploy, the preprocessing sidecar written
beside each artefact, and one way to run any artefact (`open_runner`).

A sidecar is `<artefact stem>.json` (model.onnx -> model.json, model.xml -> model.json): size,
crop, mean, std, interpolation, class names, precision and source, so inference needs nothing
else. Runtimes are imported inside the functions that need them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from leannet.errors import LeannetError, WeightsError
from leannet.fileio import write_text

ARTEFACT_SUFFIXES = (".onnx", ".xml")
PRECISIONS = ("fp32", "bf16", "int8")
RUNTIMES = ("torch", "onnxruntime", "openvino")


@dataclass
class LoadedModel:
    """A PyTorch model ready to deploy, with what inference needs to know about it."""

    model: nn.Module
    arch: str
    preprocessing: dict[str, Any]
    classes: list[str]
    weights: str | None


def load_model(spec: str | Path, weights: str | Path | None = None) -> LoadedModel:
    """A registry name (+ optional weights) or a leannet checkpoint (.safetensors whose metadata
    names the architecture), in eval mode. Preprocessing and class names come from the
    checkpoint's metadata when it has them, else from the registry."""
    from leannet.factory import create_model
    from leannet.registry import model_info
    from leannet.weights import load_state_dict, read_metadata
    from leannet.weights.io import check_state_dict

    spec_path = Path(spec)
    meta: dict[str, Any] = {}
    if spec_path.suffix == ".safetensors":
        if weights is not None:
            raise WeightsError(f"{spec}: a checkpoint already holds the weights; drop --weights")
        weights = spec_path
        meta = read_metadata(weights)
        if "arch" not in meta:
            raise WeightsError(f"{spec}: the checkpoint's metadata names no architecture ('arch'); "
                               "pass the model name and --weights instead")
        arch = meta["arch"]
    else:
        arch = str(spec)
    info = model_info(arch)
    state = None
    if weights is not None:
        if not meta and Path(weights).suffix == ".safetensors":
            meta = read_metadata(weights)
        state = load_state_dict(weights)
    num_classes = int(meta.get("num_classes") or _classifier_size(state) or 1000)
    model = create_model(info.name, num_classes=num_classes)
    if state is not None:
        check_state_dict(model, state, source=str(weights))
        model.load_state_dict(state)
    pre = {**info.preprocessing(), **meta.get("preprocessing", {})}
    classes = meta.get("classes") or meta.get("class_names") or [str(i) for i in range(num_classes)]
    if len(classes) != num_classes:
        raise WeightsError(f"{weights}: metadata lists {len(classes)} class names for {num_classes} outputs")
    return LoadedModel(model.eval(), info.name, pre, [str(c) for c in classes],
                       str(weights) if weights is not None else None)


def _classifier_size(state: dict[str, torch.Tensor] | None) -> int | None:
    # A checkpoint without metadata still says how many classes it predicts: the output width
    # of its last 2-D (linear) weight.
    if not state:
        return None
    mats = [v for k, v in state.items() if k.endswith("weight") and v.dim() == 2]
    return int(mats[-1].shape[0]) if mats else None


# --- sidecar -------------------------------------------------------------------------------------


def sidecar_path(artefact: str | Path) -> Path:
    return Path(artefact).with_suffix(".json")


def write_sidecar(artefact: str | Path, record: dict[str, Any]) -> Path:
    path = sidecar_path(artefact)
    write_text(path, json.dumps(record, indent=2) + "\n")
    return path


def read_sidecar(artefact: str | Path) -> dict[str, Any]:
    path = sidecar_path(artefact)
    if not path.is_file():
        raise LeannetError(f"{path}: no preprocessing sidecar beside {Path(artefact).name}; "
                           "export it with `leannet export` (or write the JSON by hand)")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise LeannetError(f"{path}: not valid JSON ({e})") from None
    missing = [k for k in ("input_size", "mean", "std", "classes") if k not in record]
    if missing:
        raise LeannetError(f"{path}: sidecar lacks {', '.join(missing)}")
    return record


# --- running artefacts ---------------------------------------------------------------------------


@dataclass
class Runner:
    """`runner(x)` maps a float32 NCHW array to logits. `batch` is the artefact's fixed batch
    size (None when dynamic); `runtime` and `precision` say what actually ran."""

    fn: Callable[[np.ndarray], np.ndarray]
    runtime: str
    precision: str
    batch: int | None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.fn(np.ascontiguousarray(x, dtype=np.float32))


def torch_runner(model: nn.Module) -> Runner:
    model = model.eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).float().numpy()

    return Runner(run, "torch", "fp32", None)


def onnxruntime_runner(path: str | Path, threads: int | None = None, precision: str = "fp32",
                       all_outputs: bool = False) -> Runner:
    """`all_outputs=True`: the runner returns every graph output, in order, as a list (a
    detector's class logits and box deltas); otherwise output 0 alone."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own exception types for unreadable models
        raise LeannetError(f"{path}: ONNX Runtime cannot load it ({str(e).splitlines()[0][:200]})") from None
    inp = sess.get_inputs()[0]
    name = inp.name
    batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
    if all_outputs:
        return Runner(lambda x: sess.run(None, {name: x}), "onnxruntime", precision, batch)
    return Runner(lambda x: sess.run(None, {name: x})[0], "onnxruntime", precision, batch)


def openvino_runner(path: str | Path, threads: int | None = None, precision: str = "fp32",
                    all_outputs: bool = False) -> Runner:
    """Compile for CPU with the inference precision pinned: OpenVINO would otherwise pick bf16
    on CPUs that support it and silently change the numbers. INT8 models keep their
    non-quantised ops in fp32. `all_outputs` as for `onnxruntime_runner`."""
    import openvino as ov

    core = ov.Core()
    try:
        model = core.read_model(str(path))
    except Exception as e:  # OpenVINO raises RuntimeError subclasses with long texts
        raise LeannetError(f"{path}: OpenVINO cannot read it ({str(e).splitlines()[0][:200]})") from None
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    dim = model.inputs[0].get_partial_shape()[0]
    batch = dim.get_length() if dim.is_static else None
    out = compiled.outputs[0]

    def run(x: np.ndarray) -> np.ndarray:
        return request.infer({0: x})[out].copy()

    def run_all_outputs(x: np.ndarray) -> list[np.ndarray]:
        res = request.infer({0: x})
        return [res[o].copy() for o in compiled.outputs]

    return Runner(run_all_outputs if all_outputs else run, "openvino", precision, batch)


def open_runner(path: str | Path, runtime: str | None = None, threads: int | None = None,
                precision: str | None = None, all_outputs: bool = False) -> Runner:
    """A runner for an exported artefact: .onnx runs on ONNX Runtime (or OpenVINO when asked),
    .xml on OpenVINO. Precision defaults to the sidecar's; `all_outputs` returns every graph
    output as a list."""
    path = Path(path)
    if not path.is_file():
        raise LeannetError(f"{path}: no such file")
    if path.suffix not in ARTEFACT_SUFFIXES:
        raise LeannetError(f"{path}: not an exported artefact (expected .onnx or OpenVINO .xml)")
    if precision is None:
        precision = read_sidecar(path).get("precision", "fp32") if sidecar_path(path).is_file() else "fp32"
    runtime = runtime or ("onnxruntime" if path.suffix == ".onnx" else "openvino")
    if runtime == "onnxruntime":
        if path.suffix != ".onnx":
            raise LeannetError(f"{path}: ONNX Runtime runs .onnx files; use --runtime openvino for .xml")
        return onnxruntime_runner(path, threads, precision, all_outputs=all_outputs)
    if runtime == "openvino":
        return openvino_runner(path, threads, precision, all_outputs=all_outputs)
    raise LeannetError(f"runtime {runtime!r} cannot run {path.suffix} files; use onnxruntime or openvino")


def run_all(runner: Runner, x: np.ndarray, batch: int = 32) -> np.ndarray:
    """Logits for every row of `x`, in chunks the artefact accepts (padded to a fixed batch)."""
    b = runner.batch or batch
    outs = []
    for i in range(0, len(x), b):
        chunk = x[i:i + b]
        n = len(chunk)
        if runner.batch and n < b:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], b - n, axis=0)])
        outs.append(runner(chunk)[:n])
    return np.concatenate(outs)
