"""Checkpoints: weights as leannet safetensors (usable alone for inference/export) and the
training state beside them (optimizer, scheduler, EMA, epoch, step, RNG, config), each written
atomically. The state file is loaded with `weights_only=True`, so it must hold only tensors
and plain containers (configs go in as plain dicts)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from leannet.errors import WeightsError, reason
from leannet.fileio import atomic_path
from leannet.weights.io import load_state_dict, read_metadata, save_weights

STATE_SUFFIX = ".state.pt"
PREV_STATE_SUFFIX = ".prev.state.pt"


def checkpoint_paths(stem: str | Path) -> tuple[Path, Path]:
    """(weights, state) paths for a checkpoint called `stem` (e.g. runs/x/last)."""
    stem = Path(stem)
    return stem.with_suffix(".safetensors"), stem.with_name(stem.name + STATE_SUFFIX)


def save_checkpoint(stem: str | Path, model: nn.Module, state: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write the state first and the weights last, both carrying the same `step`.

    The previous state is kept (renamed, atomically) until the new weights are in place, so a
    kill at any instant leaves one state file whose step matches the weights on disk.
    """
    weights, state_path = checkpoint_paths(stem)
    step = int(state.get("step", 0))
    if state_path.is_file() and weights.is_file():
        os.replace(state_path, _prev_state_path(stem))
    with atomic_path(state_path) as tmp:
        torch.save(state, tmp)
    save_weights(model, weights, meta={**meta, "step": step})
    return weights


def read_training_state(stem: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """(model state dict, training state, metadata) of checkpoint `stem`, to resume a run;
    the weights go back in whole (`load_into`, strict, no head reset)."""
    weights, state_path = checkpoint_paths(stem)
    if not state_path.is_file():
        raise WeightsError(f"{state_path}: no training state to resume from")
    meta = read_metadata(weights)
    state = _read_state(state_path)
    if int(state.get("step", -1)) != int(meta.get("step", -2)):
        # Killed between writing the new state and the new weights: the kept previous state
        # belongs to the weights on disk.
        prev = _prev_state_path(stem)
        state = _read_state(prev) if prev.is_file() else {}
        if int(state.get("step", -1)) != int(meta.get("step", -2)):
            raise WeightsError(f"{weights} and {state_path} come from different steps; the run was "
                               "interrupted while saving: resume from the other checkpoint")
    return load_state_dict(weights), state, meta


def _prev_state_path(stem: str | Path) -> Path:
    stem = Path(stem)
    return stem.with_name(stem.name + PREV_STATE_SUFFIX)


def _read_state(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unreadable state file is the same user error
        raise WeightsError(f"{path}: corrupt training state ({reason(e, 200)})") from None
