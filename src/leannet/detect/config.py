"""The detection config: one YAML drives train, eval, infer and pseudo-labelling.

    leannet detect train -c configs/detect/retinanet_snet146_slim.yaml -o schedule.epochs=30

Every field is validated (unknown keys fail with their dotted path). Defaults describe the
slim document detector of seed 001: a light backbone, a 64-wide FPN over strides 8-32 plus
two extra levels, two-conv 64-wide heads with GroupNorm (small batches), two classes.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from leannet.config import Schema
from leannet.train.config import (
    CheckpointConfig,
    EngineConfig,
    OptimConfig,
    RunConfig,
    ScheduleConfig,
)


class ModelConfig(Schema):
    backbone: str = "snet146"  # any leannet model with features_only (ResNet-50 = the seed's baseline)
    in_strides: list[int] = Field(default=[8, 16, 32], min_length=1)  # backbone levels feeding the FPN
    fpn_channels: int = Field(64, ge=8)  # RetinaNet: 256; the seed slims the FPN branch
    extra_levels: int = Field(2, ge=0, le=3)  # stride-2 convs after the last level (P6, P7)
    extra_from: Literal["c5", "p5"] = "p5"  # RetinaNet: P6 from C5; cheaper from the slim P5
    fpn_norm: Literal["none", "batch", "group"] = "none"
    head_channels: int = Field(64, ge=8)  # RetinaNet: 256
    head_depth: int = Field(2, ge=0, le=8)  # convs per head tower; RetinaNet: 4
    head_kernel: Literal[1, 3] = 3  # the seed's slim heads use 1x1 convs
    head_separable: bool = False  # depthwise 3x3 + pointwise 1x1 instead of a full 3x3
    head_norm: Literal["none", "batch", "group"] = "group"  # GroupNorm: fine at batch 2
    num_classes: int = Field(2, ge=1)  # must equal the dataset's number of categories
    image_size: int = Field(320, ge=32)  # longest image side after resizing
    anchor_scale: float = Field(4.0, gt=0)  # base anchor = scale x stride (RetinaNet: 4)
    anchor_octaves: int = Field(3, ge=1, le=5)  # sizes per octave (RetinaNet: 3)
    anchor_ratios: list[float] = Field(default=[0.5, 1.0, 2.0], min_length=1)
    box_loss: Literal["l1", "smooth_l1", "giou", "diou", "ciou"] = "l1"
    score_thresh: float = Field(0.05, ge=0, le=1)
    nms_thresh: float = Field(0.5, gt=0, le=1)
    detections_per_img: int = Field(100, ge=1)
    topk_candidates: int = Field(1000, ge=1)

    @model_validator(mode="after")
    def _strides(self) -> ModelConfig:
        s = self.in_strides
        if any(b != 2 * a for a, b in itertools.pairwise(s)):
            raise ValueError(f"in_strides must double level to level, got {s}")
        if any(r <= 0 for r in self.anchor_ratios):
            raise ValueError("anchor_ratios must be positive")
        return self


class SyntheticConfig(Schema):
    num_images: int = Field(512, ge=1)
    seed: int = 0
    image_size: int = Field(256, ge=32)
    # "hard": + receipts (3 classes: set model.num_classes 3), stronger perspective, camera blur,
    # low contrast, overlapping and more documents (leannet.detect.synthetic)
    difficulty: Literal["standard", "hard"] = "standard"


class SplitConfig(Schema):
    """A COCO file + image folder, or a synthetic set generated (once) under `data.root`."""

    ann: str | None = None
    images: str | None = None  # defaults to the folder of `ann`
    synthetic: SyntheticConfig | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SplitConfig:
        if (self.ann is None) == (self.synthetic is None):
            raise ValueError("give exactly one of 'ann' (a COCO file) or 'synthetic'")
        if self.images is not None and self.ann is None:
            raise ValueError("'images' needs 'ann'")
        return self


class DataConfig(Schema):
    train: SplitConfig = SplitConfig(synthetic=SyntheticConfig(num_images=512, seed=0))
    val: SplitConfig = SplitConfig(synthetic=SyntheticConfig(num_images=128, seed=1))  # picks `best`
    batch_size: int = Field(8, ge=1)  # global (split across torchrun processes)
    root: str | None = None  # where synthetic sets are written; default $LEANNET_HOME/data/detect
    strict: bool = False  # bad annotations raise instead of being skipped and counted
    keep_empty: bool = False  # keep images without boxes as background-only samples
    hflip: float = Field(0.5, ge=0, le=1)
    workers: int = Field(0, ge=0)


class DetectConfig(EngineConfig):
    """`model` and `data` here; `optim`, `schedule`, `ema`, `amp`, `checkpoint`, `log` and
    `run` are the shared trainer's sections (leannet.train.config), with detection defaults."""

    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    optim: OptimConfig = OptimConfig(name="adamw", lr=1e-3, weight_decay=1e-4, clip_grad_norm=10.0)
    schedule: ScheduleConfig = ScheduleConfig(epochs=24, warmup_epochs=1.0)
    checkpoint: CheckpointConfig = CheckpointConfig(metric="map50")
    run: RunConfig = RunConfig(out_dir=Path("runs/detect"))


def load_detect_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> DetectConfig:
    from leannet.config import load_config

    return load_config(DetectConfig, path, overrides)
