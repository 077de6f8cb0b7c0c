"""Weights on disk: safetensors plus JSON metadata, and safe loading of other formats."""

from leannet.weights.io import (
    load_pretrained,
    load_state_dict,
    load_weights,
    read_metadata,
    save_weights,
)

__all__ = ["load_pretrained", "load_state_dict", "load_weights", "read_metadata", "save_weights"]
