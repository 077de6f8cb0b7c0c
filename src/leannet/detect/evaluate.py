"""Detector evaluation: COCO mAP via pycocotools, CPU speed at batch 1, params and MACs.

MACs are counted on `RawDetector` (backbone -> FPN -> heads on a fixed `image_size` square),
the part with multiply-accumulates; resizing, anchor decoding and NMS add none. Speed is
timed on the whole detector (`model([image])`, postprocessing included), batch 1.

"model" here is anything with torchvision's eval contract, `model(images) -> [{"boxes",
"scores", "labels"}]`: a RetinaNet, or a `leannet.detect.pipeline.DetectionPipeline` over a
checkpoint or an exported artefact (`evaluate_weights` takes either file).
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import torch
from torch.utils.data import DataLoader

from leannet.detect.data import CocoDetection, collate


def _eval_mode(model: Any) -> None:
    if isinstance(model, torch.nn.Module):
        model.eval()


@torch.inference_mode()
def predict(model: torch.nn.Module, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    _eval_mode(model)
    return model(images)


@torch.inference_mode()
def coco_detections(model: torch.nn.Module, dataset: CocoDetection, batch_size: int = 8,
                    skipped: list[str] | None = None) -> list[dict[str, Any]]:
    """Every detection on `dataset` as COCO result records (category ids, xywh boxes).
    Paths of unreadable images are appended to `skipped`."""
    _eval_mode(model)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    cat_ids = [c["id"] for c in dataset.categories]
    results = []
    for images, targets, bad in loader:
        if skipped is not None:
            skipped.extend(bad)
        for out, t in zip(model(images), targets, strict=True):
            for box, score, label in zip(out["boxes"].tolist(), out["scores"].tolist(),
                                         out["labels"].tolist(), strict=True):
                x0, y0, x1, y1 = box
                results.append({"image_id": int(t["image_id"]), "category_id": cat_ids[label],
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "score": score})
    return results


def coco_map(gt: dict[str, Any], detections: list[dict[str, Any]]) -> dict[str, float]:
    """COCO box AP of `detections` against the (checked) COCO dict `gt`, via pycocotools:
    `map` = AP@[.5:.95], `map50` = AP@.5, `map75` = AP@.75."""
    from leannet.extras import require

    COCO = require("pycocotools.coco", "COCO mAP").COCO
    COCOeval = require("pycocotools.cocoeval", "COCO mAP").COCOeval

    if not detections:
        return {"map": 0.0, "map50": 0.0, "map75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt = COCO()
        coco_gt.dataset = {k: gt[k] for k in ("images", "annotations", "categories")}
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(detections)
        ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # stats[k] is -1 when a category/area has no ground truth; report it as 0
    s = [max(0.0, float(v)) for v in ev.stats[:3]]
    return {"map": s[0], "map50": s[1], "map75": s[2]}


def evaluate(model: torch.nn.Module, dataset: CocoDetection, batch_size: int = 8,
             skipped: list[str] | None = None) -> dict[str, float]:
    """mAP@[.5:.95], mAP@.5, mAP@.75 of `model` on `dataset`. Images that cannot be read are
    left out of the ground truth too (their boxes would count as misses) and their paths
    appended to `skipped`."""
    bad: list[str] = []
    detections = coco_detections(model, dataset, batch_size, bad)
    gt = dataset.coco
    if bad:
        gone = {img["id"] for i, img in enumerate(dataset.images) if str(dataset.path(i)) in set(bad)}
        gt = {**gt, "images": [im for im in gt["images"] if im["id"] not in gone],
              "annotations": [a for a in gt["annotations"] if a["image_id"] not in gone]}
        if skipped is not None:
            skipped.extend(bad)
    return coco_map(gt, detections)


def fixed_image(size: int) -> torch.Tensor:
    """The one image detector timings run on (here and in `leannet bench`): a seeded [0, 1]
    RGB `size` square."""
    return torch.rand(3, size, size, generator=torch.Generator().manual_seed(0))


def measure_fps(model: torch.nn.Module, image_size: int, min_time: float = 1.0) -> dict[str, Any]:
    """Latency of the whole detector on one `image_size` square image (batch 1, this
    process's torch threads), timed by leannet's one timer (`leannet.runtime.timing`):
    median and p90 in ms, FPS = 1000 / median, and whether other work shared the cores."""
    from leannet.runtime.timing import measure

    _eval_mode(model)
    image = [fixed_image(image_size)]

    def call():
        with torch.inference_mode():
            return model(image)

    threads = getattr(model, "threads", None) or torch.get_num_threads()  # a pipeline's own, if it has one
    r = measure(call, 1, min_time=min_time, threads=threads)
    return {"median_ms": r["median_ms"], "p90_ms": r["p90_ms"], "iqr_ms": r["iqr_ms"],
            "fps": 1000.0 / r["median_ms"], "threads": threads, "contended": r["contended"]}


def complexity(model: torch.nn.Module, image_size: int) -> dict[str, int]:
    """Params of the whole detector and MACs of one `image_size` square through RawDetector."""
    from leannet.detect.model import RawDetector
    from leannet.profile.complexity import count_macs, count_params

    return {"params": count_params(model), "macs": count_macs(RawDetector(model), (3, image_size, image_size))}


def evaluate_weights(weights: str, ann: str | None = None, images: str | None = None,
                     config: str | None = None, overrides: list[str] | tuple[str, ...] = (),
                     strict: bool = False, speed: bool = True, runtime: str | None = None,
                     threads: int | None = None) -> dict[str, Any]:
    """`leannet detect eval`: mAP of a detector on a COCO set (`ann`/`images`, or the
    `data.val` split of `config`), plus params, MACs and batch-1 CPU speed. `weights` is a
    checkpoint (.safetensors) or an exported artefact (.onnx / .xml); both run through the
    same pipeline (resize, pad, network, torchvision's decoding and NMS), so their figures
    compare directly. An artefact's params and MACs are those its sidecar recorded. FPS is
    of that whole pipeline at batch 1 on `threads` CPU threads (default: the runtime's own)."""
    from leannet.detect.config import SplitConfig, load_detect_config
    from leannet.detect.data import make_dataset
    from leannet.detect.pipeline import open_detector
    from leannet.errors import ConfigError

    cfg = load_detect_config(config, overrides)
    if ann is not None:
        split = SplitConfig(ann=ann, images=images)
    elif config is not None and cfg.data.val is not None:
        split = cfg.data.val
    else:
        raise ConfigError("detect eval: give --ann (a COCO file) or -c a config with data.val")
    detector = open_detector(weights, runtime, threads)
    classes = detector.classes
    dataset = make_dataset(split, cfg.data, train=False, strict=strict)
    if dataset.class_names != classes:
        raise ConfigError(f"{weights} detects {classes} but {dataset.ann_file} has categories {dataset.class_names}")
    size = detector.spec.image_size
    skipped: list[str] = []
    result: dict[str, Any] = {"weights": weights, "runtime": detector.runtime, "precision": detector.precision,
                              "images": len(dataset), "image_size": size,
                              **evaluate(detector, dataset, skipped=skipped)}
    if detector.model is not None:
        result.update(complexity(detector.model, size))
    else:
        result.update({k: detector.record[k] for k in ("params", "macs") if k in detector.record})
    if speed:
        result.update(measure_fps(detector, size))
        if detector.runtime != "eager":  # measure_fps reports torch's thread count
            result["threads"] = threads or "runtime default"
    result["data_report"] = dataset.report.summary()
    if skipped:
        result["data_report"] += f"; {len(skipped)} unreadable images skipped (first: {skipped[0]})"
        result["skipped_images"] = skipped
    return result
