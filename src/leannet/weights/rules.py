"""The vocabulary of checkpoint layouts: a `Layout` (how one source's keys become leannet's),
block renumbering (`Blocks`) and the per-tensor transforms the tables use. The tables are in
`leannet.weights.layouts`; `leannet.weights.convert` applies them."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

# (target key, tensor, whole renamed state) -> new tensor. The state is the one before any
# transform runs, so transforms never see each other's output.
Transform = Callable[[str, torch.Tensor, Mapping[str, torch.Tensor]], torch.Tensor]

@dataclass(frozen=True)
class Blocks:
    """Renumber blocks by position.

    `source` and `target` are regexes matching a block's key prefix (e.g. `blocks\\.\\d+\\.\\d+\\.`
    and `stages\\.\\d+\\.\\d+\\.`). Source blocks are put in natural order of their numbers
    (a file's key order is not reliable: safetensors sorts keys), target blocks in the model's
    order, and the k-th is renamed to the k-th. `inner`, when given, lists a source block's
    modules in network order, one tuple per block type (the smallest type first: a block uses
    the first tuple that contains all its modules); they are then mapped by position onto the
    target block's modules, for targets whose inner names depend on which parts exist
    (torchvision's MobileNetV3 numbers its sub-layers and an SE shifts them).
    """

    source: str
    target: str
    inner: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class Layout:
    name: str  # shown in reports, e.g. "timm lcnet_*"
    family: str  # leannet family it converts into
    detect: tuple[str, ...]  # regexes; the layout applies when each matches some key
    reject: tuple[str, ...] = ()  # ... and none of these matches any key
    rename: tuple[tuple[str, str], ...] = ()  # (regex, replacement), applied in order
    blocks: Blocks | None = None
    drop: tuple[str, ...] = ()  # source keys with no counterpart by design (fixed filters)
    transforms: tuple[tuple[str, Transform], ...] = ()  # (target-key regex, transform)
    model_args: tuple[tuple[str, str, Any], ...] = ()  # (key regex, argument, value)
    refuse: str = ""  # why this checkpoint can't become our model
    note: str = ""

    def matches(self, keys: list[str]) -> bool:
        return (all(any(re.search(p, k) for k in keys) for p in self.detect)
                and not any(re.search(p, k) for p in self.reject for k in keys))

    def implied_args(self, keys: list[str]) -> dict[str, Any]:
        return {arg: value for pattern, arg, value in self.model_args
                if any(re.search(pattern, k) for k in keys)}


# --- transforms used by the layout tables -----------------------------------------------------


def transpose(key: str, t: torch.Tensor, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Paddle's Linear stores (in, out); torch's (out, in)."""
    return t.t().contiguous()


def scale(factor: float) -> Transform:
    def fn(key: str, t: torch.Tensor, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return t * factor

    fn.__name__ = f"scale({factor})"
    return fn


def conv_to_linear(key: str, t: torch.Tensor, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """A 1x1 conv on a pooled map is a Linear: (out, in, 1, 1) -> (out, in)."""
    return t.flatten(1) if t.dim() == 4 else t


def bn_eps(source_eps: float, target_eps: float) -> Transform:
    """Re-express a BN weight trained with `source_eps` for a BN that uses `target_eps`.

    In eval mode BN computes w * (x - mean) / sqrt(var + eps) + b; scaling w by
    sqrt(var + target_eps) / sqrt(var + source_eps) gives the same function exactly.
    """

    def fn(key: str, t: torch.Tensor, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        var = state.get(key[: -len("weight")] + "running_var")
        if var is None:  # a conv or linear weight: not a BN
            return t
        return t * torch.sqrt((var + target_eps) / (var + source_eps))

    fn.__name__ = f"bn_eps({source_eps}->{target_eps})"
    return fn


def abs_plus(eps: float) -> Transform:
    """InPlaceABN scales by |gamma| + eps; a plain BN needs that as its weight."""

    def fn(key: str, t: torch.Tensor, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return t.abs() + eps

    fn.__name__ = f"abs_plus({eps})"
    return fn
