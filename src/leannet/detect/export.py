"""`leannet detect export`: a detector checkpoint to a verified ONNX, OpenVINO, ExecuTorch
(.pte, XNNPACK) or ncnn (.param via pnnx) artefact; INT8 on ONNX Runtime and OpenVINO.

The graph holds backbone, FPN and heads on the fixed input square (`RawDetector`, BatchNorm
folded, re-parameterised blocks merged) with two outputs, `cls_logits` (1, anchors, classes)
and `bbox_regression` (1, anchors, 4). Resizing, anchors, box decoding and NMS run in
`leannet.detect.pipeline`, the one post-process PyTorch and every runtime share (why: see
there); the sidecar carries what it needs (`detection`: image size, mean/std, anchor sizes,
ratios and feature sizes, thresholds, class names).

Verification, on held-out images (the `--ann` set, else the calibration images) plus two
noise images, one of them not square:
- fp32 raw outputs within `FP32_TOL` x max(1, largest |output|) of PyTorch's (as for
  classifiers), and the detections themselves: every detection of either side has a
  same-label counterpart, boxes within 0.05 px and scores within 1e-4 (or what the raw
  tolerance implies, when the outputs are large), except detections whose scores tie
  (`_compare`); otherwise the export fails;
- with `--ann`: COCO mAP of PyTorch and of the artefact; an fp32 artefact whose mAP@[.5:.95]
  or mAP@.5 differs by more than `MAP_TOL` points fails. INT8 artefacts cannot match to these
  tolerances: their differences and mAP change are reported, not enforced.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from leannet.deploy.artefact import FORMATS
from leannet.deploy.mobile import ENGINE_OF
from leannet.detect.pipeline import DetectionPipeline, torch_pipeline
from leannet.errors import ConfigError, DataError, ExportError

OUTPUT_NAMES = ("cls_logits", "bbox_regression")
DETECT_FORMATS = ("onnx", "openvino", "executorch", "ncnn")  # Core ML cannot run here to be verified
INT8_FORMATS = ("onnx", "openvino")
# The least tolerances for detections (compare_detections widens them to what the raw
# tolerance implies when the outputs are large): pixels of the original image, and score.
BOX_TOL_PX = 0.05
SCORE_TOL = 1e-4
# Scores closer than this are ties: which of them top-k and NMS keep may differ between two
# correct fp32 runtimes (their scores differ by ~1e-7).
TIE_TOL = 1e-6
# NMS and top-k are discontinuous: raw outputs equal to ~2e-7 still flipped 2 of 490 kept
# detections (a suppressed candidate's near-tie, which the output-level tie rule cannot see;
# seen with 2 threads, not with 1). With the raw outputs within tolerance and one shared
# post-process, such flips are allowed up to this share of detections (at least 2); a real
# post-processing or preprocessing difference moves most of them.
FLIP_SHARE = 0.01
MAP_TOL = 0.1  # points (percent)
VERIFY_IMAGES = 16


@dataclass
class DetectionCheck:
    runtime: str
    precision: str
    images: int
    max_raw_diff: float  # over class logits and box deltas
    raw_ref_max: float  # largest |raw output| of PyTorch, the scale of the raw tolerance
    detections: int  # PyTorch's, summed over images
    max_box_diff: float  # pixels, each detection against its nearest same-label counterpart
    max_score_diff: float
    unmatched: int  # detections whose counterpart is missing or differs beyond tolerance
    tied: int = 0  # PyTorch's detections exempt from matching: their score ties another's (_compare)
    box_tol: float = BOX_TOL_PX  # the tolerances applied (compare_detections)
    score_tol: float = SCORE_TOL

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return (f"{self.runtime} {self.precision} vs PyTorch on {self.images} images: raw max |diff| "
                f"{self.max_raw_diff:.2e}; {self.detections} detections, {self.unmatched} unmatched"
                f"{f' ({self.tied} tied, not compared)' if self.tied else ''}, boxes within "
                f"{self.max_box_diff:.2e} px, scores within {self.max_score_diff:.2e}")


def compare_detections(got: DetectionPipeline, ref: DetectionPipeline, images: list[torch.Tensor]) -> DetectionCheck:
    """Run both pipelines on `images` (one at a time, batch 1 as deployed) and compare raw
    outputs, then final detections (`_compare`) with tolerances no tighter than the raw one
    implies: a logit off by e moves a sigmoid score by at most e/4, a box delta off by e moves
    an edge by about e x the image side."""
    from leannet.deploy.verify import FP32_TOL

    raw_diff = ref_max = box_diff = score_diff = 0.0
    n_dets = unmatched = tied = 0
    pairs = []
    for img in images:
        x, sizes = ref.preprocess([img])
        r_raw, g_raw = ref.run_raw(x), got.run_raw(x)
        for r, g in zip(r_raw, g_raw, strict=True):
            raw_diff = max(raw_diff, float((r.float() - g.float()).abs().max()))
            ref_max = max(ref_max, float(r.abs().max()))
        shape = [tuple(img.shape[-2:])]
        pairs.append((ref.postprocess(r_raw, sizes, shape)[0], got.postprocess(g_raw, sizes, shape)[0], max(shape[0])))
    raw_limit = FP32_TOL * max(1.0, ref_max)
    score_tol = max(SCORE_TOL, raw_limit / 4)
    box_tol = 0.0
    for r_det, g_det, side in pairs:
        n_dets += len(r_det["boxes"])
        tol = max(BOX_TOL_PX, raw_limit * side)
        box_tol = max(box_tol, tol)
        for a, b in ((r_det, g_det), (g_det, r_det)):  # both ways: nothing missing, nothing extra
            m, t, bd, sd = _compare(a, b, ref.spec, tol, score_tol)
            unmatched += m
            tied += t if a is r_det else 0
            box_diff, score_diff = max(box_diff, bd), max(score_diff, sd)
    return DetectionCheck(got.runtime, got.precision, len(images), raw_diff, ref_max, n_dets, box_diff,
                          score_diff, unmatched, tied, box_tol, score_tol)


def _compare(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], spec, box_tol: float,
             score_tol: float) -> tuple[int, int, float, float]:
    """How `a`'s detections find theirs in `b`: (unmatched, tied, max box diff, max score diff).

    Each detection is paired with the same-label detection of `b` whose box is nearest; it is
    unmatched when there is none or the pair differs beyond `box_tol` / `score_tol`. A detection
    whose score is within TIE_TOL of another's, of the threshold, or of the last one kept
    (when `detections_per_img` cut the list) is not compared: among ties, which box top-k and
    NMS keep depends on rounding in the last bit (a confident detector saturates sigmoid
    scores at exactly 1.0), so two correct runtimes may keep different ones."""
    scores = a["scores"]
    n = len(scores)
    if not n:
        return 0, 0, 0.0, 0.0
    near = (scores[:, None] - scores[None, :]).abs() <= TIE_TOL
    tied = near.sum(1) > 1
    tied |= (scores - spec.score_thresh).abs() <= TIE_TOL
    if n == spec.detections_per_img:
        tied |= (scores - scores.min()).abs() <= TIE_TOL
    strict = ~tied
    if not len(b["boxes"]):
        return int(strict.sum()), int(tied.sum()), 0.0, 0.0
    d = (a["boxes"][:, None, :] - b["boxes"][None, :, :]).abs().amax(-1)
    d[a["labels"][:, None] != b["labels"][None, :]] = float("inf")
    best = d.argmin(1)
    box = d[torch.arange(n), best]
    score = (scores - b["scores"][best]).abs()
    score[~torch.isfinite(box)] = float("inf")
    bad = strict & ~((box <= box_tol) & (score <= score_tol))
    found = strict & torch.isfinite(box)
    max_box = float(box[found].max()) if found.any() else 0.0
    max_score = float(score[found].max()) if found.any() else 0.0
    return int(bad.sum()), int(tied.sum()), max_box, max_score


def check_fp32(c: DetectionCheck, tol: float | None = None) -> None:
    from leannet.deploy.verify import FP32_TOL

    limit = (tol or FP32_TOL) * max(1.0, c.raw_ref_max)
    if not c.max_raw_diff <= limit:  # `not <=` also catches NaN
        raise ExportError(f"exported detector does not match PyTorch: max |raw output difference| "
                          f"{c.max_raw_diff:.3g} > {limit:.3g} ({c.runtime}, fp32)")
    if c.unmatched > max(2, FLIP_SHARE * c.detections):
        raise ExportError(f"exported detector's detections differ from PyTorch's ({c}; limits "
                          f"{c.box_tol:.3g} px, {c.score_tol:.3g} score)")


@dataclass
class DetectExportResult:
    path: Path
    sidecar: Path
    record: dict[str, Any]

    def summary(self) -> str:
        r = self.record
        lines = [f"wrote {self.path} ({r['format']}, {r['precision']}, input {r['input_size']}, batch 1) "
                 f"and {self.sidecar.name}"]
        lines += [f"  {DetectionCheck(**v)}" for v in r["verification"]]
        for name, m in r.get("map", {}).items():
            lines.append(f"  {name} on {r['eval_set']}: mAP@[.5:.95] {100 * m['map']:.2f}, mAP@.5 {100 * m['map50']:.2f}")
        return "\n".join(lines)


def export_detector(
    weights: str | Path,
    format: str = "onnx",
    out: str | Path | None = None,
    int8: bool = False,
    calib: str | Path | None = None,
    ann: str | Path | None = None,
    images: str | Path | None = None,
    opset: int = 18,
    log: Callable[[str], None] | None = None,
) -> DetectExportResult:
    """Export the detector checkpoint `weights` and verify it (module docstring). `calib`: a
    folder of images for INT8; `ann` (+ `images`): a COCO set for held-out parity and mAP."""
    from leannet.deploy.artefact import artefact_out, publish
    from leannet.deploy.quantize import CALIB_LIMIT
    from leannet.deploy.reparam import reparameterize
    from leannet.detect.data import CocoDetection
    from leannet.detect.evaluate import evaluate
    from leannet.detect.model import RawDetector, load_detector
    from leannet.detect.pipeline import artefact_pipeline

    log = log or (lambda _msg: None)
    if format not in DETECT_FORMATS:
        raise ConfigError(f"a detector exports to {', '.join(DETECT_FORMATS)}, not {format!r}")
    if int8 and format not in INT8_FORMATS:
        raise ConfigError(f"--int8 for a detector: --format {' or '.join(INT8_FORMATS)}")
    if int8 and calib is None:
        raise ConfigError("--int8 needs calibration images: --calib DIR")
    model, classes = load_detector(str(weights))
    reference = torch_pipeline(model, classes)
    spec = reference.spec
    deployed = reparameterize(RawDetector(model))
    suffix = FORMATS[format]
    out = artefact_out(out, Path(weights).with_name(f"{Path(weights).stem}{'-int8' if int8 else ''}"),
                       format, task="detection")

    dataset = None
    if ann is not None:
        dataset = CocoDetection(ann, images)
        if dataset.class_names != classes:
            raise ConfigError(f"{weights} detects {classes} but {ann} has categories {dataset.class_names}")
    held_out = _held_out(dataset, calib, spec.input_side)
    calib_images = _read_folder(calib, CALIB_LIMIT) if calib is not None else []

    side = spec.input_side
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.stem}.", dir=out.parent))
    try:
        fp32 = work / f"fp32{suffix}"
        log(f"exporting {model.config.backbone} RetinaNet ({format}, input [3, {side}, {side}]) ...")
        with warnings.catch_warnings():
            # GroupNorm checks its input size in Python; on the fixed input square the check is
            # constant, which is all the tracer's warning is about.
            warnings.filterwarnings("ignore", message="Converting a tensor to a Python boolean")
            if format == "onnx":
                from leannet.deploy.onnx import export_onnx

                export_onnx(deployed, fp32, (3, side, side), 1, opset=opset, output_names=OUTPUT_NAMES,
                            metadata={"leannet": json.dumps({"task": "detection", "detection": spec.as_dict()})})
            elif format == "openvino":
                from leannet.deploy.openvino import export_openvino

                export_openvino(deployed, fp32, (3, side, side), 1, output_names=OUTPUT_NAMES)
            elif format == "executorch":
                from leannet.deploy.executorch import export_executorch

                export_executorch(deployed, fp32, (3, side, side), 1)
            else:
                from leannet.deploy.ncnn import export_ncnn

                export_ncnn(deployed, fp32, (3, side, side), 1, opset=opset)
        _write_detection_sidecar(fp32, spec, "fp32")  # the pipeline reads its spec from the sidecar
        if format in ENGINE_OF:  # an engine that can crash the process runs it in a child first
            from leannet.runtime.mobile import preflight

            preflight(fp32, ENGINE_OF[format], shape=(1, 3, side, side))
        fp32_pipe = artefact_pipeline(fp32, precision="fp32")
        checks = [compare_detections(fp32_pipe, reference, held_out)]
        check_fp32(checks[0])
        log(f"  {checks[0]}")
        final, final_pipe = fp32, fp32_pipe
        if int8:
            from leannet.deploy.quantize import quantize_onnx, quantize_openvino

            log(f"quantising to INT8 with {len(calib_images)} calibration images from {calib} ...")
            x = torch.cat([reference.preprocess([im])[0] for im in calib_images]).numpy()
            final = work / f"int8{suffix}"
            (quantize_onnx if format == "onnx" else quantize_openvino)(fp32, final, x, 1)
            _write_detection_sidecar(final, spec, "int8")
            final_pipe = artefact_pipeline(final, precision="int8")
            checks.append(compare_detections(final_pipe, reference, held_out))
            log(f"  {checks[-1]}")
        maps: dict[str, dict[str, float]] = {}
        if dataset is not None:
            maps["pytorch"] = evaluate(reference, dataset)
            maps[f"{format} fp32"] = evaluate(fp32_pipe, dataset)
            if int8:
                maps[f"{format} int8"] = evaluate(final_pipe, dataset)
            worst = max(abs(maps[f"{format} fp32"][k] - maps["pytorch"][k]) for k in ("map", "map50"))
            if not 100 * worst <= MAP_TOL:
                raise ExportError(f"exported detector's mAP differs from PyTorch's by {100 * worst:.2f} points "
                                  f"(> {MAP_TOL}): {maps}")
        record = _record(weights, model, spec, format, "int8" if int8 else "fp32", opset, out)
        record["verification"] = [c.as_dict() for c in checks]
        record["verification_tolerance"] = {
            "raw": "1e-4 x max(1, largest |output|)", "box_px": "max(0.05, raw x image side)",
            "score": "max(1e-4, raw / 4)", "ties": TIE_TOL, "unmatched_allowed": f"max(2, {FLIP_SHARE} x detections)", "map_points": MAP_TOL, "applies_to": "fp32"}
        if int8:
            record["calibration"] = {"source": str(calib), "images": len(calib_images)}
        if maps:
            record["eval_set"] = str(ann)
            record["map"] = maps
        sidecar = publish(final, out, record)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return DetectExportResult(out, sidecar, record)


def _write_detection_sidecar(artefact: Path, spec, precision: str) -> None:
    from leannet.deploy.artefact import write_sidecar

    write_sidecar(artefact, {"task": "detection", "input_size": [3, spec.input_side, spec.input_side],
                             "mean": spec.mean, "std": spec.std, "classes": spec.classes,
                             "precision": precision, "detection": spec.as_dict()})


def _read_folder(folder: str | Path, limit: int) -> list[torch.Tensor]:
    """Up to `limit` images of a folder (recursively) or list file, picked as classification's
    calibration picks them, as float tensors in [0, 1]; unreadable ones skipped and reported."""
    from leannet.data.images import report_skipped
    from leannet.deploy.quantize import calibration_paths
    from leannet.detect.data import read_image

    paths = calibration_paths(folder, limit)
    out, skipped = [], []
    for p in paths:
        try:
            out.append(read_image(p))
        except DataError as e:
            skipped.append(str(e))
    if not out:
        raise DataError(f"{folder}: no readable images" + (f" ({skipped[0]})" if skipped else ""))
    report_skipped(str(folder), skipped, len(paths))
    return out


def _held_out(dataset, calib, side: int) -> list[torch.Tensor]:
    # Two noise images besides real ones: one square, one not (the letterbox path).
    g = torch.Generator().manual_seed(0)
    noise = [torch.rand(3, side, side, generator=g), torch.rand(3, side * 3 // 4, side, generator=g)]
    if dataset is not None:
        real = [dataset[i][0] for i in range(min(VERIFY_IMAGES, len(dataset)))]
    elif calib is not None:
        real = _read_folder(calib, VERIFY_IMAGES)
    else:
        real = []
    return real + noise


def _record(weights, model, spec, format: str, precision: str, opset: int, out: Path) -> dict[str, Any]:
    from leannet.detect.evaluate import complexity
    from leannet.version import __version__

    rec: dict[str, Any] = {
        "task": "detection",
        "format": format,
        "artefact": out.name,
        "precision": precision,
        "source_model": f"retinanet/{model.config.backbone}",
        "weights": str(weights),
        "input_size": [3, spec.input_side, spec.input_side],
        "mean": spec.mean,
        "std": spec.std,
        "interpolation": "bilinear",
        "classes": spec.classes,
        "batch": 1,
        "detection": spec.as_dict(),
        "model": model.config.model_dump(),
        **complexity(model, spec.input_side),
        "reparameterized": True,
        "bn_folded": True,
        "versions": {"leannet": __version__, "torch": torch.__version__},
    }
    if format == "onnx":
        import onnx
        import onnxruntime

        rec["opset"] = opset
        rec["versions"].update(onnx=onnx.__version__, onnxruntime=onnxruntime.__version__)
    elif format == "openvino":
        import openvino

        rec["versions"]["openvino"] = openvino.get_version()
    else:
        from leannet.deploy.mobile import mobile_record

        extra = mobile_record(format, opset)
        rec["versions"].update(extra.pop("versions"))
        rec |= extra
    return rec

