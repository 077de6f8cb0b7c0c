"""Datasets and transforms: ImageFolder, list files, the built-in digits set."""

from leannet.data.datasets import (
           ImageDataset,
           Samples,
           collate,
           image_folder,
           list_file,
           unlabeled_folder,
)
from leannet.data.digits import prepare_digits
from leannet.data.images import load_image

__all__ = ["ImageDataset", "Samples", "collate", "image_folder", "list_file", "load_image",
           "prepare_digits", "unlabeled_folder"]
