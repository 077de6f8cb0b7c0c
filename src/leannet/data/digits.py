"""The built-in dataset: scikit-learn's bundled handwritten digits (1,797 real 8x8 scans,
10 classes), written once as an ImageFolder with a fixed, stratified train/val split.

Nothing is downloaded: the images ship inside scikit-learn.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = tuple(str(i) for i in range(10))
VAL_FRACTION = 0.2
SPLIT_SEED = 0


def default_root() -> Path:
    return Path(os.environ.get("LEANNET_HOME", "~/.cache/leannet")).expanduser() / "data" / "digits"


def prepare_digits(root: str | Path | None = None) -> Path:
    """Write `root/{train,val}/<digit>/<index>.png` once and return `root`.

    The split is stratified with a fixed seed, so every machine gets the same 1,437 training
    and 360 validation images. Writing goes to a temporary folder renamed into place, so an
    interrupted first run leaves nothing half-written.
    """
    from leannet.extras import require

    load_digits = require("sklearn.datasets", "the built-in digits data set").load_digits
    from sklearn.model_selection import train_test_split

    root = Path(root) if root is not None else default_root()
    if (root / "train").is_dir() and (root / "val").is_dir():
        return root
    digits = load_digits()
    images = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
    idx = np.arange(len(images))
    train_idx, val_idx = train_test_split(idx, test_size=VAL_FRACTION, random_state=SPLIT_SEED,
                                          stratify=digits.target)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".digits-", dir=root.parent))
    try:
        for split, ids in (("train", train_idx), ("val", val_idx)):
            for c in CLASSES:
                (tmp / split / c).mkdir(parents=True)
            for i in sorted(ids):
                Image.fromarray(images[i]).save(tmp / split / str(digits.target[i]) / f"{i:04d}.png")
        root.mkdir(parents=True, exist_ok=True)
        for split in ("train", "val"):
            os.replace(tmp / split, root / split)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
