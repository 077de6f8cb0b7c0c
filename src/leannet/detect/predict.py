"""Running a trained detector on image files: drawn previews + JSON, and pseudo-labels.

Pseudo-labelling is the seed's data distillation (Radosavovic et al., "Data Distillation:
Towards Omni-Supervised Learning", CVPR 2018): a big, accurate detector (the teacher) labels
unlabeled photos; its confident boxes become a COCO file a small detector (the student)
trains on like any other:

    leannet detect pseudo-label --teacher runs/r50/best.safetensors --images photos/ \\
        --score-thr 0.5 --out photos/pseudo.json
    leannet detect train -c configs/detect/retinanet_snet146_slim.yaml \\
        -o data.train.ann=photos/pseudo.json -o data.train.images=photos
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from leannet.data.images import find_images
from leannet.detect.data import read_image
from leannet.errors import DataError
from leannet.fileio import atomic_path, write_text


def _report_skip(path: Path, why: str) -> None:
    print(f"leannet: skipped {why}", file=sys.stderr)  # as `leannet infer` reports them


def detect_files(weights: str | Path, images: list[str | Path] | str | Path, score_thr: float = 0.3,
                 on_error: Callable[[Path, str], None] | None = _report_skip, runtime: str | None = None):
    """Yield (path, uint8 image, boxes, scores, labels, class names) for every image file.
    `weights` is a checkpoint or an exported artefact (.onnx / .xml). Files that cannot be
    read go to `on_error(path, reason)` and are skipped (None: raise DataError)."""
    from leannet.detect.pipeline import open_detector

    detector = open_detector(weights, runtime)  # a bad --weights is reported first
    paths = find_images([images] if isinstance(images, str | Path) else images)
    if not paths:
        raise DataError(f"no images found in {images}")
    for path in paths:
        try:
            img = read_image(path)
        except DataError as e:
            if on_error is None:
                raise
            on_error(path, str(e))
            continue
        out = detector([img])[0]
        keep = out["scores"] >= score_thr
        uint8 = img.mul(255).round_().to(torch.uint8)
        yield path, uint8, out["boxes"][keep], out["scores"][keep], out["labels"][keep], detector.classes


def infer(weights: str | Path, images: list[str | Path] | str | Path, out_dir: str | Path,
          score_thr: float = 0.3, runtime: str | None = None) -> tuple[Path, int]:
    """Draw each image's detections (box, class, score) to `out_dir/<name>.png` and write all
    of them to `out_dir/detections.json`; return the JSON path and how many images could not
    be read (reported on stderr with the reason, listed in the JSON with an `error`)."""
    from torchvision.utils import draw_bounding_boxes

    out_dir = Path(out_dir)
    records: list[dict[str, Any]] = []

    def failed(path: Path, why: str) -> None:
        _report_skip(path, why)
        records.append({"image": str(path), "error": why})

    for path, img, boxes, scores, labels, classes in detect_files(weights, images, score_thr, failed, runtime):
        names = [classes[int(i)] for i in labels]
        drawn = img if not len(boxes) else draw_bounding_boxes(
            img, boxes, [f"{n} {s:.2f}" for n, s in zip(names, scores.tolist(), strict=True)],
            colors="red", width=max(1, max(img.shape[1:]) // 200))
        with atomic_path(out_dir / f"{path.stem}.png") as tmp:
            Image.fromarray(drawn.permute(1, 2, 0).numpy()).save(tmp, format="PNG")
        records.append({"image": str(path), "detections": [
            {"class": n, "score": round(s, 4), "box_xyxy": [round(v, 2) for v in b]}
            for n, s, b in zip(names, scores.tolist(), boxes.tolist(), strict=True)]})
    json_path = out_dir / "detections.json"
    write_text(json_path, json.dumps(records, indent=1))
    bad = sum("error" in r for r in records)
    if bad:
        print(f"leannet: {bad} of {len(records)} images could not be read", file=sys.stderr)
    return json_path, bad


def pseudo_label(teacher: str | Path, images: str | Path, out: str | Path, score_thr: float = 0.5) -> dict[str, int]:
    """Label every image in folder `images` with the teacher's boxes scoring >= `score_thr`;
    write a COCO file to `out` whose `file_name`s are relative to `images`. Images where the
    teacher finds nothing are listed without boxes (training skips and counts them)."""
    images = Path(images)
    coco: dict[str, Any] = {"info": {"description": "leannet pseudo-labels", "teacher": str(teacher),
                                     "score_thr": score_thr},
                            "images": [], "annotations": [], "categories": []}
    for path, img, boxes, scores, labels, classes in detect_files(teacher, images, score_thr):
        iid = len(coco["images"]) + 1
        coco["images"].append({"id": iid, "file_name": str(path.relative_to(images)),
                               "width": int(img.shape[2]), "height": int(img.shape[1])})
        for (x0, y0, x1, y1), s, lab in zip(boxes.tolist(), scores.tolist(), labels.tolist(), strict=True):
            if x1 - x0 < 1 or y1 - y0 < 1:
                continue
            coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": iid,
                                        "category_id": int(lab) + 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
                                        "area": (x1 - x0) * (y1 - y0), "iscrowd": 0, "score": round(s, 4)})
        coco["categories"] = [{"id": i + 1, "name": n} for i, n in enumerate(classes)]
    write_text(out, json.dumps(coco))
    labeled = len({a["image_id"] for a in coco["annotations"]})
    return {"images": len(coco["images"]), "labeled_images": labeled, "boxes": len(coco["annotations"])}
