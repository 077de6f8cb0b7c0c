"""The benchmark sweep: what to time (sources x runtimes x precisions x batches), timed in
interleaved rounds with contention detection, cached by environment.

Sources are registry names or shell patterns (`'pplcnet*'`), leannet checkpoints
(`.safetensors`), exported artefacts (`.onnx`, OpenVINO `.xml`, with their sidecars) and
detector files (a checkpoint or artefact whose metadata says task "detection"). The sweep
plans every kind alike: the runtime / precision pairs this CPU can run, then the pairs each
source runs (an artefact its own runtimes and precision), then its input shapes. Preparing a
cell (loading the source once, building its runner and row) is per kind: classifiers here,
detectors in `leannet.bench.detectors`, called as a hook. Every prepared cell of the sweep,
classifier or detector, is then timed in one interleaved run (`leannet.runtime.timing`),
cells that ran beside other work are re-measured at the end (bounded retries), and one JSON
row per cell is appended to OUT/results.jsonl (`leannet.bench.results`).

Every row records what ran: `batch` and `input_shape` as run, `img` its spatial size (the side
of a square, else "HxW"). An artefact's fixed dimensions are never relabelled: a request it
cannot serve is skipped with a note, and a dynamic dimension takes its size from the command
line (`shape`, `img`) or the artefact's sidecar, else its cells are skipped with a note naming
the input.

Rows are cached: a re-run reuses the rows whose key matches (`leannet.bench.results.KEY`:
source, settings, environment fingerprint; a file source by its sha256) and whose data sets
match: top-1 is reused only when measured on the same eval set, an INT8 model only when
calibrated on the same images (each set identified by the content hash of its files).
`force=True` re-measures everything.

The machine's own speed: a probe is timed beside the cells, and a sweep whose probe reads
slower than the fastest probe this machine has on record (in any results folder: kept under
`$LEANNET_HOME`, `leannet.bench.results.machine_probe`) ran on a slowed machine; its rows are
marked contended. docs/dev/ holds the measurements behind these choices.

INT8 cells are quantised by leannet's own path (`leannet.deploy.quantize`): calibrated on
`calib` images when given, otherwise on generated inputs, which is fine for latency and says
nothing about accuracy; every such row says so (`int8_calibration`, and its `top1_source`).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import json
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from leannet.bench.mobile import (
    MOBILE_RUNTIMES,
    SUFFIX_OF,
    Exporter,
    mobile_artefact,
    mobile_input_dims,
)
from leannet.bench.options import DEFAULT_RUNTIMES, ENGINES, INSTALLED, PRESETS, RUNTIMES, SUPPORTED
from leannet.bench.results import (  # noqa: F401 (re-exported: the sweep's file and environment)
    KEY,
    append_rows,
    default_threads,
    drop_partial_line,
    environment,
    fingerprint,
    machine_probe,
    read_rows,
    record_machine_probe,
    row_key,
)
from leannet.bench.sources import (
    CellId,
    Context,
    Source,
    artefact_runs,
    error_text,
    file_digest,
    img_label,
    readers,
    static_costs,
)
from leannet.errors import LeannetError, UnknownModelError, UnknownRuntimeError
from leannet.extras import MissingExtraError
from leannet.fileio import sha256
from leannet.runtime import timing
from leannet.runtime.runners import ARTEFACT_SUFFIXES, PRECISIONS, Runner
from leannet.runtime.threads import torch_threads

_REQUIRES = {"onnxruntime": "onnxruntime (pip install 'leannet[deploy]')",
             "openvino": "openvino (pip install 'leannet[deploy]')", "cuda": "a CUDA device",
             "compile": "torch.compile", "executorch": "executorch (pip install 'leannet[mobile]')",
             "ncnn": "ncnn and pnnx (pip install 'leannet[mobile]')",
             "litert": "ai-edge-litert (pip install 'leannet[mobile]')"}
FORM = {True: "deployed: re-parameterised, BatchNorm folded", False: "train-time form, eval mode"}
ROW_FIELDS = ("model", "runtime", "precision", "batch", "median_ms", "iqr_ms", "p90_ms", "contended",
              "others_cores", "macs", "params", "published_top1", "top1", "top1_source", "throughput_ips",
              "task", "weights")  # task: "detect" on detector rows (leannet.bench.detectors), empty on classifiers
DEFAULT_SIDE = 224  # the ImageNet input side: what zoo models are trained and published at
CALIBRATION_INPUTS = 32  # generated INT8 calibration inputs: enough for stable ranges; latency only
EVAL_BATCH = 64  # images decoded per chunk when measuring top-1: bounds memory, not the runner's batch
TABLE_WIDTH = 140  # characters of `format_rows`'s table: every column fits without wrapping
_sha256 = file_digest  # the name the tests and benchmarks know


# --- sources -------------------------------------------------------------------------------------


def _is_detector(path: Path) -> bool:
    from leannet.bench.detectors import is_detector

    return is_detector(str(path))


def resolve_sources(specs: Iterable[str], preset: str | None = None) -> tuple[list[Source], list[str]]:
    """Sources to benchmark, and notes for preset members not registered (yet). A spec with a
    shell wildcard matches registry names; a path ending in .safetensors/.onnx/.xml is a file
    (a detector's when its metadata or sidecar says so)."""
    from leannet.registry import list_models, resolve

    sources, notes = [], []
    specs = [s for spec in specs for s in str(spec).split(",") if s.strip()]
    for spec in specs:
        spec = spec.strip()
        path = Path(spec)
        if path.suffix in (".safetensors", *ARTEFACT_SUFFIXES):
            if not path.is_file():
                raise LeannetError(f"{path}: no such file")
            kind = "checkpoint" if path.suffix == ".safetensors" else "artefact"
            task = "detect" if _is_detector(path) else "classify"
            sources.append(Source(str(path), kind, path.stem, file_digest(path), task))
        elif any(c in spec for c in "*?["):
            names = list_models(spec)
            if not names:
                raise UnknownModelError(f"no registered model matches {spec!r}; see `leannet models`")
            sources += [Source(n, "zoo", n) for n in names]
        else:
            name = resolve(spec)
            sources.append(Source(name, "zoo", name))
    if preset is not None:
        if preset not in PRESETS:
            raise LeannetError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        for m in PRESETS[preset]:
            try:
                sources.append(Source(resolve(m), "zoo", resolve(m)))
            except UnknownModelError:
                notes.append(f"preset {preset}: {m} is not registered in this build, skipped")
    if not sources:
        raise LeannetError("nothing to benchmark: name models, patterns or files, or use --preset")
    return list(dict.fromkeys(sources)), notes


def resolve_runtimes(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """Runtimes that can run here, and one note per runtime that can't. The name "installed"
    stands for every engine of `ENGINES` that can run here (one note names those that can't)."""
    import importlib.util

    if INSTALLED in names:
        here, _ = resolve_runtimes(ENGINES)
        rest, notes = resolve_runtimes([n for n in names if n != INSTALLED])
        skipped = [n for n in ENGINES if n not in here and n != "cuda"]
        notes.append(f"runtimes installed here: {', '.join(here)}"
                     + (f" (not: {'; '.join(_REQUIRES[n] for n in skipped)})" if skipped else ""))
        return list(dict.fromkeys(here + rest)), notes
    usable, notes = [], []
    for name in names:
        if name not in RUNTIMES:
            raise UnknownRuntimeError(f"unknown runtime {name!r}; choose from {', '.join(RUNTIMES)} or {INSTALLED}")
        ok = {"onnxruntime": lambda: importlib.util.find_spec("onnxruntime") is not None,
              "openvino": lambda: importlib.util.find_spec("openvino") is not None,
              "executorch": lambda: importlib.util.find_spec("executorch") is not None,
              "ncnn": lambda: all(importlib.util.find_spec(m) for m in ("ncnn", "pnnx")),
              "litert": lambda: importlib.util.find_spec("ai_edge_litert") is not None,
              "cuda": torch.cuda.is_available,
              "compile": lambda: hasattr(torch, "compile")}.get(name, lambda: True)()
        if ok:
            usable.append(name)
        else:
            notes.append(f"skipping runtime {name}: {_REQUIRES[name]} is not available")
    return usable, notes


def check_precisions(names: Sequence[str]) -> list[str]:
    bad = [p for p in names if p not in PRECISIONS]
    if bad:
        raise LeannetError(f"unknown precision {bad[0]!r}; choose from {', '.join(PRECISIONS)}")
    return list(dict.fromkeys(names))


def input_request(img: int | str | Sequence[int] | None, shape: Sequence[int] | None,
                  batches: Sequence[int] | None) -> tuple[tuple[int, int] | None, int | None, list[int]]:
    """The input asked for: (height, width) or None (each source's own), channels or None,
    and the batch sizes. `img` is a side, "HxW" or (H, W); `shape` is N,C,H,W (its N is the batch)."""
    hw = None
    if img is not None:
        if isinstance(img, str):
            h, _, w = img.lower().partition("x")
            try:
                hw = (int(h), int(w or h))
            except ValueError:
                raise LeannetError(f"--img {img!r}: expected a side (224) or HxW (256x320)") from None
        elif isinstance(img, int):
            hw = (img, img)
        else:
            hw = (int(img[0]), int(img[-1]))
    channels = None
    if shape is not None:
        shape = [int(v) for v in shape]
        if len(shape) != 4 or min(shape) < 1:
            raise LeannetError(f"--shape {','.join(map(str, shape))}: expected N,C,H,W, four positive integers")
        if hw is not None and hw != tuple(shape[2:]):
            raise LeannetError(f"--img {img} and --shape {','.join(map(str, shape))} disagree; give one")
        if batches and list(batches) != [shape[0]]:
            raise LeannetError(f"--batch {','.join(map(str, batches))} and --shape's batch {shape[0]} "
                               "disagree; give the batch in one of them")
        hw, channels, batches = (shape[2], shape[3]), shape[1], [shape[0]]
    batches = list(dict.fromkeys(batches or [1]))
    if (hw is not None and min(hw) < 1) or min(batches) < 1:
        raise LeannetError("input sizes and batch sizes must be positive")
    return hw, channels, batches


# --- planning ------------------------------------------------------------------------------------


def _runs_here(runtime: str, precision: str) -> bool:
    """Whether this CPU runs `precision` in `runtime` (OpenVINO bf16 needs bf16 kernels: without
    them it runs f32 and would label it bf16)."""
    if runtime == "openvino" and precision == "bf16":
        from leannet.runtime.runners import openvino_precision_supported

        return openvino_precision_supported("bf16")
    return True


def _pairs(rts: Sequence[str], precisions: Sequence[str], notes: list[str]) -> list[tuple[str, str]]:
    """The runtime x precision pairs a sweep may run here, for every kind of source."""
    pairs = []
    for rt in rts:
        for prec in precisions:
            if prec not in SUPPORTED[rt]:
                notes.append(f"{rt} does not run {prec} (it runs {', '.join(SUPPORTED[rt])}); skipped")
            elif not _runs_here(rt, prec):
                notes.append(f"{rt} has no {prec} kernels on this CPU (it would run fp32 and call it {prec}); skipped")
            else:
                pairs.append((rt, prec))
    return pairs


def _runs(source: Source, runtime: str, precision: str) -> bool:
    """A classifier from a model runs everywhere; an artefact only where `artefact_runs` says."""
    return source.kind != "artefact" or artefact_runs(source, runtime, precision)


@functools.cache  # a Source carries its file's sha256: a changed file is a new key
def artefact_input(source: Source) -> tuple[str, tuple[int | None, ...]]:
    """An artefact's first input: its name and dims (None where dynamic: a symbolic or
    non-positive dimension)."""
    path = Path(source.spec)
    if path.suffix in SUFFIX_OF.values():
        return "input", mobile_input_dims(path)
    if path.suffix == ".onnx":
        import onnx

        inp = onnx.load(str(path), load_external_data=False).graph.input[0]
        dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                     for d in inp.type.tensor_type.shape.dim)
        return inp.name, dims
    import openvino as ov

    inp = ov.Core().read_model(str(path)).inputs[0]
    dims = tuple(d.get_length() if d.is_static else None for d in inp.get_partial_shape())
    return inp.get_any_name(), dims


def _artefact_shape(source: Source, batch: int, hw: tuple[int, int] | None,
                    channels: int | None) -> tuple[tuple[int, int, int, int] | None, str | None]:
    """The input shape an artefact runs at for this request, or a note why it cannot: a fixed
    dimension is never overridden, a dynamic one takes the request, else the sidecar's size."""
    from leannet.deploy.artefact import sidecar_fields

    name, dims = artefact_input(source)
    shown = "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"
    if len(dims) != 4:
        return None, f"{source.spec}: input {name!r} has dims {shown}, not N,C,H,W; leannet bench times image models"
    own = sidecar_fields(source.spec).get("input_size")
    own = list(own) if isinstance(own, list) and len(own) == 3 else [None, None, None]
    want = [batch, channels, *(hw or (None, None))]
    shape = []
    for axis, fixed, asked, default in zip("NCHW", dims, want, [batch, *own], strict=True):
        if fixed is not None and asked is not None and fixed != asked:
            flag = "--batch" if axis == "N" else "--shape" if axis == "C" else "--img/--shape"
            return None, (f"{source.spec}: input {name!r} is fixed at {shown}; {axis}={asked} asked, skipped "
                          f"(its {axis} is {fixed}: ask {flag} {fixed}, or export it with that size)")
        value = fixed or asked or default
        if value is None:
            return None, (f"{source.spec}: input {name!r} has dynamic dims {shown}; give its shape with "
                          f"--shape N,C,H,W (e.g. --shape {batch},3,224,224) or --img HxW")
        shape.append(int(value))
    return tuple(shape), None


def _plan(sources: Sequence[Source], pairs: Sequence[tuple[str, str]], batches: Sequence[int],
          hw: tuple[int, int] | None, channels: int | None, notes: list[str],
          data_sets: bool = False) -> list[CellId]:
    """Every cell to run: per source, the pairs it runs and the input shapes it takes."""
    plan: list[CellId] = []
    for s in sources:
        if s.task == "detect":
            from leannet.bench import detectors

            plan += detectors.plan(s, pairs, batches, hw, notes, data_sets)
            continue
        if s.kind == "artefact" and not any(_runs(s, rt, prec) for rt, prec in pairs):
            notes.append(f"{s.spec}: no runtime asked for runs it ({', '.join(rt for rt, _ in pairs)}); "
                         f"its format runs on {' or '.join(readers(s.spec))}: add it to --runtimes")
            continue
        for b in batches:
            for rt, prec in pairs:
                if not _runs(s, rt, prec):
                    continue
                if s.kind == "artefact":
                    try:
                        shape, why = _artefact_shape(s, b, hw, channels)
                    except Exception:  # an unreadable file: prepared anyway, its error row says why
                        plan.append(CellId(s, rt, prec, b, hw or (DEFAULT_SIDE, DEFAULT_SIDE)))
                        continue
                    if why is not None:
                        if why not in notes:
                            notes.append(why)
                        continue
                    plan.append(CellId(s, rt, prec, b, shape[2:], shape))
                else:
                    plan.append(CellId(s, rt, prec, b, hw or (DEFAULT_SIDE, DEFAULT_SIDE)))
    return plan


# --- data sets: their identity is part of the cache key ------------------------------------------


def _file_hashes(root: Path, paths: Sequence[Path], extra: Sequence[Path] = ()) -> tuple[str, dict[str, str]]:
    """A data set's identity: sha256 over its files' sorted relative paths and contents (and
    `extra` files, say a list file with the labels), 16 hex digits; and {sha256: relative path}."""
    base = root if root.is_dir() else root.parent
    files = {}
    for p in paths:
        try:
            rel = str(Path(p).resolve().relative_to(base.resolve()))
        except ValueError:
            rel = str(Path(p).resolve())
        files[rel] = sha256(p)
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(f"{rel}\0{files[rel]}\n".encode())
    for p in extra:
        h.update(sha256(p).encode())
    return h.hexdigest()[:16], {v: k for k, v in files.items()}


class DataIds:
    """The identities of one bench call's eval and calibration sets, each computed once, when
    first asked for (hashing every file is cheap beside measuring, but not free)."""

    def __init__(self, eval_set: str | Path | None, calib: str | Path | None) -> None:
        self.eval_set, self.calib = eval_set, calib

    @functools.cached_property
    def _eval(self) -> tuple[str, dict[str, str]] | None:
        if self.eval_set is None:
            return None
        from leannet.data.images import labelled_images

        root = Path(self.eval_set)
        return _file_hashes(root, labelled_images(root).paths, [root] if root.is_file() else [])

    @functools.cached_property
    def _calib(self) -> tuple[str, dict[str, str]] | None:
        if self.calib is None:
            return None
        from leannet.deploy.quantize import calibration_paths

        root = Path(self.calib)
        return _file_hashes(root, calibration_paths(root), [root] if root.is_file() else [])

    @property
    def eval_id(self) -> str | None:
        return None if self._eval is None else self._eval[0]

    @property
    def calib_id(self) -> str | None:
        return None if self._calib is None else self._calib[0]

    def shared(self) -> int:
        """How many calibration images are also eval images (by content)."""
        if self._eval is None or self._calib is None:
            return 0
        return len(self._eval[1].keys() & self._calib[1].keys())


# --- preparing cells -----------------------------------------------------------------------------


@dataclass
class Prepared:
    """A source loaded once: the model, its preprocessing and lazily made artefacts."""

    source: Source
    model: torch.nn.Module | None  # None for artefact sources
    pre: dict[str, Any]
    classes: list[str]
    workdir: Path
    files: dict[tuple, Path] = field(default_factory=dict)
    weights: dict[str, Any] = field(default_factory=dict)  # provenance and published top-1 (`_load`)


def _load(source: Source, deployed: bool, workdir: Path, download: bool = False) -> Prepared:
    """Load a source once, with its weights' provenance (`Prepared.weights`).

    A zoo name is timed with its published weights when the caches hold them, and with a fixed
    random init (seed 0: the same in every run, so a row's max_abs_diff reproduces; the
    caller's random stream is left as it was) when they don't: weights don't change latency,
    so a latency sweep never downloads (a preset would fetch gigabytes, and each unreachable
    download costs ~30 s of huggingface_hub's retries; `make run` and the tests run offline).
    An accuracy sweep (`--eval`) does (`download`): top-1 of random weights answers nothing. Such rows say `"weights": "random (latency only)"`, carry no
    top-1 and print a note; `leannet export NAME` (or `create_model(NAME, pretrained=True)`)
    fetches the weights once, and later sweeps find them. A checkpoint's provenance is its path
    and sha256; an artefact's is what its sidecar records."""
    from leannet.deploy.artefact import load_model, read_sidecar
    from leannet.deploy.reparam import reparameterize

    if source.kind == "artefact":
        record = read_sidecar(source.spec) if Path(source.spec).with_suffix(".json").is_file() else {}
        pre = {k: record[k] for k in ("input_size", "mean", "std", "interpolation", "crop_pct") if k in record}
        weights = {"weights": record.get("weights") or "unknown (the sidecar does not record it)",
                   "weights_sha256": record.get("weights_sha256"), "top1": record.get("weights_top1"),
                   "top1_source": record.get("weights_top1_source", "")}
        return Prepared(source, None, pre, [str(c) for c in record.get("classes", [])], workdir, weights=weights)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        loaded = load_model(source.spec, random_weights=source.kind == "zoo", download=download)
    model = reparameterize(loaded.model) if deployed else loaded.model
    weights = {"weights": loaded.weights, "weights_sha256": loaded.weights_sha256, "top1": loaded.top1,
               "top1_source": loaded.top1_source}
    if loaded.random:
        weights["note"] = (f"{source.label}: its published weights are not cached here, timed with a fixed random "
                           "init (latency is the same; its rows carry no top-1); `leannet export "
                           f"{source.label}` fetches them")
    return Prepared(source, model.eval(), dict(loaded.preprocessing), loaded.classes, workdir, weights=weights)


def _fetched_since(row: dict[str, Any], memo: dict[str, bool]) -> bool:
    """Whether a cached zoo row timed with random weights now has its published weights in the
    caches: it is measured again, so the row carries them and their top-1 (its latency would
    not change; its claims do). Looked up once per model and sweep (`memo`)."""
    from leannet.weights.hub import RANDOM_WEIGHTS, published_weights

    if row.get("source_kind") != "zoo" or row.get("weights") != RANDOM_WEIGHTS:
        return False
    name = row["model"]
    if name not in memo:
        try:
            published_weights(name, download=False)
            memo[name] = True
        except LeannetError:
            memo[name] = False
    return memo[name]


def _onnx(p: Prepared, shape: tuple[int, ...]) -> Path:
    from leannet.deploy.onnx import export_onnx

    key = ("onnx", shape)
    if key not in p.files:
        path = p.workdir / f"{p.source.label}_b{shape[0]}_{shape[2]}x{shape[3]}.onnx"
        export_onnx(p.model, path, input_size=tuple(shape[1:]), batch=shape[0])
        p.files[key] = path
    return p.files[key]


def _int8(p: Prepared, runtime: str, shape: tuple[int, ...], calib: np.ndarray) -> Path:
    from leannet.deploy.quantize import quantize_onnx, quantize_openvino

    key = ("int8", runtime, shape)
    if key not in p.files:
        fp32 = _onnx(p, shape)
        if runtime == "onnxruntime":
            p.files[key] = quantize_onnx(fp32, fp32.with_name(fp32.stem + "_int8.onnx"), calib, shape[0])
        else:
            p.files[key] = quantize_openvino(fp32, fp32.with_name(fp32.stem + "_int8.xml"), calib, shape[0])
    return p.files[key]


def _calibration(p: Prepared, shape: tuple[int, ...], calib: str | Path | None) -> tuple[np.ndarray, str]:
    if calib is not None:
        from leannet.deploy.quantize import calibration_inputs

        pre = {**p.pre, "input_size": list(shape[1:])}
        x = calibration_inputs(calib, pre)
        return x, f"{len(x)} images from {calib}"
    rng = np.random.default_rng(0)
    return (rng.standard_normal((CALIBRATION_INPUTS, *shape[1:]), dtype=np.float32),
            "generated inputs: latency only, accuracy not representative")


def make_runner(p: Prepared, runtime: str, precision: str, shape: tuple[int, ...], threads: int,
                calib: str | Path | None = None) -> tuple[Runner, dict[str, Any]]:
    """The runner of one cell, and what its row must record about how it was made."""
    from leannet.runtime.runners import (
        onnxruntime_runner,
        open_runner,
        openvino_runner,
        torch_runner,
    )

    extra: dict[str, Any] = {}
    if p.model is None:  # an exported artefact runs as it is
        return open_runner(p.source.spec, runtime, threads), extra
    if runtime in MOBILE_RUNTIMES:
        x = None
        if precision == "int8":
            x, extra["int8_calibration"] = _calibration(p, shape, calib)
        path = mobile_artefact(p.model, p.workdir, p.source.label, runtime, precision, shape, p.files, x)
        return open_runner(path, runtime, threads, precision), extra
    if runtime in ("eager", "channels_last", "compile", "cuda"):
        return torch_runner(p.model, precision, channels_last=runtime == "channels_last",
                            compile=runtime == "compile",
                            device="cuda" if runtime == "cuda" else "cpu"), extra
    if precision == "int8":
        x, how = _calibration(p, shape, calib)
        path = _int8(p, runtime, shape, x)
        extra["int8_calibration"] = how
    else:
        path = _onnx(p, shape)
    if runtime == "onnxruntime":
        return onnxruntime_runner(path, threads, precision), extra
    return openvino_runner(path, threads, precision), extra


def _published(name: str) -> dict[str, Any]:
    """The paper's facts about architecture `name` (top-1, latency and their source), kept on
    the row as the paper's claims; a row's own accuracy is `top1` (`_accuracy`), which never
    borrows the paper's figure."""
    from leannet.registry import model_info

    try:
        p = model_info(name).published
    except UnknownModelError:
        return {"published_top1": None}
    return {"published_top1": p.top1, "published_latency_ms": p.latency_ms,
            "published_latency_hw": p.latency_hw, "published_source": p.source}


def _eval_top1(runner: Runner, p: Prepared, eval_set: str | Path, shape: tuple[int, ...]) -> float:
    from leannet.data.images import image_batches, labelled_images
    from leannet.runtime.runners import run_all

    pre = {**p.pre, "input_size": list(shape[1:])}
    samples = labelled_images(eval_set, classes=p.classes or None)
    x = np.concatenate([a for _, a in image_batches(samples.paths, pre, EVAL_BATCH)])
    logits = run_all(runner, x, batch=shape[0])
    return float(100.0 * (logits.argmax(1) == np.asarray(samples.labels)).mean())


def _arch(p: Prepared) -> str | None:
    """The registry name behind a source (a checkpoint's metadata names it; an artefact's sidecar
    records its source model), for published facts."""
    if p.source.kind == "zoo":
        return p.source.label
    if p.model is not None:
        return getattr(getattr(p.model, "pretrained_cfg", None), "name", None)
    from leannet.deploy.artefact import sidecar_fields

    return sidecar_fields(p.source.spec).get("source_model")


def _accuracy(p: Prepared, runner: Runner, eval_set: str | Path | None, shape: tuple[int, ...],
              precision: str) -> dict[str, Any]:
    """Top-1 for the row: measured on `eval_set` when given; else the top-1 published for the
    weights the model carries (`Prepared.weights`: the published checkpoint, or an artefact
    exported from it), in fp32 or bf16 at the input size it was published for. Anything else
    (a fine-tuned checkpoint, random weights, INT8, another input size) is not measured: the
    paper's ImageNet figure says nothing about it."""
    if eval_set is not None:
        return {"top1": _eval_top1(runner, p, eval_set, shape), "top1_source": f"measured on {eval_set}"}
    top1 = p.weights.get("top1")
    at_size = p.source.kind != "zoo" or list(shape[2:]) == list(p.pre.get("input_size", [0, 0, 0])[1:])
    if precision == "int8" or top1 is None or not at_size:
        return {"top1": None, "top1_source": "not measured (give --eval)"}
    return {"top1": top1, "top1_source": f"published for {p.weights['weights']} ({p.weights['top1_source']})"}


def _int8_caveat(ids: DataIds) -> str:
    """What a measured INT8 top-1 must say about its calibration: generated inputs make it
    unrepresentative; calibration images that are also eval images make it optimistic."""
    if ids.calib is None:
        return "; INT8 calibrated on generated inputs: not representative"
    shared = ids.shared()
    if shared:
        return f"; {shared} of its INT8 calibration images are eval images: optimistic"
    return f"; INT8 calibrated on {ids.calib}"


def _source(s: Source, ctx: Context, loaded: dict[Source, Prepared]) -> Prepared:
    """Source `s` loaded once per sweep (a load that failed is tried again by the next cell, which
    then records the same error)."""
    from rich.markup import escape

    if s not in loaded:
        work = ctx.workdir / f"src{len(loaded)}"
        work.mkdir(parents=True, exist_ok=True)  # an earlier source may have failed to load here
        loaded[s] = _load(s, ctx.deployed, work, download=ctx.eval_set is not None)
        if note := loaded[s].weights.get("note"):
            ctx.console.print(f"[yellow]note:[/] {escape(note)}")
    return loaded[s]


def _cell_shape(cid: CellId, p: Prepared, ctx: Context) -> tuple[int, ...] | None:
    """The input a cell runs: an artefact's own (None if unreadable at planning), else the
    model's channels at the cell's batch and size."""
    if p.model is None:
        return cid.shape
    channels = p.pre["input_size"][0]
    if ctx.channels is not None and ctx.channels != channels:
        raise LeannetError(f"--shape asks for {ctx.channels} input channels; {cid.source.label} takes {channels}")
    return (cid.batch, channels, *cid.hw)


def _exported_in_background(cid: CellId) -> bool:
    """A classifier model's cell on an engine whose export the background `Exporter` makes."""
    return cid.source.task != "detect" and cid.source.kind != "artefact" and cid.runtime in Exporter.RUNTIMES


def _submit_exports(cells: Sequence[CellId], ctx: Context, loaded: dict[Source, Prepared],
                    exporter: Exporter) -> None:
    """Hand the exports of `cells` (`_exported_in_background`) to `exporter` (the cells' own
    preparation collects them, and records any error then)."""
    for cid in cells:
        try:
            p = _source(cid.source, ctx, loaded)
            shape = _cell_shape(cid, p, ctx)
            x = _calibration(p, shape, ctx.calib)[0] if cid.precision == "int8" else None
        except Exception:  # the cell's own preparation meets it again and records it
            continue
        mobile_artefact(p.model, p.workdir, p.source.label, cid.runtime, cid.precision, shape, p.files, x,
                        exporter=exporter)


def _prepare_classifier(cid: CellId, ctx: Context, ids: DataIds, loaded: dict[Source, Prepared],
                        refs: dict[tuple, np.ndarray]) -> tuple[dict[str, Any], timing.Cell | None]:
    """One classifier cell's row (what ran) and timing cell; a cell that fails gets an error row
    (one broken runtime must not lose the sweep)."""
    from rich.markup import escape

    from leannet.runtime.runners import torch_runner

    s, rt, prec, b = cid.source, cid.runtime, cid.precision, cid.batch
    made_here = s.kind != "artefact"
    row: dict[str, Any] = {
        "model": s.label, "source": s.id, "source_kind": s.kind, "runtime": rt, "precision": prec,
        "batch": b, "img": img_label(cid.hw), "threads": ctx.threads, "deployed": ctx.deployed,
        "form": FORM[ctx.deployed] if made_here else "exported artefact",
        "fingerprint": ctx.env["fingerprint"],
        "eval_set_id": ids.eval_id if ctx.eval_set is not None else None,
        "calib_set_id": ids.calib_id if prec == "int8" and made_here else None}
    if s.kind != "zoo":
        row["path"] = s.spec
    try:
        p = _source(s, ctx, loaded)
        shape = _cell_shape(cid, p, ctx)
        row["arch"] = _arch(p)
        row |= {k: p.weights[k] for k in ("weights", "weights_sha256") if p.weights.get(k)}
        row |= _published(row["arch"]) if row["arch"] else {"published_top1": None}
        base = timing.reset_peak_rss()
        runner, extra = make_runner(p, rt, prec, shape or (b, 3, *cid.hw), ctx.threads, ctx.calib)
        if shape is None:  # an artefact unreadable at planning: its runner said why, or this does
            shape, why = _artefact_shape(s, b, cid.hw, ctx.channels)
            if why:
                raise LeannetError(why)
        row["input_shape"] = list(shape)
        if p.model is not None:
            row |= static_costs(p.model, shape)
        row |= extra
        x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        got = np.asarray(runner(x), dtype=np.float32)
        runner(x)
        row["peak_mem_mb"] = timing.peak_rss_growth_mb(base)
        if p.model is not None:
            if (s, shape) not in refs:
                refs[(s, shape)] = torch_runner(p.model)(x)
            ref = refs[(s, shape)]
            diff = float(np.abs(got - ref).max())
            row |= {"max_abs_diff": diff, "max_rel_diff": diff / max(float(np.abs(ref).max()), 1e-12)}
        row["runtime_info"] = runner.info
        row |= _accuracy(p, runner, ctx.eval_set, shape, prec)
        if prec == "int8" and made_here and ctx.eval_set is not None and row.get("top1") is not None:
            row["top1_source"] += _int8_caveat(ids)
        cell = timing.Cell(cid, runner.bind(x), b, runner.device_timer)
    except Exception as e:  # one broken runtime must not lose the sweep
        row["error"] = error_text(e)
        ctx.console.print(f"[red]error:[/] {s.label} {rt} {prec} b{b}: {escape(row['error'])}")
        cell = None
    row["env"] = ctx.env
    return row, cell


def _prepare(todo: Sequence[CellId], ctx: Context, ids: DataIds,
             progress: bool) -> dict[CellId, tuple[dict[str, Any], timing.Cell | None]]:
    """Every cell's row and timing cell, by its kind's preparer (detectors: leannet.bench.detectors)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    prepared: dict[CellId, tuple[dict[str, Any], timing.Cell | None]] = {}
    loaded: dict[Source, Prepared] = {}
    refs: dict[tuple, np.ndarray] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    # Mobile exports run in a background process, front to back, while the other cells are
    # prepared here; then this process takes the mobile cells back to front, exporting those the
    # worker has not started yet itself, until the two meet.
    background = [c for c in todo if _exported_in_background(c)]
    order = [c for c in todo if not _exported_in_background(c)] + background[::-1]
    with (Progress(*columns, console=ctx.console, disable=not progress, transient=True) as bar,
          Exporter(ctx.threads) as exporter):
        task = bar.add_task("preparing", total=len(todo))
        if background:
            bar.update(task, description="loading models for their mobile exports")
            _submit_exports(background, ctx, loaded, exporter)
        for cid in order:
            bar.update(task, description=f"preparing {cid.source.label} {cid.runtime} {cid.precision} b{cid.batch}")
            if cid.source.task == "detect":
                from leannet.bench import detectors

                prepared[cid] = detectors.prepare(cid, ctx)
            else:
                prepared[cid] = _prepare_classifier(cid, ctx, ids, loaded, refs)
            bar.advance(task)
    return {cid: prepared[cid] for cid in todo}


# --- the sweep -----------------------------------------------------------------------------------


@dataclass
class Sweep:
    """What a bench call measured (or reused), and what it could not."""

    rows: list[dict[str, Any]]  # one per cell, in sweep order
    results: Path
    notes: list[str] = field(default_factory=list)
    measured: int = 0
    reused: int = 0

    @property
    def contended(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("contended")]


@dataclass(frozen=True)
class Effort:
    """How a sweep times its cells: bench's knobs."""

    threads: int
    min_time: float = 3.0  # seconds of timed calls per cell, over all rounds
    rounds: int = 10
    retries: int = 2  # re-measurements of cells that ran beside other work
    force: bool = False  # re-measure cached rows too
    contended_cores: float = timing.CONTENDED_CORES
    progress: bool = True  # the live table on screen
    on_update: Callable[[list[dict[str, Any]]], None] | None = None  # the rows after every round


def bench(
    models: Sequence[str] = (),
    preset: str | None = None,
    runtimes: Sequence[str] | None = None,
    precisions: Sequence[str] = ("fp32",),
    batches: Sequence[int] | None = None,
    threads: int | None = None,
    img: int | str | Sequence[int] | None = None,
    shape: Sequence[int] | None = None,
    min_time: float = 3.0,
    rounds: int = 10,
    retries: int = 2,
    out: str | Path = "runs/bench",
    deployed: bool = True,
    force: bool = False,
    calib: str | Path | None = None,
    eval_set: str | Path | None = None,
    progress: bool = True,
    contended_cores: float = timing.CONTENDED_CORES,
    on_update: Callable[[list[dict[str, Any]]], None] | None = None,
) -> Sweep:
    """Measure every source x runtime x precision x batch here; append rows to OUT/results.jsonl.

    `img` (a side or "HxW") or `shape` (N,C,H,W, like OpenVINO benchmark_app's -shape) sets
    the input; by default zoo models and checkpoints run at DEFAULT_SIDE and artefacts at their
    own size, batch 1 (`batches`). `min_time` seconds of timed calls per cell, split over
    `rounds` interleaved rounds; cells that ran beside other work are re-measured up to
    `retries` times at the end. Cached rows (same source, settings, environment fingerprint and
    data sets, measured with at least this min_time and rounds) are reused unless `force`.
    `eval_set` (labelled images) adds measured top-1 per cell; `calib` calibrates INT8.
    """
    from rich.console import Console
    from rich.markup import escape

    hw, channels, batches = input_request(img, shape, batches)
    sources, notes = resolve_sources(models, preset)
    if runtimes is None:  # the defaults, and the engine of each mobile artefact given
        engines = [rt for s in sources if s.kind == "artefact" for rt in readers(s.spec) if rt in MOBILE_RUNTIMES]
        runtimes = list(dict.fromkeys([*DEFAULT_RUNTIMES, *engines]))
    rts, rt_notes = resolve_runtimes(runtimes)
    if not rts:  # nothing could run: an error that says what to install, not an empty sweep
        raise MissingExtraError("no runtime asked for can run here; " + "; ".join(rt_notes))
    precisions = check_precisions(precisions)
    threads = threads or default_threads()
    if rounds < 1 or min_time <= 0:
        raise LeannetError("rounds must be >= 1 and min_time > 0")
    results = Path(out) / "results.jsonl"
    env = environment(threads)
    console = Console(stderr=True)  # notes always; progress bars and the live table only with `progress`
    notes = notes + rt_notes
    plan = _plan(sources, _pairs(rts, precisions, notes), batches, hw, channels, notes,
                 eval_set is not None or calib is not None)
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    ids = DataIds(eval_set, calib)
    side = f"{DEFAULT_SIDE} px (artefacts, detectors: their own size)" if hw is None else f"{img_label(hw)} px"
    header = (f"{len(sources)} sources ({FORM[deployed]}) x {len(rts)} runtimes x {len(precisions)} "
              f"precisions x {len(batches)} batch sizes at {side}, {threads} threads")
    how = Effort(threads, min_time, rounds, retries, force, contended_cores, progress, on_update)

    def key_of(c: CellId) -> tuple:
        img_key = c.hw[0] if c.source.task == "detect" else img_label(c.hw)
        return (c.source.id, c.runtime, c.precision, c.batch, img_key, threads, deployed, env["fingerprint"])

    fetched: dict[str, bool] = {}

    def reusable(row: dict[str, Any], c: CellId) -> bool:
        if c.source.task == "detect":
            return True
        if _fetched_since(row, fetched):
            return False
        if eval_set is not None and (row.get("eval_set_id") != ids.eval_id
                                     or not str(row.get("top1_source", "")).startswith("measured")):
            return False
        if c.precision == "int8" and c.source.kind != "artefact":
            if row.get("calib_set_id") != ids.calib_id:
                return False
            if calib is None and not str(row.get("int8_calibration", "")).startswith("generated"):
                return False
        return True

    def finish(row: dict[str, Any], c: CellId) -> None:
        if c.source.task == "detect":
            from leannet.bench import detectors

            detectors.finish(row)

    with tempfile.TemporaryDirectory(prefix="leannet-bench-") as tmp:
        ctx = Context(env, threads, deployed, Path(tmp), console, channels, calib, eval_set)
        return run_plan(plan, key_of, lambda todo: _prepare(todo, ctx, ids, progress),
                        Sweep([], results, notes), env, how, console, header, reusable, finish)


def run_plan(plan: list[CellId], key_of: Callable[[CellId], tuple], prepare: Callable[[list[CellId]], dict],
             sweep: Sweep, env: dict[str, Any], how: Effort, console, header: str,
             reusable: Callable[[dict[str, Any], CellId], bool] = lambda row, c: True,
             finish: Callable[[dict[str, Any], CellId], None] | None = None) -> Sweep:
    """Reuse cached rows (same key, enough effort, `reusable`, not timed on a slowed machine),
    `prepare` the cells to measure ({cell id: (row, timing cell or None)}), time them all in one
    interleaved run, mark rows timed while the machine ran slow, `finish` each row, append them
    to the results file and put this machine's fastest probe on record."""
    drop_partial_line(sweep.results)
    earlier = [r for r in read_rows(sweep.results) if "error" not in r]
    fastest = _fastest(earlier, env["fingerprint"], machine_probe(env["fingerprint"]))
    cached: dict[tuple, list[dict[str, Any]]] = {}
    if not how.force:
        for r in earlier:
            if not _slowed(r, fastest):
                cached.setdefault(row_key(r), []).append(r)
    done: dict[CellId, dict[str, Any]] = {}
    todo = []
    for cid in plan:
        try:
            candidates = cached.get(key_of(cid), [])
        except Exception:  # a source whose key cannot be read: measured, and its error row says why
            candidates = []
        row = next((r for r in reversed(candidates) if _enough(r, how) and reusable(r, cid)), None)
        if row is not None:
            done[cid] = row
        else:
            todo.append(cid)
    sweep.reused = len(done)
    console.print(f"{header}: {len(todo)} cells to measure, {sweep.reused} reused from {sweep.results} "
                  f"(environment {env['fingerprint']})")
    if todo:
        with torch_threads(how.threads):
            prepared = prepare(todo)
            cells = [(cid, row, cell) for cid, (row, cell) in prepared.items() if cell is not None]
            if cells:
                _time(cells, how, console)
        stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        fresh = []
        for cid, (row, _) in prepared.items():
            if finish is not None:
                finish(row, cid)
            row["time"] = stamp
            done[cid] = row
            fresh.append(row)
        _check_machine_speed(fresh, fastest, console)
        append_rows(sweep.results, fresh)
        probes = [r["probe_ms"] for r in fresh if r.get("probe_ms")]
        if probes:
            record_machine_probe(env["fingerprint"], min(probes))
        sweep.measured = sum("error" not in r for r in fresh)
    sweep.rows = [done[c] for c in plan if c in done]
    return sweep


# --- the machine's own speed ---------------------------------------------------------------------


def _fastest(rows: list[dict[str, Any]], env_key: str | None = None, start: float | None = None) -> float | None:
    """The fastest probe among `rows` (those of environment `env_key` when given) and `start`."""
    probes = [r["probe_ms"] for r in rows if r.get("probe_ms") and (env_key is None or r.get("fingerprint") == env_key)]
    best = min([*probes, *([start] if start else [])], default=None)
    return best


def _slowed(row: dict[str, Any], fastest: float | None) -> bool:
    return bool(fastest and row.get("probe_ms")) and row["probe_ms"] / fastest > timing.SLOWED


def _check_machine_speed(rows: list[dict[str, Any]], fastest: float | None, console) -> None:
    """Mark rows timed while the machine itself ran slow (a busy VM host, a lowered clock):
    /proc shows nothing then, but the probe beside the cells slows down. Such rows are
    contended: they are not reused from the cache once a faster probe is on record."""
    timed = [r for r in rows if r.get("probe_ms")]
    if not timed:
        return
    fastest = _fastest(timed, start=fastest)
    for r in timed:
        r["machine_slowdown"] = round(r["probe_ms"] / fastest, 3)
    machine = [r for r in timed if _slowed(r, fastest)]
    for r in machine:
        r["contended"] = True
        r["contended_by"] = [*(w for w in r.get("contended_by", []) if w != "slow machine"), "slow machine"]
    if machine:
        worst = max(r["machine_slowdown"] for r in machine)
        console.print(f"[yellow]{len(machine)} cells ran while this machine was up to {worst:.2f}x slower than its "
                      f"fastest probe on record (a busy VM host or a lowered clock: no other process "
                      f"showed); marked contended, re-run them later[/]")
    unsteady = max(r["probe_iqr"] for r in timed)
    if unsteady > timing.UNSTEADY:
        console.print(f"[yellow]the machine's own speed moved by {100 * unsteady:.0f}% between rounds "
                      f"(probe IQR): figures of this sweep are less certain than their IQR says[/]")


# --- timing --------------------------------------------------------------------------------------


def _time(cells, how: Effort, console) -> None:
    """Interleaved rounds over every cell, then up to `retries` re-measurements of the cells
    that ran beside other work (the least contended measurement is kept; `retries` on a row
    is the attempt whose measurement it keeps, 0 for the first)."""
    from rich.live import Live

    threads, rounds, round_time = how.threads, how.rounds, how.min_time / how.rounds

    def refresh(live, label: str) -> None:
        rows = []
        for _, row, cell in cells:
            if cell.rounds:
                row |= timing.summarise(cell, threads, how.contended_cores)
            rows.append(row)
        if live is not None:
            live.update(live_table(rows, label), refresh=True)
        if how.on_update is not None:
            how.on_update(rows)

    probe = timing.Probe(threads)
    # Redrawn between rounds only: rich's refresh thread would render the table while cells run
    # and take the GIL and a core from them.
    with Live(console=console, auto_refresh=False, transient=False) if how.progress else contextlib.nullcontext() as live:
        timing.time_rounds([probe, *(c for _, _, c in cells)], rounds, round_time,
                           on_round=lambda r: refresh(live, f"round {r + 1}/{rounds}"))
        speed = {id(c): probe.speed() for _, _, c in cells}
        kept = {id(c): 0 for _, _, c in cells}
        for attempt in range(1, how.retries + 1):
            suspect = [(cid, row, c) for cid, row, c in cells if row.get("contended")]
            if not suspect:
                break
            console.print(f"[yellow]{len(suspect)} cells ran beside other work; re-measuring "
                          f"(attempt {attempt}/{how.retries})[/]")
            fresh = [(cid, row, timing.Cell(cid, c.call, c.batch, c.device_timer)) for cid, row, c in suspect]
            probe = timing.Probe(threads)
            timing.time_rounds([probe, *(c for _, _, c in fresh)], rounds, round_time, seed=attempt)
            for (cid, row, new), i in zip(fresh, [cells.index(t) for t in suspect], strict=True):
                again = timing.summarise(new, threads, how.contended_cores)
                row["remeasured"] = attempt
                if _busyness(again) <= _busyness(row):
                    cells[i] = (cid, row, new)
                    speed[id(new)] = probe.speed()
                    kept[id(new)] = attempt
            refresh(live, f"re-measured ({attempt})")
    for _, row, cell in cells:
        row |= timing.summarise(cell, threads, how.contended_cores) | speed[id(cell)]
        row["retries"] = kept[id(cell)]  # the attempt whose measurement the row keeps
        row.setdefault("remeasured", 0)  # re-measurements tried, kept or not
        row["min_time"] = how.min_time  # the effort asked for: a later, more demanding run re-measures
        row["rounds_asked"] = rounds
    from leannet.bench.machine import add_roofline

    add_roofline([row for _, row, _ in cells], threads)  # achieved GFLOP/s, share of the roofline


def _enough(row: dict[str, Any], how: Effort) -> bool:
    """A cached row serves a request for no more effort than it was measured with (a 3 s x 10
    round figure answers a 1 s x 5 request; the reverse is re-measured)."""
    return row.get("min_time", 0.0) >= how.min_time and row.get("rounds_asked", 0) >= how.rounds


def _busyness(m: dict[str, Any]) -> float:
    """How much a measurement competed with other work: cores others took + CPU pressure."""
    return (m.get("others_cores") or 0.0) + (m.get("steal_cores") or 0.0) + (m.get("cpu_pressure") or 0.0)


def why_contended(row: dict[str, Any]) -> str:
    """What marked a row contended, as `timing.summarise` and the machine-speed check recorded
    it: other processes on its cores ("busy"), a task kept waiting for a core ("waiting"),
    more threads than free cores ("threads"), the machine probe reading slow ("slow machine").
    Empty if not contended."""
    if not row.get("contended"):
        return ""
    return ", ".join(row.get("contended_by") or ["contended"])


def live_table(rows: list[dict[str, Any]], title: str = ""):
    """The sweep's progress as a rich table: one line per cell, contended cells marked."""
    from rich.table import Table

    t = Table(title=title, box=None, header_style="bold", pad_edge=False)
    for col in ("model", "runtime", "precision", "batch", "input", "median ms", "IQR ms", "top-1", "others"):
        t.add_column(col, justify="left" if col in ("model", "runtime", "precision") else "right")
    for r in rows:
        size = str(r.get("img", ""))
        if "error" in r:
            t.add_row(r["model"], r["runtime"], r["precision"], str(r["batch"]), size, "error", "", "", "")
            continue
        # a row's own top-1 (published for the weights it carries, or measured), never the paper's
        top1 = r.get("top1")
        top1_cell = f"{top1:.2f}" if top1 is not None else (
            "not measured" if str(r.get("top1_source", "")).startswith("not measured") else "-")
        med = r.get("median_ms")
        flag = f" [red]contended: {why_contended(r)}[/]" if r.get("contended") else ""
        others = r.get("others_cores")
        t.add_row(r["model"], r["runtime"], r["precision"], str(r["batch"]), size,
                  "-" if med is None else f"{med:.3f}", "-" if med is None else f"{r['iqr_ms']:.3f}", top1_cell,
                  ("-" if others is None else f"{others:.2f} cores") + flag)
    return t


# --- output --------------------------------------------------------------------------------------


def format_rows(rows: list[dict[str, Any]], fmt: str = "table") -> str:
    """Rows for stdout: an aligned table, CSV (ROW_FIELDS columns) or JSON lines (whole rows)."""
    if fmt == "json":
        return "\n".join(json.dumps(r) for r in rows)
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=ROW_FIELDS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k) for k in ROW_FIELDS})
        return buf.getvalue().rstrip("\n")
    if fmt != "table":
        raise LeannetError(f"unknown format {fmt!r}; choose from table, csv, json")
    import io

    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=TABLE_WIDTH, no_color=True).print(live_table(rows))
    n = sum(bool(r.get("contended")) for r in rows)
    tail = f"\n{n} of {len(rows)} cells stayed contended: their times read slow." if n else ""
    return buf.getvalue().rstrip("\n") + tail
