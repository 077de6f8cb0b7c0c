"""Checkpoints: weights as leannet safetensors (usable alone for inference/export) and the
training state beside them (optimizer, scheduler, EMA, epoch, step, RNG, config), each written
atomically. The state file is loaded with `weights_only=True`, so it must hold only tensors
and plain containers (configs go in as plain dicts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from leannet.errors import WeightsError
from leannet.fileio import atomic_path
from leannet.weights.io import load_state_dict, read_metadata, save_weights

STATE_SUFFIX = ".state.pt"


def checkpoint_paths(stem: str | Path) -> tuple[Path, Path]:
    """(weights, state) paths for a checkpoint called `stem` (e.g. runs/x/last)."""
    stem = Path(stem)
    return stem.with_suffix(".safetensors"), stem.with_name(stem.name + STATE_SUFFIX)


def save_checkpoint(stem: str | Path, model: nn.Module, state: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write the state first and the weights last, both carrying the same `step`, so a crash
    between the two leaves a pair that `load_checkpoint` recognises as mismatched."""
    weights, state_path = checkpoint_paths(stem)
    step = int(state.get("step", 0))
    with atomic_path(state_path) as tmp:
        torch.save(state, tmp)
    save_weights(model, weights, meta={**meta, "step": step})
    return weights


def load_checkpoint(stem: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """(model state dict, training state, metadata) of checkpoint `stem`."""
    weights, state_path = checkpoint_paths(stem)
    if not state_path.is_file():
        raise WeightsError(f"{state_path}: no training state to resume from")
    meta = read_metadata(weights)
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unreadable state file is the same user error
        raise WeightsError(f"{state_path}: corrupt training state ({str(e).splitlines()[0][:200]})") from None
    if int(state.get("step", -1)) != int(meta.get("step", -2)):
        raise WeightsError(f"{weights} and {state_path} come from different steps; the run was "
                           "interrupted while saving: resume from the other checkpoint")
    return load_state_dict(weights), state, meta
