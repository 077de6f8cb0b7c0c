"""One detection pipeline for every backend: PyTorch checkpoint, ONNX Runtime, OpenVINO.

    images -> resize + normalise (torchvision's GeneralizedRCNNTransform) -> zero-pad to a
    fixed square -> network (backbone, FPN, heads: the only part that differs per backend)
    -> anchors, box decoding, per-class NMS (torchvision RetinaNet's own postprocess) -> boxes
    mapped back to each image's pixels

Why decoding and NMS stay outside the exported graph (the design of Ultralytics' AutoBackend
and of torchvision's own RetinaNet): the graph then has static shapes, which OpenVINO
compiles best and NNCF/ONNX Runtime quantise without special cases; and the post-process is
one piece of code, torchvision's, so PyTorch and every runtime decode and suppress the very
same way and cannot drift apart. ONNX `NonMaxSuppression` and OpenVINO's NMS differ from
torchvision in tie order and in how the per-level top-k and score threshold would have to be
rebuilt, so an in-graph NMS could match PyTorch only approximately. The post-process costs
little (at most `topk_candidates` boxes per level into one NMS).

The fixed square is `image_size` rounded up to a multiple of 32 (torchvision's
`size_divisible`). For square images this is exactly what `model([image])` computes; for
others torchvision pads a batch only to a multiple of 32 of its largest image, so its raw
outputs near the padded edge differ slightly from the letterboxed square (and already
depend on what else is in its batch).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch.nn import functional as nnf
from torchvision.models.detection import RetinaNet
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from leannet.errors import LeannetError
from leannet.runtime.threads import torch_threads

SIZE_DIVISIBLE = 32  # torchvision's GeneralizedRCNNTransform default
BOX_CODER_WEIGHTS = (1.0, 1.0, 1.0, 1.0)  # torchvision RetinaNet's BoxCoder

RawOutputs = tuple[torch.Tensor, torch.Tensor]  # (N, anchors, classes) logits, (N, anchors, 4) deltas


@dataclass(frozen=True)
class PipelineSpec:
    """Everything besides the network that turns raw head outputs into detections; stored in
    the export sidecar under `detection`."""

    image_size: int  # longest image side after resizing (torchvision min_size = max_size)
    input_side: int  # the square the network sees
    mean: list[float]
    std: list[float]
    anchor_sizes: list[list[int]]  # per level
    aspect_ratios: list[list[float]]  # per level
    feature_sizes: list[list[int]]  # (h, w) of each level on the input square
    score_thresh: float
    nms_thresh: float
    detections_per_img: int
    topk_candidates: int
    classes: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str) -> PipelineSpec:
        missing = [k for k in cls.__dataclass_fields__ if k not in d]
        if missing:
            raise LeannetError(f"{source}: detection record lacks {', '.join(missing)}")
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


def input_side(image_size: int) -> int:
    return math.ceil(image_size / SIZE_DIVISIBLE) * SIZE_DIVISIBLE


@torch.inference_mode()
def spec_of(model: RetinaNet, classes: Sequence[str]) -> PipelineSpec:
    """The pipeline spec of a leannet/torchvision RetinaNet (runs its backbone once to learn
    the feature map sizes of the input square)."""
    cfg = model.config
    side = input_side(cfg.image_size)
    feats = model.backbone(torch.zeros(1, 3, side, side))
    gen = model.anchor_generator
    return PipelineSpec(
        image_size=cfg.image_size, input_side=side,
        mean=[float(v) for v in model.transform.image_mean], std=[float(v) for v in model.transform.image_std],
        anchor_sizes=[list(s) for s in gen.sizes], aspect_ratios=[[float(r) for r in a] for a in gen.aspect_ratios],
        feature_sizes=[list(f.shape[-2:]) for f in feats.values()],
        score_thresh=float(model.score_thresh), nms_thresh=float(model.nms_thresh),
        detections_per_img=int(model.detections_per_img), topk_candidates=int(model.topk_candidates),
        classes=[str(c) for c in classes],
    )


class DetectionPipeline:
    """`pipeline(images)` -> one `{"boxes", "scores", "labels"}` dict per image, the contract of
    torchvision's detectors in eval mode (images: float (3, H, W) tensors in [0, 1]).

    `raw` maps a normalised (N, 3, side, side) batch to the raw head outputs; `batch` is the
    largest batch it accepts at once (1 for a fixed-shape artefact, None for any).
    """

    def __init__(self, raw: Callable[[torch.Tensor], RawOutputs], spec: PipelineSpec, batch: int | None = None,
                 runtime: str = "eager", precision: str = "fp32", threads: int | None = None):
        self.raw, self.spec, self.batch = raw, spec, batch
        self.runtime, self.precision = runtime, precision
        # PyTorch intra-op threads for the calls only (None: the process's count); the
        # process-wide setting is left as it was, whatever else runs in this process.
        self.threads = threads
        self.model: RetinaNet | None = None  # the PyTorch detector, when that is the backend
        self.record: dict[str, Any] = {}  # the artefact's sidecar, when an artefact is
        self.info: dict[str, Any] = {}  # the artefact runner's settings (threads, hints), for bench rows
        self.transform = GeneralizedRCNNTransform(spec.image_size, spec.image_size, spec.mean, spec.std,
                                                  size_divisible=SIZE_DIVISIBLE).eval()
        # The attributes RetinaNet.postprocess_detections reads, so torchvision's own code runs.
        self._post = SimpleNamespace(box_coder=det_utils.BoxCoder(weights=BOX_CODER_WEIGHTS),
                                     score_thresh=spec.score_thresh, nms_thresh=spec.nms_thresh,
                                     detections_per_img=spec.detections_per_img,
                                     topk_candidates=spec.topk_candidates)
        side = spec.input_side
        gen = AnchorGenerator(tuple(tuple(s) for s in spec.anchor_sizes),
                              tuple(tuple(r) for r in spec.aspect_ratios))
        # Anchors depend only on the padded input shape and the feature sizes: fixed here.
        probe = ImageList(torch.zeros(1, 3, side, side), [(side, side)])
        self.anchors = gen(probe, [torch.zeros(1, 0, h, w) for h, w in spec.feature_sizes])[0]
        per_cell = gen.num_anchors_per_location()
        self.per_level = [h * w * a for (h, w), a in zip(spec.feature_sizes, per_cell, strict=True)]

    @property
    def classes(self) -> list[str]:
        return self.spec.classes

    def preprocess(self, images: list[torch.Tensor]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """The normalised input square(s) and each image's resized (h, w) inside it."""
        with torch.inference_mode():
            il = self.transform(images)[0]
            side = self.spec.input_side
            h, w = il.tensors.shape[-2:]
            if h > side or w > side:  # cannot happen with min_size = max_size; never crop silently
                raise LeannetError(f"resized batch {h}x{w} exceeds the network's {side}x{side} input")
            x = nnf.pad(il.tensors, (0, side - w, 0, side - h))
        return x, il.image_sizes

    def run_raw(self, x: torch.Tensor) -> RawOutputs:
        step = self.batch or len(x)
        outs = [self.raw(x[i:i + step]) for i in range(0, len(x), step)]
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])

    def postprocess(self, raw: RawOutputs, sizes: list[tuple[int, int]],
                    original: list[tuple[int, int]]) -> list[dict[str, torch.Tensor]]:
        cls, box = raw
        expected = sum(self.per_level)
        if cls.shape[1] != expected or box.shape[1] != expected or cls.shape[2] != len(self.classes):
            raise LeannetError(f"network outputs {tuple(cls.shape)} and {tuple(box.shape)} do not fit the "
                               f"pipeline ({expected} anchors, {len(self.classes)} classes)")
        with torch.inference_mode():
            heads = {"cls_logits": list(cls.float().split(self.per_level, dim=1)),
                     "bbox_regression": list(box.float().split(self.per_level, dim=1))}
            anchors = [list(self.anchors.split(self.per_level))] * len(sizes)
            dets = RetinaNet.postprocess_detections(self._post, heads, anchors, sizes)
            return self.transform.postprocess(dets, sizes, original)

    def __call__(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        if not images:
            return []
        with torch_threads(self.threads):
            x, sizes = self.preprocess(images)
            return self.postprocess(self.run_raw(x), sizes, [tuple(i.shape[-2:]) for i in images])


def torch_pipeline(model: RetinaNet, classes: Sequence[str], spec: PipelineSpec | None = None,
                   threads: int | None = None, deployed: bool = False) -> DetectionPipeline:
    """The pipeline of a PyTorch detector: its backbone and heads (RawDetector) as the network;
    `deployed`: re-parameterised and BN-folded first, the network `leannet detect export` ships."""
    from leannet.detect.model import RawDetector

    net = RawDetector(model.eval())
    if deployed:
        from leannet.deploy.reparam import reparameterize

        net = reparameterize(net)  # a copy: `model` keeps its train-time form

    def raw(x: torch.Tensor) -> RawOutputs:
        with torch.inference_mode():
            return net(x)

    pipe = DetectionPipeline(raw, spec or spec_of(model, classes), threads=threads)
    pipe.model = model  # params / MACs are counted on it
    return pipe


def artefact_pipeline(path: str | Path, runtime: str | None = None, threads: int | None = None,
                      precision: str | None = None) -> DetectionPipeline:
    """The pipeline of an exported detector (.onnx or OpenVINO .xml + its sidecar)."""
    from leannet.deploy.artefact import open_runner, read_sidecar

    record = read_sidecar(path)
    if record.get("task") != "detection" or "detection" not in record:
        raise LeannetError(f"{path}: not an exported detector (its sidecar has no detection record); "
                           "export one with `leannet detect export`")
    spec = PipelineSpec.from_dict(record["detection"], str(path))
    runner = open_runner(path, runtime, threads, precision, all_outputs=True)

    def raw(x: torch.Tensor) -> RawOutputs:
        cls, box = runner(x.numpy())[:2]
        return torch.from_numpy(np.asarray(cls)), torch.from_numpy(np.asarray(box))

    pipe = DetectionPipeline(raw, spec, runner.batch, runner.runtime, runner.precision, threads)
    pipe.record = record
    pipe.info = runner.info
    return pipe


def open_detector(source: str | Path, runtime: str | None = None, threads: int | None = None) -> DetectionPipeline:
    """A detection pipeline from a detector checkpoint (.safetensors, run in PyTorch) or an
    exported artefact (.onnx / .xml, run in ONNX Runtime or OpenVINO)."""
    from leannet.deploy.artefact import ARTEFACT_SUFFIXES

    path = Path(source)
    if path.suffix in ARTEFACT_SUFFIXES:
        return artefact_pipeline(path, runtime, threads)
    if runtime not in (None, "eager"):
        raise LeannetError(f"--runtime {runtime} runs exported detectors; export first "
                           f"(`leannet detect export {source} ...`) or drop --runtime")
    from leannet.detect.model import load_detector

    model, classes = load_detector(str(source))
    return torch_pipeline(model, classes, threads=threads)
