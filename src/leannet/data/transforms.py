"""Train/eval transforms on torchvision.transforms.v2. Input is an RGB PIL image (grayscale
is converted by the loader), output a normalised float tensor."""

from __future__ import annotations

import math

import torch
from pydantic import Field, model_validator
from torchvision.transforms import v2

from leannet.config import Schema
from leannet.errors import DataError


class AugmentConfig(Schema):
    scale: tuple[float, float] = (0.08, 1.0)  # RandomResizedCrop area fraction
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = Field(0.5, ge=0, le=1)  # probability; 0 for digits and text
    color_jitter: float = Field(0.0, ge=0, description="brightness/contrast/saturation strength")
    randaugment: bool = False
    randaugment_magnitude: int = Field(9, ge=0, le=30)
    mixup_alpha: float = Field(0.0, ge=0)
    cutmix_alpha: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _ranges(self) -> AugmentConfig:
        lo, hi = self.scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {self.scale}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < min <= max, got {self.ratio}")
        return self


def train_transform(size: int, aug: AugmentConfig, mean, std) -> v2.Compose:
    t: list = [v2.ToImage(), v2.RandomResizedCrop(size, scale=aug.scale, ratio=aug.ratio, antialias=True)]
    if aug.hflip > 0:
        t.append(v2.RandomHorizontalFlip(aug.hflip))
    if aug.color_jitter > 0:
        c = aug.color_jitter
        t.append(v2.ColorJitter(brightness=c, contrast=c, saturation=c))
    if aug.randaugment:
        t.append(v2.RandAugment(magnitude=aug.randaugment_magnitude))
    t += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(t)


_INTERPOLATION = {"nearest": "NEAREST", "bilinear": "BILINEAR", "bicubic": "BICUBIC", "lanczos": "LANCZOS"}


def eval_transform(size: int | tuple[int, int], crop_pct: float, mean, std,
                   interpolation: str = "bilinear") -> v2.Compose:
    """The timm evaluation recipe: resize the short side to floor(size / crop_pct), centre-crop
    to size, scale to [0, 1], normalise. Training validation, export calibration and `infer`
    all use this one function, so every runtime sees identical tensors."""
    if interpolation not in _INTERPOLATION:
        raise DataError(f"unknown interpolation {interpolation!r}; use one of {', '.join(_INTERPOLATION)}")
    h, w = (size, size) if isinstance(size, int) else size
    resize = math.floor(h / crop_pct) if h == w else (math.floor(h / crop_pct), math.floor(w / crop_pct))
    return v2.Compose([
        v2.ToImage(),
        v2.Resize(resize, interpolation=getattr(v2.InterpolationMode, _INTERPOLATION[interpolation]),
                  antialias=True),
        v2.CenterCrop((h, w)),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(mean), list(std)),
    ])


def batch_mix(aug: AugmentConfig, num_classes: int) -> v2.Transform | None:
    """MixUp and/or CutMix on a batch (one of them per batch when both are on), or None."""
    ops = []
    if aug.mixup_alpha > 0:
        ops.append(v2.MixUp(alpha=aug.mixup_alpha, num_classes=num_classes))
    if aug.cutmix_alpha > 0:
        ops.append(v2.CutMix(alpha=aug.cutmix_alpha, num_classes=num_classes))
    if not ops:
        return None
    return ops[0] if len(ops) == 1 else v2.RandomChoice(ops)
