"""Detector cells of the sweep: FPS of the whole per-image pipeline, per runtime and precision.

A detector checkpoint (`leannet detect train`, metadata task "detection") runs in PyTorch
eager; a detector artefact (`leannet detect export`, sidecar task "detection") runs in ONNX
Runtime (.onnx) and OpenVINO (.onnx, .xml), in the precision it was exported at. Each cell
times what a user pays per photo: `DetectionPipeline([image])` on one fixed generated
`image_size` square (resize + normalise + pad, network, torchvision's box decoding and NMS),
batch 1, at the detector's own input size (`--img` and other batch sizes do not apply).

This module is the sweep's hook for one source kind (`leannet.bench.sweep` plans the runtime /
precision pairs this CPU runs for every kind, then asks `plan` which of them a detector runs
and `prepare` for each cell's row and timing cell; `finish` adds FPS once timed). Detector and
classifier cells are timed together, interleaved, in one run. It imports the sweep's shared
pieces from `leannet.bench.sources`, never the sweep itself.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from leannet.bench.sources import CellId, Context, Source, artefact_runs, error_text, static_costs
from leannet.runtime import timing
from leannet.runtime.runners import ARTEFACT_SUFFIXES

CHECKPOINT_RUNTIMES = ("eager",)  # a detector checkpoint runs as PyTorch eager, fp32
FORM = {True: "detector: backbone re-parameterised, BatchNorm folded", False: "detector: train-time form, eval mode"}


def is_detector(spec: str) -> bool:
    """Whether `spec` names a detector file: a .safetensors whose metadata says task
    "detection", or an .onnx/.xml whose sidecar does. Anything unreadable is left to the
    classifier path, which reports it."""
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
        from leannet.deploy.artefact import sidecar_fields

        return sidecar_fields(path).get("task") == "detection"
    return False


def _runs(source: Source, runtime: str, precision: str) -> bool:
    """A checkpoint runs eager fp32; an artefact its own runtimes and precision."""
    if source.kind == "checkpoint":
        return runtime in CHECKPOINT_RUNTIMES and precision == "fp32"
    return artefact_runs(source, runtime, precision)


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


def plan(source: Source, pairs: Sequence[tuple[str, str]], batches: Sequence[int],
         hw: tuple[int, int] | None, notes: list[str], data_sets: bool = False) -> list[CellId]:
    """The cells of one detector among the runtime / precision pairs the sweep runs here:
    batch 1 at its own image size; a note for each part of the request that does not apply."""
    def note(text: str) -> None:
        if text not in notes:
            notes.append(text)

    if hw is not None:
        note("--img/--shape do not apply to detectors: each runs at its own image size")
    if any(b != 1 for b in batches):
        note("detectors are timed at batch 1 (one photo per call); other batch sizes skipped")
    if data_sets:
        note("--eval/--calib do not apply to detectors (see `leannet detect eval` / `detect export --int8`)")
    cells = []
    for rt, prec in pairs:
        if not _runs(source, rt, prec):
            continue
        try:
            side = _image_size(source)
        except Exception:  # an unreadable file: prepared anyway, its error row says why
            side = 0
        cells.append(CellId(source, rt, prec, 1, (side, side)))
    if not cells:
        note(f"{source.spec}: no cell to run with runtime/precision pairs {', '.join('/'.join(p) for p in pairs)} "
             "(a detector checkpoint runs eager fp32; an artefact its own runtimes and precision)")
    return cells


def finish(row: dict[str, Any]) -> None:
    """Once timed: frames per second (batch 1, one image per call)."""
    if "median_ms" in row:
        row["fps"] = 1e3 / row["median_ms"]


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


def prepare(cid: CellId, ctx: Context) -> tuple[dict[str, Any], timing.Cell | None]:
    """One cell's row (what it is) and timing cell; a cell that fails gets an error row."""
    s, rt, prec, b = cid.source, cid.runtime, cid.precision, cid.batch
    env, threads, deployed, console = ctx.env, ctx.threads, ctx.deployed, ctx.console
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
            row |= static_costs(RawDetector(model), (1, 3, side, side))
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
        row["error"] = error_text(e)
        from rich.markup import escape

        console.print(f"[red]error:[/] {s.label} {rt} {prec}: {escape(row['error'])}")
        cell = None
    row["env"] = env
    return row, cell
