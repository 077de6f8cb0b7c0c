"""COCO-format detection data: a JSON file of images/annotations/categories + an image folder.

Annotations are checked once, when the set is loaded. What a careful user would want to know
about is reported, not silently fixed:

- an annotation whose `image_id` is not in `images`, whose `category_id` is not in
  `categories`, whose box has no area or lies wholly outside its image: skipped;
- a box that sticks out of its image: clipped to it;
- an image file that does not exist: the image and its annotations are skipped;
- an image with no (valid) boxes: skipped (`keep_empty=True` keeps it as background).

Each kind is counted with the first offending id in `AnnotationReport.summary()`. With
`strict=True` the first problem raises a DataError naming the id instead.

An image file that exists but cannot be decoded is found when it is read, as in
classification: the item is a `Skipped` marker (logged with the reason), `collate` drops it
and returns its path, the trainer counts it and evaluation leaves it out of the mAP; with
`strict=True` it raises. Images are decoded by leannet's one reader, EXIF orientation
applied, so a phone photo's pixels are in the displayed orientation its boxes describe. When
the JSON's width/height are the stored size of such a photo (transposed: EXIF orientation
5-8), the boxes are taken as drawn on the displayed image, not rescaled.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as F

from leannet.data.datasets import Skipped, drop_skipped, sample_seed
from leannet.data.images import SWAPS_AXES, exif_orientation, load_image
from leannet.detect.config import DataConfig, SplitConfig
from leannet.errors import DataError

log = logging.getLogger("leannet.detect")

# problem kind -> the sentence the report and the strict error use
PROBLEMS = {
    "unknown_image": "annotation {id}: image_id {image_id} is not in 'images'",
    "unknown_category": "annotation {id}: category_id {category_id} is not in 'categories'",
    "zero_area": "annotation {id}: box {bbox} has zero area",
    "outside": "annotation {id}: box {bbox} lies outside its {width}x{height} image",
    "clipped": "annotation {id}: box {bbox} sticks out of its {width}x{height} image",
    "missing_file": "image {id}: file {path} does not exist",
    "empty": "image {id}: has no boxes",
}
ACTION = {"unknown_image": "skipped", "unknown_category": "skipped", "zero_area": "skipped",
          "outside": "skipped", "clipped": "clipped", "missing_file": "skipped (with its annotations)",
          "empty": "skipped"}


@dataclass
class AnnotationReport:
    """What loading found wrong with an annotation file: counts and the first example of each."""

    source: str
    counts: Counter = field(default_factory=Counter)
    first: dict[str, str] = field(default_factory=dict)

    def add(self, kind: str, strict: bool, **facts: Any) -> None:
        message = PROBLEMS[kind].format(**facts)
        if strict:
            raise DataError(f"{self.source}: {message} (--strict)")
        self.counts[kind] += 1
        self.first.setdefault(kind, message)

    def summary(self) -> str:
        if not self.counts:
            return f"{self.source}: all annotations valid"
        parts = [f"{n} {ACTION[k]} (first: {self.first[k]})" for k, n in self.counts.items()]
        return f"{self.source}: " + "; ".join(parts)


def _require(obj: dict, key: str, typ: type | tuple[type, ...], where: str, source: str) -> Any:
    if key not in obj:
        raise DataError(f"{source}: {where} has no {key!r}")
    if not isinstance(obj[key], typ):
        raise DataError(f"{source}: {where}: {key!r} must be {getattr(typ, '__name__', typ)}")
    return obj[key]


def load_coco(ann_file: str | Path, images_dir: str | Path | None = None, strict: bool = False,
              keep_empty: bool = False) -> tuple[dict[str, Any], AnnotationReport]:
    """Read and check a COCO detection file; return the cleaned COCO dict and the report.

    `images_dir` defaults to the JSON's folder; `file_name`s are relative to it. The cleaned
    dict holds only usable images and annotations (boxes clipped), ready for training and for
    pycocotools.
    """
    ann_file = Path(ann_file)
    if not ann_file.is_file():
        raise DataError(f"{ann_file}: no such annotation file")
    try:
        coco = json.loads(ann_file.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{ann_file}: not valid JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(coco, dict):
        raise DataError(f"{ann_file}: expected a COCO object with 'images', 'annotations', 'categories'")
    src = str(ann_file)
    images = _require(coco, "images", list, "the file", src)
    anns = _require(coco, "annotations", list, "the file", src)
    cats = _require(coco, "categories", list, "the file", src)
    if not cats:
        raise DataError(f"{src}: 'categories' is empty")
    images_dir = Path(images_dir) if images_dir is not None else ann_file.parent
    report = AnnotationReport(src)

    cat_ids = set()
    for c in cats:
        cid = _require(c, "id", int, "a category", src)
        if cid in cat_ids:
            raise DataError(f"{src}: category id {cid} appears twice")
        cat_ids.add(cid)
    by_id: dict[int, dict] = {}
    for img in images:
        iid = _require(img, "id", int, "an image", src)
        if iid in by_id:
            raise DataError(f"{src}: image id {iid} appears twice")
        _require(img, "file_name", str, f"image {iid}", src)
        _require(img, "width", int, f"image {iid}", src)
        _require(img, "height", int, f"image {iid}", src)
        by_id[iid] = img
    missing = set()
    for iid, img in by_id.items():
        path = images_dir / img["file_name"]
        if not path.is_file():
            report.add("missing_file", strict, id=iid, path=path)
            missing.add(iid)
    shown = _displayed_sizes(anns, by_id, missing, images_dir)

    kept, per_image = [], Counter()
    for a in anns:
        aid = _require(a, "id", int, "an annotation", src)
        iid = _require(a, "image_id", int, f"annotation {aid}", src)
        cid = _require(a, "category_id", int, f"annotation {aid}", src)
        bbox = _require(a, "bbox", list, f"annotation {aid}", src)
        if len(bbox) != 4 or not all(isinstance(v, int | float) for v in bbox):
            raise DataError(f"{src}: annotation {aid}: bbox must be [x, y, width, height], got {bbox}")
        if iid not in by_id:
            report.add("unknown_image", strict, id=aid, image_id=iid)
            continue
        if iid in missing:
            continue
        if cid not in cat_ids:
            report.add("unknown_category", strict, id=aid, category_id=cid)
            continue
        img = by_id[iid]
        w, h = shown.get(iid, (img["width"], img["height"]))
        x, y, bw, bh = (float(v) for v in bbox)
        if bw <= 0 or bh <= 0:
            report.add("zero_area", strict, id=aid, bbox=bbox)
            continue
        x0, y0, x1, y1 = max(x, 0.0), max(y, 0.0), min(x + bw, float(w)), min(y + bh, float(h))
        if x1 - x0 < 1 or y1 - y0 < 1:
            report.add("outside", strict, id=aid, bbox=bbox, width=w, height=h)
            continue
        # Half a pixel of slack: exporters round box edges.
        if x < -0.5 or y < -0.5 or x + bw > w + 0.5 or y + bh > h + 0.5:
            report.add("clipped", strict, id=aid, bbox=bbox, width=w, height=h)
        kept.append({**a, "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                     "iscrowd": int(a.get("iscrowd", 0))})
        per_image[iid] += 1

    kept_images = []
    for iid, img in by_id.items():
        if iid in missing:
            continue
        if not per_image[iid] and not keep_empty:
            report.add("empty", strict, id=iid)
            continue
        kept_images.append({**img, "width": shown[iid][0], "height": shown[iid][1]} if iid in shown else img)
    if not kept_images:
        raise DataError(f"{src}: no usable images ({report.summary()})")
    clean = {"images": kept_images, "annotations": kept, "categories": cats}
    if report.counts:
        log.warning(report.summary())
    return clean, report


def _displayed_sizes(anns: list, by_id: dict[int, dict], missing: set[int], images_dir: Path) -> dict[int, tuple[int, int]]:
    """{image id: (width, height) as displayed} of the images whose JSON size is the stored
    one, transposed: a photo with an EXIF orientation that swaps axes (5-8), whose JSON took its
    size from the file header while its boxes were drawn on the upright image (as annotation
    tools show it). Only images with a box beyond the JSON size are looked at (one header read
    each), so a clean set costs nothing; `CocoDetection` checks the rest when it decodes them."""
    suspects = set()
    for a in anns:
        iid = a.get("image_id") if isinstance(a, dict) else None  # malformed ones fail later, with their id
        img = by_id.get(iid) if isinstance(iid, int) else None
        bbox = a.get("bbox") if img is not None else None
        if img is None or img["id"] in missing or img["width"] == img["height"] or not isinstance(bbox, list) \
                or len(bbox) != 4 or not all(isinstance(v, int | float) for v in bbox):
            continue
        x, y, bw, bh = bbox
        if x + bw > img["width"] + 0.5 or y + bh > img["height"] + 0.5:
            suspects.add(img["id"])
    return {iid: (by_id[iid]["height"], by_id[iid]["width"]) for iid in sorted(suspects)
            if exif_orientation(images_dir / by_id[iid]["file_name"]) in SWAPS_AXES}


class CocoDetection(Dataset):
    """Images and targets of a checked COCO file, in torchvision's detection format.

    Item `i` is `(image, target)`: a float (3, H, W) tensor in [0, 1] and a dict with `boxes`
    (x0, y0, x1, y1 in pixels), `labels` (0..num_classes-1, in the order of `categories`
    sorted by id) and `image_id` (the COCO id).
    """

    def __init__(self, ann_file: str | Path, images_dir: str | Path | None = None, strict: bool = False,
                 keep_empty: bool = False, hflip: float = 0.0, seed: int = 0):
        self.ann_file = Path(ann_file)
        self.images_dir = Path(images_dir) if images_dir is not None else self.ann_file.parent
        self.strict = strict
        self.coco, self.report = load_coco(ann_file, self.images_dir, strict=strict, keep_empty=keep_empty)
        self.categories = sorted(self.coco["categories"], key=lambda c: c["id"])
        self.label_of = {c["id"]: i for i, c in enumerate(self.categories)}
        self.images = self.coco["images"]
        self.anns: dict[int, list[dict]] = {img["id"]: [] for img in self.images}
        for a in self.coco["annotations"]:
            self.anns[a["image_id"]].append(a)
        self.hflip = hflip
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The trainer calls this before each epoch's iterator (workers copy the dataset then)."""
        self.epoch = epoch

    @property
    def class_names(self) -> list[str]:
        return [c.get("name", str(c["id"])) for c in self.categories]

    def __len__(self) -> int:
        return len(self.images)

    def load_image(self, i: int) -> torch.Tensor:
        return read_image(self.path(i))

    def path(self, i: int) -> Path:
        return self.images_dir / self.images[i]["file_name"]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]] | Skipped:
        try:
            img = self.load_image(i)
        except DataError as e:
            if self.strict:
                raise
            log.warning("skipping %s", e)
            return Skipped(str(self.path(i)), str(e))
        info = self.images[i]
        anns = self.anns[info["id"]]
        boxes = torch.tensor([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                               a["bbox"][1] + a["bbox"][3]] for a in anns], dtype=torch.float32).reshape(-1, 4)
        labels = torch.tensor([self.label_of[a["category_id"]] for a in anns], dtype=torch.int64)
        if img.shape[1:] != (info["height"], info["width"]) and not self._shown_transposed(i, img):
            # Trust the pixels: rescale boxes from the size the JSON claims.
            sy, sx = img.shape[1] / info["height"], img.shape[2] / info["width"]
            boxes = boxes * torch.tensor([sx, sy, sx, sy])
        # The flip draws from the sample's own generator, seeded by (seed, epoch, index) as
        # classification's augmentation is: the same images flip in any worker, after a resume.
        if self.hflip and torch.rand((), generator=self._generator(i)) < self.hflip:
            img = img.flip(-1)
            boxes = torch.stack([img.shape[2] - boxes[:, 2], boxes[:, 1], img.shape[2] - boxes[:, 0], boxes[:, 3]], 1)
        return img, {"boxes": boxes, "labels": labels, "image_id": torch.tensor(info["id"])}

    def _generator(self, i: int) -> torch.Generator:
        return torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, i))

    def _shown_transposed(self, i: int, img: torch.Tensor) -> bool:
        # The JSON gives the stored size of a photo displayed rotated (EXIF 5-8): its boxes are
        # in displayed coordinates already (see _displayed_sizes), not to be stretched.
        info = self.images[i]
        return img.shape[1:] == (info["width"], info["height"]) and exif_orientation(self.path(i)) in SWAPS_AXES


def read_image(path: str | Path) -> torch.Tensor:
    """An image file as a float (3, H, W) tensor in [0, 1], decoded by leannet's one image
    reader (`leannet.data.images.load_image`): EXIF orientation applied, so pixels are in the
    displayed orientation that COCO boxes and sizes describe; any mode turned into RGB.
    Raises DataError with the reason when the file cannot be an image."""
    return F.to_image(load_image(path)).float().div_(255)


def collate(batch: list) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]], list[str]]:
    """(images, targets, paths of unreadable images dropped from the batch)."""
    good, skipped = drop_skipped(batch)
    images, targets = zip(*good, strict=True)
    return list(images), list(targets), skipped


# --- datasets from a config ----------------------------------------------------------------


def data_root(cfg: DataConfig) -> Path:
    if cfg.root is not None:
        return Path(cfg.root)
    return Path(os.environ.get("LEANNET_HOME", "~/.cache/leannet")).expanduser() / "data" / "detect"


def split_files(split: SplitConfig, cfg: DataConfig) -> tuple[Path, Path | None]:
    """(annotation file, image folder) of a split; a synthetic split is generated once."""
    if split.synthetic is not None:
        from leannet.detect.synthetic import generate

        s = split.synthetic
        hard = "" if s.difficulty == "standard" else f"_{s.difficulty}"  # standard sets keep their folders
        out = data_root(cfg) / f"synthetic_seed{s.seed}_n{s.num_images}_{s.image_size}px{hard}"
        return generate(out, s.num_images, seed=s.seed, image_size=s.image_size, difficulty=s.difficulty), None
    return Path(split.ann), Path(split.images) if split.images else None


def make_dataset(split: SplitConfig, cfg: DataConfig, train: bool, strict: bool | None = None,
                 seed: int = 0) -> CocoDetection:
    ann, images = split_files(split, cfg)
    return CocoDetection(ann, images, strict=cfg.strict if strict is None else strict,
                         keep_empty=cfg.keep_empty, hflip=cfg.hflip if train else 0.0, seed=seed)
