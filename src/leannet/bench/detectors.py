"""`leannet bench` for detectors: FPS of the whole per-image pipeline, per runtime and precision.

A detector checkpoint (`leannet detect train`, metadata task "detection") runs in PyTorch
eager; a detector artefact (`leannet detect export`, sidecar task "detection") runs in ONNX
Runtime (.onnx) and OpenVINO (.onnx, .xml), in the precision it was exported at. Each cell
times what a user pays per photo: `DetectionPipeline([image])` on one fixed generated
`image_size` square (resize + normalise + pad, network, torchvision's box decoding and NMS),
batch 1, at the detector's own input size (`--img` and other batch sizes do not apply).

The classifier sweep (`leannet.bench.sweep`) sits below `leannet.detect` and cannot load
a detector, so this module builds the detector cells itself and reuses the rest from it:
sources and their digests, the runtime/precision rules for artefacts, the interleaved timing
with contention re-measurement and the machine-speed probe (`latency._time`), the cache rules,
the row format, the results file and its key, the static cost counts. What it repeats is the
plan/cache loop of `latency.bench` (~30 lines); a cell-preparation hook in latency.bench would
remove that, at the price of touching the classifier sweep. `bench` here is the command's
entry point: it splits the sources, runs the classifier sweep on the rest and this one on the
detectors, and returns one `Sweep`. Detector and classifier cells are timed in two sweeps, not
interleaved with each other.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from leannet.bench import sweep as latency
from leannet.bench.options import DEFAULT_RUNTIMES, SUPPORTED
from leannet.bench.results import (
    default_threads,
    environment,
)
from leannet.bench.sweep import Source, Sweep
from leannet.errors import reason
from leannet.runtime import timing
from leannet.runtime.runners import ARTEFACT_SUFFIXES

CHECKPOINT_RUNTIMES = ("eager",)  # a detector checkpoint runs as PyTorch eager, fp32
FORM = {True: "detector: backbone re-parameterised, BatchNorm folded", False: "detector: train-time form, eval mode"}


def is_detector(spec: str) -> bool:
    """Whether `spec` names a detector file: a .safetensors whose metadata says task
    "detection", or an .onnx/.xml whose sidecar does. Anything unreadable is left to the
    classifier sweep, which reports it."""
    path = Path(spec)
    if not path.is_file():
        return False
    if path.suffix == ".safetensors":
        from leannet.errors import LeannetError
        from leannet.weights.io import read_metadata

        try:
            return read_metadata(path).get("task") == "detection"
        except (LeannetError, ValueError):  # not ours to diagnose: the classifier path names it
            return False
    if path.suffix in ARTEFACT_SUFFIXES:
        with contextlib.suppress(OSError, json.JSONDecodeError, AttributeError):
            return json.loads(path.with_suffix(".json").read_text()).get("task") == "detection"
    return False


def bench(models: Sequence[str] = (), preset: str | None = None, **kwargs: Any) -> Sweep:
    """`leannet bench`: classifiers through `leannet.bench.sweep.bench`, detectors through
    `bench_detectors`, in one Sweep (classifier rows first). Same keywords as latency.bench."""
    specs = [s.strip() for spec in models for s in str(spec).split(",") if s.strip()]
    detectors = [s for s in specs if is_detector(s)]
    others = [s for s in specs if s not in detectors]
    if not detectors:
        return latency.bench(others, preset=preset, **kwargs)
    sweeps = [latency.bench(others, preset=preset, **kwargs)] if others or preset else []
    sweeps.append(bench_detectors(detectors, **kwargs))
    merged = Sweep([r for s in sweeps for r in s.rows], sweeps[-1].results,
                   [n for s in sweeps for n in s.notes])
    merged.measured = sum(s.measured for s in sweeps)
    merged.reused = sum(s.reused for s in sweeps)
    return merged


def _source(spec: str) -> Source:
    path = Path(spec)
    kind = "checkpoint" if path.suffix == ".safetensors" else "artefact"
    return Source(str(path), kind, path.stem, latency._sha256(path))


def _runs(source: Source, runtime: str, precision: str) -> bool:
    if source.kind == "checkpoint":
        return runtime in CHECKPOINT_RUNTIMES and precision == "fp32"
    return latency._runs(source, runtime, precision)  # an artefact: its runtimes, its precision


@functools.cache  # a Source carries its file's sha256: a changed file is a new key
def _image_size(source: Source) -> int:
    """The detector's image size (longest side after resizing), the row's `img`: read without
    loading the network, so cached cells cost nothing."""
    if source.kind == "checkpoint":
        from leannet.detect.config import ModelConfig
        from leannet.weights.io import read_metadata

        return ModelConfig.model_validate(read_metadata(source.spec).get("model", {})).image_size
    from leannet.deploy.artefact import read_sidecar

    return int(read_sidecar(source.spec)["detection"]["image_size"])


def bench_detectors(
    models: Sequence[str],
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
    progress: bool = True,
    contended_cores: float = timing.CONTENDED_CORES,
    on_update=None,
    calib: str | Path | None = None,
    eval_set: str | Path | None = None,
) -> Sweep:
    """Time detector files (checkpoints and artefacts) as `latency.bench` times classifiers:
    one row per source x runtime x precision, appended to OUT/results.jsonl and reused by the
    same cache key. `calib` and `eval_set` do not apply (INT8 detectors are exported by
    `leannet detect export --int8`; mAP is `leannet detect eval`'s)."""
    from rich.console import Console
    from rich.markup import escape

    from leannet.errors import LeannetError
    from leannet.extras import MissingExtraError

    sources = [_source(s) for s in dict.fromkeys(models)]
    rts, notes = latency.resolve_runtimes(runtimes)
    if not rts:  # as latency.bench: say what to install rather than measure nothing
        raise MissingExtraError("no runtime asked for can run here; " + "; ".join(notes))
    precisions = latency.check_precisions(precisions)
    threads = threads or default_threads()
    if rounds < 1 or min_time <= 0:
        raise LeannetError("rounds must be >= 1 and min_time > 0")
    if img is not None:
        notes.append(f"--img {img} does not apply to detectors: each runs at its own image size")
    if any(b != 1 for b in batches):
        notes.append("detectors are timed at batch 1 (one photo per call); other batch sizes skipped")
    if eval_set is not None or calib is not None:
        notes.append("--eval/--calib do not apply to detectors (see `leannet detect eval` / `detect export --int8`)")
    env = environment(threads)
    console = Console(stderr=True)
    plan = [(s, rt, p, 1) for s in sources for rt in rts for p in precisions
            if p in SUPPORTED[rt] and _runs(s, rt, p)]
    for s in sources:
        if not any(c[0] == s for c in plan):
            notes.append(f"{s.spec}: no cell to run with runtimes {','.join(rts)} and precisions "
                         f"{','.join(precisions)} (a detector checkpoint runs eager fp32; an artefact its "
                         "own runtimes and precision)")
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}")

    def finish(row: dict[str, Any]) -> None:
        if "median_ms" in row:
            row["fps"] = 1e3 / row["median_ms"]  # batch 1: one image per call

    return latency.run_plan(
        plan, lambda c: (c[0].id, c[1], c[2], c[3], _image_size(c[0]), threads, deployed, env["fingerprint"]),
        lambda todo: {cid: _prepare(cid, env, threads, deployed, console) for cid in todo},
        Sweep([], Path(out) / "results.jsonl", notes), env,
        latency.Effort(threads, min_time, rounds, retries, force, contended_cores, progress, on_update), console,
        f"{len(sources)} detectors x {len(rts)} runtimes, {threads} threads", finish=finish)


def _pipeline(source: Source, runtime: str, precision: str, threads: int, deployed: bool):
    """The detection pipeline of one cell, and the network whose params/MACs the row reports."""
    from leannet.detect.pipeline import artefact_pipeline

    if source.kind == "artefact":
        return artefact_pipeline(source.spec, runtime, threads, precision), None
    from leannet.detect.model import load_detector
    from leannet.detect.pipeline import torch_pipeline

    model, classes = load_detector(source.spec)
    # Deployed as `leannet detect export` deploys it, so eager and the artefacts time one network.
    pipe = torch_pipeline(model, classes, threads=threads, deployed=deployed)
    pipe.info = {"threads": threads, "torch": torch.__version__}
    return pipe, model


def _prepare(cid: tuple, env: dict[str, Any], threads: int, deployed: bool, console):
    """One cell's row (what it is) and timing cell; a cell that fails gets an error row."""
    s, rt, prec, b = cid
    row: dict[str, Any] = {
        "model": s.label, "task": "detect", "source": s.id, "source_kind": s.kind, "runtime": rt,
        "precision": prec, "batch": b, "threads": threads, "deployed": deployed,
        "form": FORM[deployed] if s.kind == "checkpoint" else "exported detector artefact",
        "fingerprint": env["fingerprint"], "path": s.spec, "published_top1": None, "top1": None,
        "top1_source": "not applicable (detector; mAP: `leannet detect eval`)",
        "weights": s.spec}  # a detector file holds its own weights; its sha256 prefix is in `source`
    try:
        row["img"] = _image_size(s)
        base = timing.reset_peak_rss()
        pipe, model = _pipeline(s, rt, prec, threads, deployed)
        side = pipe.spec.input_side
        row |= {"img": pipe.spec.image_size, "input_shape": [1, 3, side, side], "classes": pipe.classes,
                "timed": "preprocess + network + box decoding + NMS, one image"}
        from leannet.detect.evaluate import fixed_image
        from leannet.detect.model import RawDetector

        if model is None and "model" in pipe.record:
            # Costs do not depend on the weights: the architecture the sidecar records will do.
            from leannet.detect.config import ModelConfig
            from leannet.detect.model import build_detector

            model = build_detector(ModelConfig.model_validate(pipe.record["model"]))
        if model is not None:
            row["arch"] = f"retinanet/{model.config.backbone}"
            # The classifier rows' counts (params, MACs, memory access, activations) of the
            # network the artefacts run: backbone + FPN + heads on the input square.
            row |= latency._static_costs(RawDetector(model), (1, 3, side, side))
        else:  # an artefact from before sidecars recorded the model: what its sidecar counted
            row["arch"] = pipe.record.get("source_model")
            row |= {k: pipe.record[k] for k in ("params", "macs") if k in pipe.record}
        image = [fixed_image(pipe.spec.image_size)]  # what `leannet detect eval` times too
        pipe(image)  # the first calls build caches and pick kernels: not part of the timing
        pipe(image)
        row["peak_mem_mb"] = timing.peak_rss_growth_mb(base)
        row["runtime_info"] = pipe.info

        def call():
            return pipe(image)

        cell = timing.Cell(cid, call, 1)
    except Exception as e:  # one broken detector or runtime must not lose the sweep
        row["error"] = f"{type(e).__name__}: {reason(e)}"
        from rich.markup import escape

        console.print(f"[red]error:[/] {s.label} {rt} {prec}: {escape(row['error'])}")
        cell = None
    row["env"] = env
    return row, cell
