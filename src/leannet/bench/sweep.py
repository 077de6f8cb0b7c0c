"""The benchmark sweep: what to time (sources x runtimes x precisions x batches), timed in
interleaved rounds with contention detection, cached by environment.

Sources are registry names or shell patterns (`'pplcnet*'`), leannet checkpoints
(`.safetensors`) and exported artefacts (`.onnx`, OpenVINO `.xml`, with their sidecars).
Models run in their deployed form (re-parameterised, BN folded) unless `deployed=False`.
Each cell gets one `leannet.runtime.Runner`; all cells of a sweep are then timed together by
`leannet.runtime.timing.time_rounds` (R rounds, shuffled order), cells that ran beside other
work are re-measured at the end (bounded retries), and one JSON row per cell is appended to
OUT/results.jsonl (`leannet.bench.results`); `leannet.bench.report` turns it into a report.

Rows are cached: a re-run reuses the rows whose key matches, and the key includes the
environment fingerprint (CPU model and flags, threads, torch / ONNX Runtime / OpenVINO /
leannet versions) and, for files, their sha256, so an upgraded runtime or a changed
checkpoint is measured again. `force=True` re-measures everything.

INT8 cells are quantised by leannet's own path (`leannet.deploy.quantize`): calibrated on
`calib` images when given, otherwise on generated inputs, which is fine for latency and says
nothing about accuracy; every such row says so (`int8_calibration`).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import math
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from leannet.bench import sentinel
from leannet.bench.mobile import MOBILE_RUNTIMES, SUFFIX_OF, artefact_shape, mobile_artefact
from leannet.bench.options import DEFAULT_RUNTIMES, PRESETS, RUNTIMES, SUPPORTED
from leannet.bench.results import (  # noqa: F401 (re-exported: the sweep's file and environment)
    KEY,
    append_rows,
    default_threads,
    drop_partial_line,
    environment,
    fingerprint,
    read_rows,
    row_key,
)
from leannet.errors import LeannetError, UnknownModelError, UnknownRuntimeError, reason
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
              "task")  # task: "detect" on detector rows (leannet.bench.detectors), empty on classifiers


# --- sources -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Something to time: a zoo model, a checkpoint or an exported artefact."""

    spec: str  # as given: a registry name, or a file path
    kind: str  # "zoo" | "checkpoint" | "artefact"
    label: str  # the model name a table shows
    digest: str | None = None  # sha256 prefix of a file source (part of the cache key)

    @property
    def id(self) -> str:
        return self.label if self.kind == "zoo" else f"{self.kind}:{self.digest}"


def _sha256(path: Path) -> str:
    """A file source's identity: its sha256 (an OpenVINO .xml's with its .bin's), 16 hex digits."""
    digest = sha256(path)
    if path.suffix == ".xml" and path.with_suffix(".bin").is_file():
        digest = hashlib.sha256((digest + sha256(path.with_suffix(".bin"))).encode()).hexdigest()
    return digest[:16]


def resolve_sources(specs: Iterable[str], preset: str | None = None) -> tuple[list[Source], list[str]]:
    """Sources to benchmark, and notes for preset members not registered (yet). A spec with a
    shell wildcard matches registry names; a path ending in .safetensors/.onnx/.xml is a file."""
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
            sources.append(Source(str(path), kind, path.stem, _sha256(path)))
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
    """Runtimes that can run here, and one note per runtime that can't."""
    import importlib.util

    usable, notes = [], []
    for name in names:
        if name not in RUNTIMES:
            raise UnknownRuntimeError(f"unknown runtime {name!r}; choose from {', '.join(RUNTIMES)}")
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


def _load(source: Source, deployed: bool, workdir: Path) -> Prepared:
    from leannet.deploy.artefact import load_model, read_sidecar
    from leannet.deploy.reparam import reparameterize

    if source.kind == "artefact":
        record = read_sidecar(source.spec) if Path(source.spec).with_suffix(".json").is_file() else {}
        pre = {k: record[k] for k in ("input_size", "mean", "std", "interpolation", "crop_pct") if k in record}
        return Prepared(source, None, pre, [str(c) for c in record.get("classes", [])], workdir)
    # a registry name without weights gets a random init: the same one in every run, so a row's
    # max_abs_diff reproduces; the caller's random stream is left as it was
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        loaded = load_model(source.spec)
    model = reparameterize(loaded.model) if deployed else loaded.model
    return Prepared(source, model.eval(), dict(loaded.preprocessing), loaded.classes, workdir)


def _artefact_input(path: Path, img: int, batch: int) -> tuple[int, int, int, int]:
    """The input shape an exported artefact takes (its fixed dimensions win)."""
    if path.suffix in (".pte", ".param", ".tflite"):
        return artefact_shape(path, img, batch)
    if path.suffix == ".onnx":
        import onnx

        dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
        shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    else:
        import openvino as ov

        ps = ov.Core().read_model(str(path)).inputs[0].get_partial_shape()
        shape = [d.get_length() if d.is_static else None for d in ps]
    b, c, h, w = shape
    return b or batch, c or 3, h or img, w or img


def _onnx(p: Prepared, shape: tuple[int, ...]) -> Path:
    from leannet.deploy.onnx import export_onnx

    key = ("onnx", shape)
    if key not in p.files:
        path = p.workdir / f"{p.source.label}_b{shape[0]}_{shape[2]}.onnx"
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
    return (rng.standard_normal((32, *shape[1:]), dtype=np.float32),
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


# --- the sweep -----------------------------------------------------------------------------------


def _static_costs(model: torch.nn.Module, shape: tuple[int, ...]) -> dict[str, int]:
    from leannet.profile.complexity import profile_model

    totals = profile_model(model, tuple(shape[1:]), shape[0])["totals"]
    return {k: totals[k] for k in ("params", "macs", "memory_access_bytes", "activations")}


def _published(name: str) -> dict[str, Any]:
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
    x = np.concatenate([a for _, a in image_batches(samples.paths, pre, 64)])
    logits = run_all(runner, x, batch=shape[0])
    return float(100.0 * (logits.argmax(1) == np.asarray(samples.labels)).mean())


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


def bench(
    models: Sequence[str] = (),
    preset: str | None = None,
    runtimes: Sequence[str] = DEFAULT_RUNTIMES,
    precisions: Sequence[str] = ("fp32",),
    batches: Sequence[int] = (1,),
    threads: int | None = None,
    img: int | None = None,
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

    `min_time` seconds of timed calls per cell, split over `rounds` interleaved rounds; cells
    that ran beside other work are re-measured up to `retries` times at the end. Cached rows
    (same source, settings and environment fingerprint, measured with at least this min_time
    and rounds) are reused unless `force`.
    `eval_set` (labelled images) adds measured top-1 per cell; `calib` calibrates INT8.
    """
    from rich.console import Console
    from rich.markup import escape

    sources, notes = resolve_sources(models, preset)
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
    for rt in rts:
        for prec in precisions:
            if prec not in SUPPORTED[rt]:
                notes.append(f"{rt} does not run {prec} (it runs {', '.join(SUPPORTED[rt])}); skipped")
            elif not _runs_here(rt, prec):
                notes.append(f"{rt} has no {prec} kernels on this CPU (it would run fp32 and call it {prec}); skipped")
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}")

    plan = [(s, rt, prec, b) for s in sources for b in batches for rt in rts for prec in precisions
            if prec in SUPPORTED[rt] and _runs_here(rt, prec) and _runs(s, rt, prec)]
    size = img or 224
    header = (f"{len(sources)} sources ({FORM[deployed]}) x {len(rts)} runtimes x {len(precisions)} "
              f"precisions x {len(batches)} batch sizes, {threads} threads")
    how = Effort(threads, min_time, rounds, retries, force, contended_cores, progress, on_update)
    with tempfile.TemporaryDirectory(prefix="leannet-bench-") as tmp:
        return run_plan(
            plan, lambda c: (c[0].id, c[1], c[2], c[3], size, threads, deployed, env["fingerprint"]),
            lambda todo: _prepare(todo, env, threads, size, deployed, calib, eval_set, Path(tmp), console, progress),
            Sweep([], results, notes), env, how, console, header,
            reusable=lambda row: eval_set is None or str(row.get("top1_source", "")).startswith("measured"))


@dataclass(frozen=True)
class Effort:
    """How a sweep times its cells: bench's knobs, shared with the detector bench."""

    threads: int
    min_time: float = 3.0  # seconds of timed calls per cell, over all rounds
    rounds: int = 10
    retries: int = 2  # re-measurements of cells that ran beside other work
    force: bool = False  # re-measure cached rows too
    contended_cores: float = timing.CONTENDED_CORES
    progress: bool = True  # the live table on screen
    on_update: Callable[[list[dict[str, Any]]], None] | None = None  # the rows after every round


def run_plan(plan: list[tuple], key_of: Callable[[tuple], tuple], prepare: Callable[[list[tuple]], dict],
             sweep: Sweep, env: dict[str, Any], how: Effort, console, header: str,
             reusable: Callable[[dict[str, Any]], bool] = lambda row: True,
             finish: Callable[[dict[str, Any]], None] | None = None) -> Sweep:
    """The sweep every kind of source shares (classifiers here, detectors in leannet.detect):
    reuse cached rows (same key, enough effort, not timed on a slowed machine), `prepare` the
    cells to measure ({cell id: (row, timing cell or None)}), time them in interleaved rounds,
    mark rows timed while the machine ran slow, `finish` each row, append to the results file."""
    drop_partial_line(sweep.results)
    earlier = [r for r in read_rows(sweep.results) if "error" not in r]
    fastest = _fastest(earlier, env["fingerprint"])
    cached = {} if how.force else {row_key(r): r for r in earlier if not _slowed(r, fastest)}
    done: dict[tuple, dict[str, Any]] = {}
    todo = []
    for cid in plan:
        try:
            row = cached.get(key_of(cid))
        except Exception:  # a source whose key cannot be read: measured, and its error row says why
            row = None
        if row is not None and _enough(row, how) and reusable(row):
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
                finish(row)
            row["time"] = stamp
            done[cid] = row
            fresh.append(row)
        _check_machine_speed(fresh, fastest, console)
        append_rows(sweep.results, fresh)
        sweep.measured = sum("error" not in r for r in fresh)
    sweep.rows = [done[c] for c in plan if c in done]
    return sweep


def _references(row: dict[str, Any]) -> dict[str, float]:
    """The reference workloads timed beside a row's cell: {"probe": ms, sentinel name: ms}."""
    refs = {"probe": row.get("probe_ms")}
    if row.get("sentinel_ms") and row.get("runtime") in sentinel.SENTINEL_OF:
        refs[sentinel.SENTINEL_OF[row["runtime"]]] = row["sentinel_ms"]
    return {k: v for k, v in refs.items() if v}


def _fastest(rows: list[dict[str, Any]], env_key: str | None = None,
             start: dict[str, float] | None = None) -> dict[str, float]:
    """The fastest probe and fastest sentinel per runtime among `rows` (those of environment
    `env_key` when given) and `start`."""
    best = dict(start or {})
    for r in rows:
        if env_key is None or r.get("fingerprint") == env_key:
            for k, v in _references(r).items():
                best[k] = min(v, best.get(k, math.inf))
    return best


def _slowdowns(row: dict[str, Any], fastest: dict[str, float]) -> dict[str, float]:
    return {k: v / fastest[k] for k, v in _references(row).items() if fastest.get(k)}


def _slowed(row: dict[str, Any], fastest: dict[str, float]) -> bool:
    # the probe only: a runtime's sentinel is recorded, but has not been shown to predict its
    # cells (bench_trust run 10: ONNX Runtime's sentinel read 1.24x, its cells 0.96x)
    return _slowdowns(row, fastest).get("probe", 0.0) > timing.SLOWED


def _check_machine_speed(rows: list[dict[str, Any]], fastest: dict[str, float], console) -> None:
    """Mark rows timed while the machine itself ran slow (a busy VM host, a lowered clock):
    /proc shows nothing then, but the probe beside the cells slows down. Such rows are
    contended: they are not reused from the cache once a faster probe is on record. Each row
    also gets its runtime's sentinel reading against the fastest on record
    (`runtime_slowdown`), reported but not (yet) a reason to mark it: see `_slowed`."""
    timed = [r for r in rows if r.get("probe_ms")]
    if not timed:
        return
    fastest = _fastest(timed, start=fastest)
    for r in timed:
        slow = _slowdowns(r, fastest)
        r["machine_slowdown"] = round(slow["probe"], 3)
        if len(slow) > 1:
            r["runtime_slowdown"] = round(max(v for k, v in slow.items() if k != "probe"), 3)
    machine = [r for r in timed if _slowed(r, fastest)]
    runtime = [r for r in timed if r.get("runtime_slowdown", 0) > timing.SLOWED]
    for r in machine:
        r["contended"] = True
        r["contended_by"] = [*(w for w in r.get("contended_by", []) if w != "slow machine"), "slow machine"]
    if machine:
        worst = max(r["machine_slowdown"] for r in machine)
        console.print(f"[yellow]{len(machine)} cells ran while this machine was up to {worst:.2f}x slower than its "
                      f"fastest probe on record here (a busy VM host or a lowered clock: no other process "
                      f"showed); marked contended, re-run them later[/]")
    for name in sorted({r["runtime"] for r in runtime}):
        hit = [r for r in runtime if r["runtime"] == name]
        worst = max(r["runtime_slowdown"] for r in hit)
        console.print(f"[yellow]note: {name}'s sentinel network read up to {worst:.2f}x its fastest on record "
                      f"here during {len(hit)} of its cells (recorded as runtime_slowdown; not marked "
                      f"contended: the sentinel has not yet been shown to predict its runtime's cells)[/]")
    unsteady = max(r["probe_iqr"] for r in timed)
    if unsteady > timing.UNSTEADY:
        console.print(f"[yellow]the machine's own speed moved by {100 * unsteady:.0f}% between rounds "
                      f"(probe IQR): figures of this sweep are less certain than their IQR says[/]")


def _runs_here(runtime: str, precision: str) -> bool:
    if runtime == "openvino" and precision == "bf16":
        from leannet.runtime.runners import openvino_precision_supported

        return openvino_precision_supported("bf16")
    return True


def _runs(source: Source, runtime: str, precision: str) -> bool:
    """Artefacts run only on the runtimes that read them, in their own precision."""
    if source.kind != "artefact":
        return True
    if runtime in MOBILE_RUNTIMES:
        return source.spec.endswith(SUFFIX_OF[runtime]) and precision == _artefact_precision(source)
    if runtime not in ("onnxruntime", "openvino"):
        return False
    if runtime == "onnxruntime" and not source.spec.endswith(".onnx"):
        return False
    return precision == _artefact_precision(source)


def _artefact_precision(source: Source) -> str:
    sidecar = Path(source.spec).with_suffix(".json")
    if sidecar.is_file():
        with contextlib.suppress(json.JSONDecodeError, AttributeError):
            return json.loads(sidecar.read_text()).get("precision", "fp32")
    return "fp32"


def _arch(p: Prepared) -> str | None:
    """The registry name behind a source (a checkpoint's metadata names it; an artefact's sidecar
    records its source model), for published facts."""
    if p.source.kind == "zoo":
        return p.source.label
    if p.model is not None:
        return getattr(getattr(p.model, "pretrained_cfg", None), "name", None)
    sidecar = Path(p.source.spec).with_suffix(".json")
    with contextlib.suppress(OSError, json.JSONDecodeError, AttributeError):
        return json.loads(sidecar.read_text()).get("source_model")
    return None


def _accuracy(p: Prepared, runner: Runner, eval_set: str | Path | None, shape: tuple[int, ...],
              precision: str, published: float | None) -> dict[str, Any]:
    """Top-1 for the row: measured on `eval_set` when given, else the paper's (fp32 and bf16;
    an INT8 model's accuracy is unknown until measured)."""
    if eval_set is not None:
        return {"top1": _eval_top1(runner, p, eval_set, shape), "top1_source": f"measured on {eval_set}"}
    if precision == "int8" or published is None:
        return {"top1": None, "top1_source": "not measured (give --eval)"}
    return {"top1": published, "top1_source": "published (paper, ImageNet-1k)"}


def _prepare(todo, env, threads: int, size: int, deployed: bool, calib, eval_set, tmp: Path, console,
             progress: bool) -> dict[tuple, tuple[dict[str, Any], timing.Cell | None]]:
    """Load each source once and build every cell's runner; a cell that fails gets an error row
    (one broken runtime must not lose the sweep); pairs this CPU cannot run never reach here
    (`_runs_here`)."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from leannet.runtime.runners import torch_runner

    prepared: dict[tuple, tuple[dict[str, Any], timing.Cell | None]] = {}
    loaded: dict[Source, Prepared] = {}
    refs: dict[tuple, np.ndarray] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not progress, transient=True) as bar:
        task = bar.add_task("preparing", total=len(todo))
        for cid in todo:
            s, rt, prec, b = cid
            bar.update(task, description=f"preparing {s.label} {rt} {prec} b{b}")
            row: dict[str, Any] = {
                "model": s.label, "source": s.id, "source_kind": s.kind, "runtime": rt, "precision": prec,
                "batch": b, "img": size, "threads": threads, "deployed": deployed,
                "form": FORM[deployed] if s.kind != "artefact" else "exported artefact",
                "fingerprint": env["fingerprint"]}
            if s.kind != "zoo":
                row["path"] = s.spec
            try:
                if s not in loaded:
                    work = tmp / f"src{len(loaded)}"
                    work.mkdir(parents=True, exist_ok=True)  # an earlier source may have failed to load here
                    loaded[s] = _load(s, deployed, work)
                p = loaded[s]
                if p.model is None:
                    shape = _artefact_input(Path(s.spec), size, b)
                else:
                    shape = (b, p.pre["input_size"][0], size, size)
                row["input_shape"] = list(shape)
                row["arch"] = _arch(p)
                row |= _published(row["arch"]) if row["arch"] else {"published_top1": None}
                if p.model is not None:
                    row |= _static_costs(p.model, shape)
                base = timing.reset_peak_rss()
                runner, extra = make_runner(p, rt, prec, shape, threads, calib)
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
                row |= _accuracy(p, runner, eval_set, shape, prec, row.get("published_top1"))
                cell = timing.Cell(cid, runner.bind(x), b, runner.device_timer)
            except Exception as e:  # one broken runtime must not lose the sweep
                row["error"] = f"{type(e).__name__}: {reason(e)}"
                console.print(f"[red]error:[/] {s.label} {rt} {prec} b{b}: {escape(row['error'])}")
                cell = None
            row["env"] = env
            prepared[cid] = (row, cell)
            bar.advance(task)
    return prepared


def _time(cells, how: Effort, console) -> None:
    """Interleaved rounds over every cell, then up to `retries` re-measurements of the cells
    that ran beside other work (the least contended measurement is kept)."""
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
    guards = sentinel.sentinels({row["runtime"] for _, row, _ in cells}, threads)
    # Redrawn between rounds only: rich's refresh thread would render the table while cells run
    # and take the GIL and a core from them.
    with Live(console=console, auto_refresh=False, transient=False) if how.progress else contextlib.nullcontext() as live:
        timing.time_rounds([probe, *guards.values(), *(c for _, _, c in cells)], rounds, round_time,
                           on_round=lambda r: refresh(live, f"round {r + 1}/{rounds}"))
        speed = {id(c): probe.speed() | sentinel.reading(guards, row["runtime"]) for _, row, c in cells}
        for attempt in range(1, how.retries + 1):
            suspect = [(cid, row, c) for cid, row, c in cells if row.get("contended")]
            if not suspect:
                break
            console.print(f"[yellow]{len(suspect)} cells ran beside other work; re-measuring "
                          f"(attempt {attempt}/{how.retries})[/]")
            fresh = [(cid, row, timing.Cell(cid, c.call, c.batch, c.device_timer)) for cid, row, c in suspect]
            probe = timing.Probe(threads)
            for guard in guards.values():  # their first readings are taken: time them afresh
                guard.reset()
            timing.time_rounds([probe, *guards.values(), *(c for _, _, c in fresh)], rounds, round_time,
                               seed=attempt)
            for (cid, row, new), i in zip(fresh, [cells.index(t) for t in suspect], strict=True):
                again = timing.summarise(new, threads, how.contended_cores)
                row["retries"] = attempt
                if _busyness(again) <= _busyness(row):
                    cells[i] = (cid, row, new)
                    speed[id(new)] = probe.speed() | sentinel.reading(guards, row["runtime"])
            refresh(live, f"re-measured ({attempt})")
    for _, row, cell in cells:
        row |= timing.summarise(cell, threads, how.contended_cores) | speed[id(cell)]
        row.setdefault("retries", 0)
        row["min_time"] = how.min_time  # the effort asked for: a later, more demanding run re-measures
        row["rounds_asked"] = rounds


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
    for col in ("model", "runtime", "precision", "batch", "median ms", "IQR ms", "others"):
        t.add_column(col, justify="left" if col in ("model", "runtime", "precision") else "right")
    for r in rows:
        if "error" in r:
            t.add_row(r["model"], r["runtime"], r["precision"], str(r["batch"]), "error", "", "")
            continue
        med = r.get("median_ms")
        flag = f" [red]contended: {why_contended(r)}[/]" if r.get("contended") else ""
        others = r.get("others_cores")
        t.add_row(r["model"], r["runtime"], r["precision"], str(r["batch"]),
                  "-" if med is None else f"{med:.3f}", "-" if med is None else f"{r['iqr_ms']:.3f}",
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
    Console(file=buf, width=140, no_color=True).print(live_table(rows))
    n = sum(bool(r.get("contended")) for r in rows)
    tail = f"\n{n} of {len(rows)} cells stayed contended: their times read slow." if n else ""
    return buf.getvalue().rstrip("\n") + tail
