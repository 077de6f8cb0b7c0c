"""Runners for the mobile engines: ExecuTorch (.pte, XNNPACK), ncnn (.param + .bin) and LiteRT
(.tflite, XNNPACK), and the pre-flight that keeps an engine's crash out of this process.

Each runner pins its thread count and reads it back into `info`, as the desktop runners do.
ExecuTorch's XNNPACK threadpool is process-wide (`_unsafe_reset_threadpool`) and a program
loaded before a reset crashes (SIGSEGV) on its next call: the first .pte runner of a process
sets the thread count before loading, and a later one asking another count is refused.
ncnn takes one image per call (its Mat has no batch axis): a batch runs image by image.
fp16 storage and arithmetic are off in ncnn (its ARM default): fp32 parity is the contract.

Native engines can kill the process instead of raising (ncnn 1.0.20261020 took a SIGSEGV on a
graph whose index-select pnnx mapped to Crop + Squeeze over the batch axis). `preflight` loads
the artefact and runs one inference in a child process first; a child that dies by a signal
becomes a `LeannetError` naming the signal, so a sweep records one error row, an export fails
with one line, and the caller lives on. The result is cached per file (path, size, mtime).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from leannet.errors import LeannetError, reason
from leannet.extras import require

MOBILE_SUFFIXES = {".pte": "executorch", ".param": "ncnn", ".tflite": "litert"}
ISOLATED = ("executorch", "ncnn", "litert")  # engines whose artefacts are pre-flown in a child
SMOKE_TARGET = "leannet.runtime.mobile:_smoke"  # what the child runs (tests point it at a crash)
PREFLIGHT_TIMEOUT = 300.0  # seconds; a child that loads torch and a large model on a busy machine
_preflown: dict[tuple, None] = {}
_executorch_loaded: list[str] = []  # .pte programs loaded in this process (the threadpool is theirs)


# --- ExecuTorch ----------------------------------------------------------------------------------


def executorch_runner(path: str | Path, threads: int | None = None, precision: str = "fp32",
                      all_outputs: bool = False) -> dict[str, Any]:
    """ExecuTorch's Python runtime on a .pte (XNNPACK-lowered by `leannet export`)."""
    import torch

    portable_lib = _portable_lib()
    from executorch.runtime import Runtime, Verification

    if threads:
        set_executorch_threads(threads, what=f"{path}: ")
    try:
        program = Runtime.get().load_program(Path(path), verification=Verification.Minimal)
        method = program.load_method("forward")
    except Exception as e:  # the runtime raises RuntimeError/ValueError with its own codes
        raise LeannetError(f"{path}: ExecuTorch cannot load it ({reason(e, 200)})") from None
    _executorch_loaded.append(str(path))
    meta = method.metadata.input_tensor_meta(0)
    batch = int(meta.sizes()[0])

    def call(t: torch.Tensor) -> list:
        return method.execute([t])

    def fn(x: np.ndarray) -> np.ndarray | list[np.ndarray]:
        outs = [o.numpy().copy() for o in call(torch.from_numpy(x))]
        return outs if all_outputs else outs[0]

    def binder(x: np.ndarray) -> Callable[[], Any]:
        t = torch.from_numpy(x)
        return lambda: call(t)

    info = {"executorch": _version("executorch"), "threads": portable_lib._threadpool_get_thread_count(),
            "backend": "xnnpack", "precision": precision}
    return _parts(fn, "executorch", precision, batch, info, binder)


def set_executorch_threads(n: int, what: str = "") -> None:
    """Size ExecuTorch's process-wide XNNPACK threadpool before any .pte is loaded (a reset
    after a load crashes the loaded program's next call, so it is refused then; `what` leads
    that error)."""
    portable_lib = _portable_lib()
    if (now := portable_lib._threadpool_get_thread_count()) == n:
        return
    if _executorch_loaded:
        raise LeannetError(f"{what}ExecuTorch's XNNPACK threadpool is process-wide and already serves {now} "
                           f"threads to a loaded program; run {n} threads in another process")
    with quiet_engine():
        portable_lib._unsafe_reset_threadpool(n)


def _portable_lib():
    """ExecuTorch's runtime bindings, imported and their threadpool made without the noise
    (`quiet_engine`)."""
    require("executorch", "running ExecuTorch .pte files")
    with quiet_engine():
        from executorch.extension.pybindings import portable_lib

        portable_lib._threadpool_get_thread_count()  # the first call makes the pool
    return portable_lib


@contextlib.contextmanager
def quiet_engine() -> Iterator[None]:
    """Stderr closed at the file-descriptor level (and torch's pytree logger raised to errors)
    for an engine's imports and set-up calls that log from C++ what says nothing to the user:
    importing ExecuTorch makes torch warn that torchao registers an Enum as a pytree constant,
    making or resetting its threadpool logs CPU probing ("[cpuinfo_utils.cpp:87] Failed to open
    midr file ..." on x86), and LiteRT announces its XNNPACK delegate. Python exceptions pass
    through unchanged."""
    pytree = logging.getLogger("torch.utils._pytree")
    level = pytree.level
    pytree.setLevel(logging.ERROR)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        pytree.setLevel(level)


# --- ncnn ----------------------------------------------------------------------------------------


def ncnn_runner(path: str | Path, threads: int | None = None, precision: str = "fp32",
                all_outputs: bool = False) -> dict[str, Any]:
    """ncnn's CPU path on a .param with its .bin beside it, fp16 off."""
    ncnn = require("ncnn", "running ncnn models")
    path = Path(path)
    weights = path.with_suffix(".bin")
    if not weights.is_file():
        raise LeannetError(f"{path}: ncnn needs its weights {weights.name} beside it")
    net = ncnn.Net()
    net.opt.num_threads = threads or 1
    net.opt.use_vulkan_compute = False
    for opt in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage"):
        setattr(net.opt, opt, False)
    if net.load_param(str(path)) != 0 or net.load_model(str(weights)) != 0:
        raise LeannetError(f"{path}: ncnn cannot load it (not an ncnn .param/.bin pair)")
    inputs, outputs = list(net.input_names()), list(net.output_names())
    if len(inputs) != 1 or not outputs:
        raise LeannetError(f"{path}: ncnn graph has inputs {inputs} and outputs {outputs}; expected one input")

    def one(image: np.ndarray) -> list[np.ndarray]:
        ex = net.create_extractor()
        mat = ncnn.Mat(image)  # `image` must outlive the extraction: the Mat borrows its memory
        ex.input(inputs[0], mat)
        res = []
        for name in outputs if all_outputs else outputs[:1]:
            ret, out = ex.extract(name)
            if ret != 0:
                raise LeannetError(f"{path}: ncnn failed to compute {name} (code {ret})")
            res.append(np.array(out))
        return res

    def fn(x: np.ndarray) -> np.ndarray | list[np.ndarray]:
        per = [one(np.ascontiguousarray(img)) for img in x]
        # ncnn drops the batch axis: a (1, anchors, classes) output comes back (anchors, classes)
        outs = [np.stack([p[i] for p in per]) for i in range(len(per[0]))]
        return outs if all_outputs else outs[0].reshape(len(x), -1)

    info = {"ncnn": _version("ncnn"), "threads": int(net.opt.num_threads), "fp16": False,
            "vulkan": False, "precision": precision, "batch_loop": True}
    return _parts(fn, "ncnn", precision, None, info)


# --- LiteRT --------------------------------------------------------------------------------------


def litert_runner(path: str | Path, threads: int | None = None, precision: str = "fp32",
                  all_outputs: bool = False) -> dict[str, Any]:
    """ai-edge-litert's Interpreter on a .tflite (XNNPACK is its default CPU delegate). A model
    with an NHWC input (a TensorFlow-made .tflite) gets the NCHW array transposed; litert-torch
    keeps PyTorch's NCHW."""
    require("ai_edge_litert", "running LiteRT .tflite files")
    from ai_edge_litert.interpreter import Interpreter

    try:
        with quiet_engine():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
            interp = Interpreter(model_path=str(path), num_threads=threads or 1)
            interp.allocate_tensors()
    except Exception as e:  # ValueError/RuntimeError with the runtime's text
        raise LeannetError(f"{path}: LiteRT cannot load it ({reason(e, 200)})") from None
    inp = interp.get_input_details()[0]
    outs = interp.get_output_details()
    shape = [int(d) for d in inp["shape"]]
    nhwc = _is_nhwc(shape)

    def run(x: np.ndarray) -> list[np.ndarray]:
        interp.set_tensor(inp["index"], np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if nhwc else x)
        interp.invoke()
        return [interp.get_tensor(o["index"]) for o in (outs if all_outputs else outs[:1])]

    def fn(x: np.ndarray) -> np.ndarray | list[np.ndarray]:
        res = run(x)
        return res if all_outputs else res[0]

    def binder(x: np.ndarray) -> Callable[[], Any]:
        feed = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if nhwc else x

        def call() -> None:
            interp.set_tensor(inp["index"], feed)
            interp.invoke()
        return call

    info = {"ai_edge_litert": _version("ai-edge-litert"), "threads": threads or 1, "delegate": "xnnpack (default)",
            "input_layout": "NHWC" if nhwc else "NCHW", "precision": precision}
    return _parts(fn, "litert", precision, shape[0] if shape else None, info, binder)


def _parts(fn, runtime: str, precision: str, batch: int | None, info: dict[str, Any],
           binder: Callable | None = None) -> dict[str, Any]:
    return {"fn": fn, "runtime": runtime, "precision": precision, "batch": batch, "info": info, "binder": binder}


RUNNERS = {"executorch": executorch_runner, "ncnn": ncnn_runner, "litert": litert_runner}


def open_mobile(path: str | Path, runtime: str | None, threads: int | None, precision: str,
                all_outputs: bool = False, isolate: bool = True) -> dict[str, Any]:
    """The `Runner` fields for a mobile artefact (runners.open_runner builds it: this module
    sits below runners), after a pre-flight in a child process."""
    path = Path(path)
    engine = MOBILE_SUFFIXES[path.suffix]
    if runtime not in (None, engine):
        raise LeannetError(f"{path}: {path.suffix} files run on {engine}, not {runtime}")
    if isolate and engine in ISOLATED:
        preflight(path, engine, threads)
    return RUNNERS[engine](path, threads, precision, all_outputs=all_outputs)


# --- crash isolation -----------------------------------------------------------------------------


def preflight(path: str | Path, engine: str, threads: int | None = None,
              shape: tuple[int, ...] | None = None) -> None:
    """Load `path` on `engine` and run one inference in a child process; a crash there (a
    signal) or an error becomes a LeannetError here. `shape` is the input (ncnn's .param has
    none: else the sidecar's input_size). Cached per file version."""
    path = Path(path)
    if _version_key(path, engine) in _preflown:
        return
    run_isolated(SMOKE_TARGET, [str(path), engine, threads, shape and list(shape)], what=f"{engine} on {path.name}")
    mark_preflown(path, engine)


def mark_preflown(path: str | Path, engine: str) -> None:
    """Record that this version of `path` ran on `engine` in another process (a pre-flight
    child, or the sweep's background exporter, which runs the same smoke after its export)."""
    _preflown[_version_key(Path(path), engine)] = None


def _version_key(path: Path, engine: str) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, engine)


def crash_text(what: str, returncode: int, where: str = "in a pre-flight child process") -> str:
    """The one line for a child that died of signal -`returncode`."""
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"{what}: the engine crashed ({name}) {where}; this artefact cannot run on it"


def run_isolated(target: str, args: list[Any], what: str, timeout: float = PREFLIGHT_TIMEOUT) -> None:
    """Call `module:function(*args)` (JSON-able args) in a fresh Python; raise a LeannetError
    that names the signal when the child dies of one, or its last error line otherwise."""
    code = ("import importlib, json, sys\n"
            "mod, fn = sys.argv[1].split(':')\n"
            "getattr(importlib.import_module(mod), fn)(*json.loads(sys.argv[2]))\n")
    try:
        proc = subprocess.run([sys.executable, "-c", code, target, json.dumps(args)],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LeannetError(f"{what}: no answer within {timeout:.0f} s (pre-flight in a child process)") from None
    if proc.returncode == 0:
        return
    if proc.returncode < 0:
        raise LeannetError(crash_text(what, proc.returncode))
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else f"exit code {proc.returncode}"
    raise LeannetError(f"{what}: pre-flight failed: {last.split(': ', 1)[-1] if 'Error' in last else last}")


def _smoke(path: str, engine: str, threads: int | None, shape: list[int] | None = None) -> None:
    """The child's work: open the runner (no pre-flight: this is it) and run zeros once."""
    run = RUNNERS[engine](path, threads, "fp32")["fn"]
    shape = shape or _input_shape(Path(path), engine)
    run(np.zeros(shape, dtype=np.float32))


def _input_shape(path: Path, engine: str) -> tuple[int, ...]:
    """The input shape the artefact takes: from the program (ExecuTorch, LiteRT) or, for ncnn
    (whose .param has none), from the sidecar's input_size."""
    if engine == "executorch":
        _portable_lib()
        from executorch.runtime import Runtime

        return tuple(Runtime.get().load_program(path).metadata("forward").input_tensor_meta(0).sizes())
    if engine == "litert":  # as the runner takes it: NCHW, whatever the file's layout
        from ai_edge_litert.interpreter import Interpreter

        shape = tuple(int(d) for d in Interpreter(model_path=str(path)).get_input_details()[0]["shape"])
        return (shape[0], shape[3], shape[1], shape[2]) if _is_nhwc(shape) else shape
    side = path.with_suffix(".json")
    size = json.loads(side.read_text()).get("input_size") if side.is_file() else None
    return (1, *(size or (3, 224, 224)))


def _is_nhwc(shape) -> bool:
    """A LiteRT input laid out N,H,W,C (TensorFlow's converters) rather than PyTorch's N,C,H,W:
    read from where the 1 or 3 channels sit."""
    return len(shape) == 4 and shape[-1] in (1, 3) and shape[1] not in (1, 3)


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"
