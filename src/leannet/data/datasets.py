"""Image classification datasets as (path, label) lists: ImageFolder trees, PaddleClas list
files, unlabeled folders, and the built-in digits set, behind one `ImageDataset`.

`ImageDataset` makes augmentation a pure function of (seed, epoch, index): each sample's
transform runs under its own RNG seed. A run resumed mid-epoch, or split over any number of
DDP processes, therefore sees exactly the same augmented images. An unreadable image is
returned as a `Skipped` marker (dropped and counted by `collate`), or raises under `strict`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset, default_collate
from torchvision.datasets.folder import IMG_EXTENSIONS

from leannet.data.images import load_image
from leannet.errors import DataError

log = logging.getLogger("leannet.data")

UNLABELED = -1  # label of images that only the distillation teacher sees


@dataclass(frozen=True)
class Samples:
    items: list[tuple[str, int]]
    classes: list[str]
    source: str  # what the user pointed at, for messages


def image_folder(root: str | Path) -> Samples:
    """`root/<class>/<image>`; classes are the sorted sub-folder names (torchvision's rule)."""
    from torchvision.datasets import ImageFolder

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such dataset folder")
    try:
        ds = ImageFolder(str(root), loader=lambda p: p)
    except FileNotFoundError as e:  # no class folders, or no image files in them
        raise DataError(f"{root}: empty dataset ({e})") from None
    return Samples([(p, int(y)) for p, y in ds.samples], list(ds.classes), str(root))


def list_file(path: str | Path, root: str | Path | None = None, num_classes: int | None = None) -> Samples:
    """PaddleClas list file: `relative/path.jpg label` per line, paths relative to `root`
    (default: the list file's folder). Labels are integers in [0, num_classes)."""
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    if not path.is_file():
        raise DataError(f"{path}: no such list file")
    items: list[tuple[str, int]] = []
    for no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        rel, _, label = line.strip().rpartition(" ")
        if not rel or not label.lstrip("-").isdigit():
            raise DataError(f"{path}:{no}: expected 'relative/path label', got {line.strip()!r}")
        y = int(label)
        if y < 0 or (num_classes is not None and y >= num_classes):
            limit = f"[0, {num_classes})" if num_classes is not None else ">= 0"
            raise DataError(f"{path}:{no}: label {y} is outside the class range {limit}")
        items.append((str(root / rel.strip()), y))
    if not items:
        raise DataError(f"{path}: empty dataset (no samples listed)")
    n = (max(y for _, y in items) + 1) if num_classes is None else num_classes
    return Samples(items, [str(i) for i in range(n)], str(path))


def unlabeled_folder(root: str | Path) -> Samples:
    """Every image under `root` (any depth), labelled UNLABELED."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder of unlabeled images")
    files = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS)
    if not files:
        raise DataError(f"{root}: empty dataset (no image files)")
    return Samples([(f, UNLABELED) for f in files], [], str(root))


def check_labels(samples: Samples, num_classes: int) -> None:
    for path, y in samples.items:
        if y != UNLABELED and not 0 <= y < num_classes:
            raise DataError(f"{samples.source}: label {y} of {path} is outside the class range [0, {num_classes})")


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


def _sample_seed(seed: int, epoch: int, index: int) -> int:
    return (seed * 1_000_003 + epoch * 10_007 + index * 7_919 + 12_345) % (2**63 - 1)


class ImageDataset(Dataset):
    def __init__(self, items: Sequence[tuple[str, int]], transform: Callable, *, seed: int = 0,
                 strict: bool = False):
        self.items = list(items)
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.strict = strict

    def set_epoch(self, epoch: int, transform: Callable | None = None) -> None:
        """Call before creating each epoch's iterator (workers copy the dataset then)."""
        self.epoch = epoch
        if transform is not None:
            self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        path, label = self.items[index]
        try:
            img = load_image(path)
        except DataError as e:
            if self.strict:
                raise
            log.warning("skipping %s", e)
            return Skipped(path, str(e))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_sample_seed(self.seed, self.epoch, index))
            return self.transform(img), label


def collate(batch: list) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(images, labels, paths of skipped images)."""
    good = [b for b in batch if not isinstance(b, Skipped)]
    skipped = [b.path for b in batch if isinstance(b, Skipped)]
    if not good:
        raise DataError(f"every image of a batch is unreadable (first: {skipped[0]})")
    x, y = default_collate(good)
    return x, y, skipped
