"""Weights on disk: safetensors plus JSON metadata, safe loading of other formats, and
converters from timm / torchvision / official-repository layouts."""

from leannet.weights.convert import convert_and_load, convert_checkpoint
from leannet.weights.hub import load_pretrained
from leannet.weights.io import (
    LoadReport,
    load_into,
    load_pdparams,
    load_state_dict,
    load_weights,
    read_metadata,
    save_weights,
)

__all__ = [
    "LoadReport",
    "convert_and_load",
    "convert_checkpoint",
    "load_into",
    "load_pdparams",
    "load_pretrained",
    "load_state_dict",
    "load_weights",
    "read_metadata",
    "save_weights",
]
