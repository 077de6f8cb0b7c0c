"""`export`: from a trained model to a verified artefact in one call.

Steps: load (a registry name with its published weights or a checkpoint, or a leannet
checkpoint; random weights only when asked, and the sidecar then says so) -> reparameterise
and fold every BatchNorm -> export fp32 (ONNX or OpenVINO IR) -> verify against PyTorch (fp32 must
match to 1e-4 or the export fails) -> optionally quantise to INT8 and measure top-1
agreement (and accuracy on an evaluation set) -> move the artefact into place and write its
preprocessing sidecar. Everything is built in a temporary folder beside the output, so a
failed export leaves nothing behind.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from leannet.deploy.artefact import (
    FORMATS,
    artefact_out,
    load_model,
    open_runner,
    provenance_record,
    publish,
    torch_runner,
)
from leannet.deploy.mobile import (
    MOBILE_FORMATS,
    check_mobile_options,
    export_mobile,
    mobile_record,
    quantize_mobile,
)
from leannet.deploy.reparam import reparameterize
from leannet.deploy.verify import FP32_TOL, compare, top1_accuracy, verify
from leannet.errors import ConfigError
from leannet.weights.hub import RANDOM_WEIGHTS

VERIFY_RANDOM = 8  # random inputs checked for fp32 parity, besides real images when given
VERIFY_IMAGES = 64


@dataclass
class ExportResult:
    path: Path
    sidecar: Path
    record: dict[str, Any]  # what the sidecar holds

    def summary(self) -> str:
        r = self.record
        lines = [f"wrote {self.path} ({r['format']}, {r['precision']}, input {r['input_size']}, "
                 f"batch {r['batch'] or 'dynamic'}) and {self.sidecar.name}",
                 f"  weights: {r['weights']}"
                 + (": its outputs mean nothing, time it only" if r["weights"] == RANDOM_WEIGHTS else "")]
        for v in r["verification"]:
            lines.append(f"  {v['runtime']} {v['precision']} vs PyTorch on {v['n']} inputs: max |diff| "
                         f"{v['max_abs_diff']:.2e}, top-1 agreement {100 * v['top1_agreement']:.1f}%")
        if r.get("latency_ms"):
            ms = r["latency_ms"]
            lines.append(f"  median latency on this machine: fp32 {ms['fp32']:.2f} ms, INT8 {ms['int8']:.2f} ms "
                         f"({ms['fp32'] / ms['int8']:.2f}x)")
        if r.get("top1"):
            lines.append("  top-1 on " + r["eval_set"] + ": " +
                         ", ".join(f"{k} {v:.2f}%" for k, v in r["top1"].items()))
        return "\n".join(lines)


def export(
    model: str | Path,
    weights: str | Path | None = None,
    format: str = "onnx",
    out: str | Path | None = None,
    img: int | None = None,
    batch: int = 1,
    dynamic_batch: bool = False,
    dynamic_size: bool = False,
    precision: str = "fp32",
    int8: bool = False,
    calib: str | Path | None = None,
    eval_set: str | Path | None = None,
    opset: int = 18,
    simplify: bool = False,
    log: Callable[[str], None] | None = None,
    random_weights: bool = False,
) -> ExportResult:
    """Export `model` (registry name + `weights`, or a leannet .safetensors checkpoint).

    A registry name without `weights` exports its published weights (fetched if need be);
    where there are none the export stops before writing anything, unless `random_weights`
    (a latency-only artefact whose sidecar says `"weights": "random (latency only)"`).

    `precision` is the fp32/bf16 compute precision (bf16 only for OpenVINO); `int8=True`
    quantises with images from `calib` (ImageFolder, folder or list file). `eval_set`
    (ImageFolder or labelled list file) adds top-1 accuracy of PyTorch and the artefact(s).
    """
    from leannet.data.images import image_batches
    from leannet.deploy.quantize import calibration_inputs

    log = log or (lambda _msg: None)
    precision = {"f32": "fp32"}.get(precision, precision)
    _check_options(format, precision, int8, calib, batch, dynamic_size, dynamic_batch)
    if out is not None:  # a bad --out is refused before any weights are fetched
        artefact_out(out, Path(out), format)
    loaded = load_model(model, weights, random_weights=random_weights)
    pre = dict(loaded.preprocessing)
    if img is not None:
        pre["input_size"] = [pre["input_size"][0], img, img]
    input_size = tuple(pre["input_size"])
    deployed = reparameterize(loaded.model)
    suffix = FORMATS[format]
    out = artefact_out(out, Path(f"{loaded.arch}{'-int8' if int8 else ''}"), format)
    if format == "coreml":  # converts here, runs only on macOS: leannet.deploy.coreml
        from leannet.deploy.coreml import publish_coreml

        log(f"exporting {loaded.arch} (coreml, input {list(input_size)}) ...")
        record = _record(loaded, pre, format, precision, batch, False, False, opset, False, out)
        sidecar = publish_coreml(deployed, out, input_size, batch, record, log)
        return ExportResult(out, sidecar, {**record, **__import__("json").loads(sidecar.read_text())})

    # Real images make the comparison meaningful (random noise gives near-ties in arg-max).
    images = labels = None
    if eval_set is not None:
        from leannet.data.images import labelled_images

        samples = labelled_images(eval_set, classes=loaded.classes)
        arrays = [a for _, a in image_batches(samples.paths, pre, 64)]
        images, labels = np.concatenate(arrays), np.asarray(samples.labels)
    calib_x = calibration_inputs(calib, pre) if calib is not None else None
    real = images if images is not None else calib_x
    rng = np.random.default_rng(0)
    probe = rng.standard_normal((VERIFY_RANDOM, *input_size), dtype=np.float32)
    if real is not None:
        probe = np.concatenate([probe, real[:VERIFY_IMAGES]])

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.stem}.", dir=out.parent))
    try:
        fp32 = work / f"fp32{suffix}"
        log(f"exporting {loaded.arch} ({format}, input {list(input_size)}) ...")
        meta = {"leannet": _props(loaded, pre)}
        if format == "onnx":
            from leannet.deploy.onnx import export_onnx

            export_onnx(deployed, fp32, input_size, batch, dynamic_batch, opset, dynamic_size,
                        simplify=simplify, metadata=meta)
        elif format in (*MOBILE_FORMATS, "coreml"):
            export_mobile(format, deployed, fp32, input_size, batch, opset)
        else:
            from leannet.deploy.openvino import export_openvino

            export_openvino(deployed, fp32, input_size, batch, dynamic_batch, dynamic_size)
        # Each runner compiles the artefact once; verification, accuracy and timing share it.
        fp32_run = open_runner(fp32, precision="fp32")
        bf16_run = open_runner(fp32, precision="bf16") if precision == "bf16" else None
        checks = [verify(fp32_run, deployed, probe)]
        log(f"  fp32 parity: max |diff| {checks[0].max_abs_diff:.2e} (limit {FP32_TOL:g})")
        final = fp32
        if precision == "bf16":
            checks.append(compare(bf16_run, deployed, probe))
        top1: dict[str, float] = {}
        if images is not None:
            top1["pytorch"] = top1_accuracy(torch_runner(deployed), images, labels)
            top1[f"{format} fp32"] = top1_accuracy(fp32_run, images, labels)
            if precision == "bf16":
                top1[f"{format} bf16"] = top1_accuracy(bf16_run, images, labels)
        if int8:
            from leannet.deploy.quantize import quantize_onnx, quantize_openvino

            log(f"quantising to INT8 with {len(calib_x)} calibration images from {calib} ...")
            final = work / f"int8{suffix}"
            if format in MOBILE_FORMATS:
                quantize_mobile(format, deployed, final, calib_x, input_size, batch)
            else:
                quant = quantize_onnx if format == "onnx" else quantize_openvino
                quant(fp32, final, calib_x, None if dynamic_batch else batch)
            runner = open_runner(final, precision="int8")
            checks.append(compare(runner, deployed, real))
            if images is not None:
                top1[f"{format} int8"] = top1_accuracy(runner, images, labels)
            # INT8 does not always pay (ONNX Runtime on shuffle nets, and on hard-swish nets at
            # small sizes, is no faster than its fp32): the user learns it here, not in production.
            speed = _median_ms({"fp32": fp32_run, "int8": runner}, probe, batch)
            if speed["int8"] >= speed["fp32"]:
                log(f"  warning: INT8 is not faster than fp32 on this machine ({speed['int8']:.2f} vs "
                    f"{speed['fp32']:.2f} ms); another runtime may gain from INT8, or keep fp32")
        record = _record(loaded, pre, format, "int8" if int8 else precision, batch, dynamic_batch,
                         dynamic_size, opset, simplify, out)
        record["verification"] = [c.as_dict() for c in checks]
        if int8:
            record["calibration"] = {"source": str(calib), "images": len(calib_x)}
            record["latency_ms"] = speed
        if top1:
            record["eval_set"] = str(eval_set)
            record["top1"] = top1
        sidecar = publish(final, out, record)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ExportResult(out, sidecar, record)


def _median_ms(runners: dict[str, Any], probe: np.ndarray, batch: int) -> dict[str, float]:
    """Median latency in ms of each runner on one batch, timed in interleaved rounds (a quick
    check, not a benchmark)."""
    from leannet.runtime import timing

    b = runners["fp32"].batch or batch
    x = probe[np.arange(b) % len(probe)]
    cells = {k: timing.Cell(k, r.bind(x), b) for k, r in runners.items()}
    timing.time_rounds(list(cells.values()), rounds=3, round_time=0.1)
    return {k: round(timing.summarise(c)["median_ms"], 3) for k, c in cells.items()}


def _check_options(format: str, precision: str, int8: bool, calib, batch: int, dynamic_size: bool,
                   dynamic_batch: bool = False) -> None:
    if format not in FORMATS:
        raise ConfigError(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
    if precision not in ("fp32", "bf16"):
        raise ConfigError(f"unknown precision {precision!r}; use fp32 or bf16 (and --int8 for INT8)")
    if precision == "bf16" and format != "openvino":
        raise ConfigError("bf16 is an OpenVINO inference precision; export with --format openvino")
    if int8 and precision == "bf16":
        raise ConfigError("--int8 and --precision bf16 exclude each other")
    if int8 and calib is None:
        raise ConfigError("--int8 needs calibration images: --calib DIR (ImageFolder, folder or list file)")
    if batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")
    check_mobile_options(format, int8, batch, dynamic_batch, dynamic_size)
    if dynamic_size and format == "openvino" and int8:
        raise ConfigError("INT8 OpenVINO export needs a fixed input size; drop --dynamic-size")


def _props(loaded, pre: dict[str, Any]) -> str:
    import json

    return json.dumps({"arch": loaded.arch, "classes": loaded.classes, **pre})


def _record(loaded, pre, format, precision, batch, dynamic_batch, dynamic_size, opset, simplify, out) -> dict[str, Any]:
    import torch

    from leannet.version import __version__

    rec: dict[str, Any] = {
        "format": format,
        "artefact": out.name,
        "precision": precision,
        "source_model": loaded.arch,
        **provenance_record(loaded, pre["input_size"]),
        **pre,
        "classes": loaded.classes,
        "batch": None if dynamic_batch else batch,
        "dynamic_size": dynamic_size,
        "reparameterized": True,
        "bn_folded": True,
        "versions": {"leannet": __version__, "torch": torch.__version__},
    }
    if format == "onnx":
        import onnx
        import onnxruntime

        rec.update(opset=opset, simplified=simplify)
        rec["versions"].update(onnx=onnx.__version__, onnxruntime=onnxruntime.__version__)
    elif format in (*MOBILE_FORMATS, "coreml"):
        more = mobile_record(format, opset)
        rec["versions"].update(more.pop("versions"))
        rec.update(more)
    else:
        import openvino

        rec["versions"]["openvino"] = openvino.get_version()
    if precision == "bf16":
        rec["note"] = ("OpenVINO computes in this precision only when compiled with "
                       "INFERENCE_PRECISION_HINT set accordingly; leannet infer does this")
    return rec

