"""Datasets and transforms: ImageFolder, list files, the built-in digits set."""

from leannet.data.digits import prepare_digits

__all__ = ["prepare_digits"]
