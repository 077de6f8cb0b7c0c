"""Datasets and transforms: ImageFolder, list files, the built-in digits set."""

from leannet.data.datasets import ImageDataset, collate
from leannet.data.digits import prepare_digits
from leannet.data.images import (
           Samples,
           find_images,
           image_folder,
           list_file,
           load_image,
           unlabeled_folder,
)

__all__ = ["ImageDataset", "Samples", "collate", "find_images", "image_folder", "list_file", "load_image",
           "prepare_digits", "unlabeled_folder"]
