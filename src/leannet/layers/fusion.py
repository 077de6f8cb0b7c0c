"""Folding BatchNorm into convolutions and merging parallel conv branches.

Shared by the re-parameterisable families (MobileOne, RepVGG) and by the deploy path, which
folds every BatchNorm of any model into the conv that feeds it.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn


def fuse_bn(kernel: torch.Tensor, bn: nn.BatchNorm2d, bias: torch.Tensor | None = None):
    """Return (kernel, bias) of one conv equal to conv(kernel, bias) followed by `bn` in eval mode.

    Computed in float64 and returned in float64: callers sum branches and round once when they
    copy into the deployed conv. Rounding every intermediate in float32 costs ~2x the weight
    error, which a deep net amplifies (MobileOne-S4: 7e-5 -> see tests/models/rep_checks.py).
    """
    f64 = torch.float64
    std = (bn.running_var.to(f64) + bn.eps).sqrt()
    gamma = bn.weight.to(f64) if bn.affine else torch.ones_like(std)
    beta = bn.bias.to(f64) if bn.affine else torch.zeros_like(std)
    scale = gamma / std
    b = bias.to(f64) if bias is not None else torch.zeros_like(std)
    return kernel.to(f64) * scale.reshape(-1, 1, 1, 1), beta + (b - bn.running_mean.to(f64)) * scale


def pad_kernel(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad a square kernel to `size` x `size`, centred (a 1x1 branch inside a 3x3 conv)."""
    p = (size - kernel.shape[-1]) // 2
    return F.pad(kernel, [p, p, p, p]) if p else kernel


def identity_kernel(channels: int, groups: int, size: int, like: torch.Tensor) -> torch.Tensor:
    """The kernel of a grouped conv that copies its input (the BN-identity branch)."""
    in_per_group = channels // groups
    k = torch.zeros(channels, in_per_group, size, size, dtype=like.dtype, device=like.device)
    idx = torch.arange(channels, device=like.device)
    k[idx, idx % in_per_group, size // 2, size // 2] = 1.0
    return k


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold `bn` into `conv` in place (conv gains a bias); the caller replaces `bn` by Identity."""
    w, b = fuse_bn(conv.weight, bn, conv.bias)
    conv.weight.copy_(w)
    if conv.bias is None:
        conv.bias = nn.Parameter(b.to(conv.weight.dtype))
    else:
        conv.bias.copy_(b)


def _set_module(root: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, new)


def conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(conv path, bn path) for every BatchNorm2d fed only by a Conv2d whose output goes nowhere else.

    Found from the dataflow graph (torch.fx), not from module order, so a BN is folded only
    where it really follows the conv. Models FX cannot trace fall back to adjacent children
    of a Sequential, which is the one place where order is dataflow.
    """
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception:
        return _sequential_pairs(model)
    pairs = []
    for node in gm.graph.nodes:
        if node.op != "call_module" or not isinstance(gm.get_submodule(node.target), nn.BatchNorm2d):
            continue
        src = node.args[0]
        if (
            isinstance(src, torch.fx.Node)
            and src.op == "call_module"
            and isinstance(gm.get_submodule(src.target), nn.Conv2d)
            and len(src.users) == 1
        ):
            pairs.append((src.target, node.target))
    # A module called twice in forward can't be folded for one call site only.
    counts: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            counts[node.target] = counts.get(node.target, 0) + 1
    return [(c, b) for c, b in pairs if counts[c] == 1 and counts[b] == 1]


def _sequential_pairs(model: nn.Module) -> list[tuple[str, str]]:
    pairs = []
    for path, mod in model.named_modules():
        if not isinstance(mod, nn.Sequential):
            continue
        children = list(mod.named_children())
        for (n1, m1), (n2, m2) in itertools.pairwise(children):
            if isinstance(m1, nn.Conv2d) and isinstance(m2, nn.BatchNorm2d):
                prefix = f"{path}." if path else ""
                pairs.append((prefix + n1, prefix + n2))
    return pairs


def fold_batchnorms(model: nn.Module) -> int:
    """Fold every foldable BatchNorm2d of `model` into its conv, in place. Returns how many."""
    pairs = conv_bn_pairs(model)
    for conv_path, bn_path in pairs:
        conv = model.get_submodule(conv_path)
        bn = model.get_submodule(bn_path)
        if bn.track_running_stats and bn.running_mean is not None:
            fold_conv_bn(conv, bn)
            _set_module(model, bn_path, nn.Identity())
    return len(pairs)
