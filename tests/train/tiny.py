"""A tiny learnable image set and config overrides that keep trainer tests fast."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from torch import nn

CLASSES = 3


def make_image_folder(root: Path, per_class: int = 24, val_per_class: int = 8, size: int = 16) -> Path:
    """root/{train,val}/<c>/*.png: class c is a bright horizontal band in the c-th third of a
    noisy gray image, so a tiny model learns it in a few steps."""
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("val", val_per_class)):
        for c in range(CLASSES):
            d = root / split / str(c)
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 90, (size, size), dtype=np.uint8)
                band = slice(c * size // CLASSES, (c + 1) * size // CLASSES)
                img[band] = rng.integers(170, 255, img[band].shape, dtype=np.uint8)
                Image.fromarray(img).save(d / f"{i:03d}.png")  # 2-D uint8: mode "L"
    return root


def overrides(root: Path, out: Path, **extra) -> list[str]:
    base = {
        "model.name": "pplcnet_x0_25",
        "data.kind": "imagefolder",
        "data.root": str(root),
        "data.input_size": 16,
        "data.crop_pct": 1.0,
        "data.batch_size": 8,
        "data.augment.scale": "[0.7, 1.0]",
        "data.augment.hflip": 0.0,
        "optim.lr": 0.05,
        "schedule.epochs": 2,
        "schedule.warmup_epochs": 0.5,
        "log.tensorboard": "false",
        "log.progress": "false",
        "log.every_steps": 1,
        "run.out_dir": str(out),
        "run.threads": 1,
        "run.device": "cpu",
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


class NoNormNet(nn.Module):
    """No BatchNorm: per-rank batch statistics would make DDP differ from one big batch
    (SyncBatchNorm is GPU-only), and this test is about the gradient averaging."""

    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))

    def forward(self, x):
        return self.body(x)
