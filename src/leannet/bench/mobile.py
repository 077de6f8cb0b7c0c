"""Sweep cells on the mobile engines (ExecuTorch, ncnn, LiteRT): the artefact each cell runs.

A zoo or checkpoint source is exported once per shape into the sweep's work folder, as the
ONNX cells are: ExecuTorch fp32 / INT8 (.pte, XNNPACK) and ncnn (.param via pnnx, fp32).
LiteRT runs only the .tflite files a user brings (its PyTorch converter, litert-torch, does
not install beside leannet's pins; see docs/mobile.md). The runner opens through
`open_runner`, so each artefact is pre-flown in a child process first: an engine that
crashes costs its cell an error row, not the sweep.

ExecuTorch's lowering is the slowest preparation a sweep has (5-30 s a model, ~4 min for the
seeds preset, in Python on one core) and each pre-flight child pays ~9 s to import the engine.
So the sweep hands these exports to `Exporter`: one background process that exports each
artefact and then runs the pre-flight's smoke on it itself, while the sweep prepares its other
cells on the other core. The worker is the pre-flight: a job it dies on (a signal) becomes that
cell's error row naming the signal, and a fresh worker takes the jobs after it. The worker is
gone before any cell is timed.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import queue
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from leannet.errors import LeannetError, reason

MOBILE_RUNTIMES = ("executorch", "ncnn", "litert")
SUFFIX_OF = {"executorch": ".pte", "ncnn": ".param", "litert": ".tflite"}


def mobile_artefact(model, workdir: Path, label: str, runtime: str, precision: str, shape: tuple[int, ...],
                    files: dict[tuple, Any], calib: np.ndarray | None = None,
                    exporter: Exporter | None = None) -> Path | None:
    """The artefact a model cell runs on `runtime` (made once per shape and precision). With an
    `exporter` the export is only submitted to it (None is returned); a later call without one
    takes the job back if the worker has not started it (and exports here: the caller has a
    core to spare by then), else waits for it and raises what the worker raised."""
    key = (runtime, precision, shape)
    if isinstance(job := files.get(key), Future):
        if job.cancel():
            del files[key]
        else:
            files[key] = job.result()  # re-raises the job's error for every cell that asks
    if key in files:
        return files[key]
    path = workdir / f"{label}_b{shape[0]}_{shape[2]}{'_int8' if precision == 'int8' else ''}{SUFFIX_OF[runtime]}"
    if exporter is not None and runtime in exporter.RUNTIMES:
        if job := exporter.submit(model, path, runtime, precision, shape, calib):
            files[key] = job
        return None
    files[key] = _export(model, path, runtime, precision, shape, calib)
    return files[key]


def _export(model, path: Path, runtime: str, precision: str, shape: tuple[int, ...], calib: np.ndarray | None) -> Path:
    size = tuple(shape[1:])
    if runtime == "executorch":
        from leannet.deploy.executorch import export_executorch, quantize_executorch

        if precision == "int8":
            quantize_executorch(model, path, calib, size, shape[0])
        else:
            export_executorch(model, path, size, shape[0])
    elif runtime == "ncnn":
        from leannet.deploy.ncnn import export_ncnn

        export_ncnn(model, path, size, shape[0])
        # ncnn's .param holds no input shape: the pre-flight reads it from a sidecar
        from leannet.deploy.artefact import write_sidecar

        write_sidecar(path, {"input_size": list(size)})
    else:
        raise LeannetError("litert runs .tflite files you bring (no PyTorch converter installs beside "
                           "leannet's pins): bench the .tflite itself, see docs/mobile.md")
    return path


class Exporter:
    """Mobile exports (and their pre-flight smoke) in one background process, in submission order.

    A thread here feeds the worker one job at a time and waits for its answer or its death, so
    a job's crash is known to be that job's. Models cross as plain pickles (bytes: no shared
    memory, which small /dev/shm mounts refuse). `close` ends the worker; a sweep closes it
    before timing so that it never competes with a timed cell."""

    RUNTIMES = ("executorch", "ncnn")
    JOB_TIMEOUT = 900.0  # seconds per export + smoke: resnet50's ExecuTorch lowering takes ~30 s

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._jobs: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._proc: Any = None
        self._conn: Any = None

    def submit(self, model, path: Path, runtime: str, precision: str, shape: tuple[int, ...],
               calib: np.ndarray | None) -> Future | None:
        """Queue one export; None if the model cannot cross to another process (it is then
        exported here, when its cell asks)."""
        from leannet.runtime import mobile as engines

        try:
            blob = pickle.dumps(model)
        except Exception:  # a module holding a lambda or a handle: exported in this process
            return None
        job = {"model": blob, "path": str(path), "runtime": runtime, "precision": precision, "shape": shape,
               "calib": calib, "threads": self.threads, "smoke": engines.SMOKE_TARGET}
        future: Future = Future()
        self._jobs.put((future, job))
        if self._thread is None:
            self._thread = threading.Thread(target=self._feed, name="leannet-exporter", daemon=True)
            self._thread.start()
        return future

    def close(self, kill: bool = False) -> None:
        """End the worker once its queue is done, or at once (`kill`: the sweep is stopping)."""
        if kill and (proc := self._proc) is not None:
            proc.kill()  # the feeding thread sees it die and fails the job it waited on
            while True:  # and nothing after it
                try:
                    self._jobs.get_nowait()[0].cancel()
                except (queue.Empty, TypeError):
                    break
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
        self._stop()

    def __enter__(self) -> Exporter:
        return self

    def __exit__(self, kind, *exc) -> None:
        self.close(kill=kind is not None)

    def _feed(self) -> None:
        while (item := self._jobs.get()) is not None:
            future, job = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(self._run(job))
            except BaseException as e:  # the cell's error row says it
                future.set_exception(e)

    def _run(self, job: dict[str, Any]) -> Path:
        from leannet.runtime.mobile import crash_text, mark_preflown

        if self._proc is None:
            ctx = multiprocessing.get_context("spawn")
            self._conn, child = ctx.Pipe()
            self._proc = ctx.Process(target=_serve, args=(child,), name="leannet-exporter", daemon=True)
            self._proc.start()
            child.close()
        path = Path(job["path"])
        what = f"{job['runtime']} on {path.name}"
        self._conn.send(job)
        stage = "exporting it"
        while True:
            if not self._conn.poll(self.JOB_TIMEOUT):
                self._stop()
                raise LeannetError(f"{what}: no answer within {self.JOB_TIMEOUT:.0f} s ({stage} in a background process)")
            try:
                status, value = self._conn.recv()
            except (EOFError, OSError):  # the worker died: this job killed it
                self._proc.join(10)
                code = self._proc.exitcode
                self._stop()
                if code is not None and code < 0:
                    raise LeannetError(crash_text(what, code, f"{stage} in a background process")) from None
                raise LeannetError(f"{what}: the background exporter exited (code {code}) {stage}") from None
            if status == "smoke":
                stage = "running it once (pre-flight)"
            elif status == "ok":
                mark_preflown(path, job["runtime"])
                return path
            else:
                raise value

    def _stop(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self._conn.send(None)
            self._proc.join(5)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join()
            self._conn.close()
        self._proc = self._conn = None


def _serve(conn) -> None:
    """The background process: export each job's model, run the pre-flight smoke on the result,
    answer ("smoke", None) between the two and ("ok", path) or ("error", exception) after."""
    import importlib
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the sweep ends this
    torch.set_num_threads(1)  # the sweep's own preparation has the other core
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        try:
            model = pickle.loads(job["model"])
            path = _export(model, Path(job["path"]), job["runtime"], job["precision"], tuple(job["shape"]), job["calib"])
            conn.send(("smoke", None))
            module, fn = job["smoke"].split(":")
            getattr(importlib.import_module(module), fn)(str(path), job["runtime"], job["threads"], list(job["shape"]))
            conn.send(("ok", str(path)))
        except Exception as e:
            try:
                pickle.loads(pickle.dumps(e))  # it must arrive as it left
            except Exception:
                e = LeannetError(f"{type(e).__name__}: {reason(e)}")
            conn.send(("error", e))


def mobile_input_dims(path: Path) -> tuple[int | None, ...]:
    """A mobile artefact's input dims, N,C,H,W (None where it does not say): ExecuTorch and
    LiteRT programs fix theirs (a LiteRT NHWC input as the runner takes it, NCHW); an ncnn
    .param records none, so its sidecar's input_size gives C,H,W and N is 1 (ncnn's extractor
    runs one image)."""
    from leannet.runtime.mobile import MOBILE_SUFFIXES, _input_shape

    if path.suffix == ".param":
        from leannet.deploy.artefact import sidecar_fields

        size = sidecar_fields(path).get("input_size")
        return (1, *size) if size else (1, None, None, None)
    return _input_shape(path, MOBILE_SUFFIXES[path.suffix])
