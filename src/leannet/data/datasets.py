"""`ImageDataset`: (path, label) samples (found by `leannet.data.images`: ImageFolder trees,
PaddleClas list files, unlabeled folders, the built-in digits set) decoded and augmented.

`ImageDataset` makes augmentation a pure function of (seed, epoch, index): each sample's
transform runs under its own RNG seed. A run resumed mid-epoch, or split over any number of
DDP processes, therefore sees exactly the same augmented images. An unreadable image is
returned as a `Skipped` marker (dropped and counted by `collate`), or raises under `strict`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset, default_collate

from leannet.data.images import UNLABELED, Samples, load_image
from leannet.errors import DataError

log = logging.getLogger("leannet.data")


def check_labels(samples: Samples, num_classes: int) -> None:
    for path, y in samples.items:
        if y != UNLABELED and not 0 <= y < num_classes:
            raise DataError(f"{samples.source}: label {y} of {path} is outside the class range [0, {num_classes})")


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The RNG seed of sample `index`'s augmentation in `epoch`: a function of these alone, not
    of the worker, the process or the global RNG (the detector's flips use it too)."""
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
            torch.manual_seed(sample_seed(self.seed, self.epoch, index))
            return self.transform(img), label


def collate(batch: list) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(images, labels, paths of skipped images)."""
    good, skipped = drop_skipped(batch)
    x, y = default_collate(good)
    return x, y, skipped


def drop_skipped(batch: list) -> tuple[list, list[str]]:
    """(readable items, paths of the unreadable ones) of a batch: the bad-file policy every
    collate shares. Skipped images are dropped here and counted by the trainer
    (`skipped_images` in its summary); a batch with nothing readable left is an error, not an
    empty step."""
    good = [b for b in batch if not isinstance(b, Skipped)]
    skipped = [b.path for b in batch if isinstance(b, Skipped)]
    if not good:
        raise DataError(f"every image of a batch is unreadable (first: {skipped[0]})")
    return good, skipped
