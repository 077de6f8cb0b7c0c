"""Optimizer and schedules, built from torch's own pieces.

`build_optimizer` exempts norm weights and biases from weight decay; `build_scheduler` chains
`LinearLR` (warm-up) and `CosineAnnealingLR`, stepped once per optimizer step;
`set_weight_decay` applies MobileOne's cosine-annealed weight decay (torch has no scheduler
for it).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR

from leannet.train.config import OptimConfig, ScheduleConfig

_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def param_groups(model: nn.Module, weight_decay: float, exempt_norm_bias: bool = True) -> list[dict]:
    """Two groups: decayed weights, and norm scales + biases with weight_decay 0."""
    if not exempt_norm_bias:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": weight_decay}]
    no_decay_ids = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if isinstance(module, _NORMS) or name.endswith("bias") or p.ndim <= 1:
                no_decay_ids.add(id(p))
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if id(p) in no_decay_ids else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay, "decayed": True},
            {"params": no_decay, "weight_decay": 0.0, "decayed": False}]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay, cfg.no_decay_norm_bias)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, steps_per_epoch: int) -> LRScheduler:
    """Per-step linear warm-up then cosine decay over `cfg.epochs * steps_per_epoch` steps."""
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = min(round(cfg.warmup_epochs * steps_per_epoch), total - 1)
    base_lr = optimizer.param_groups[0]["lr"]
    cosine = CosineAnnealingLR(optimizer, T_max=max(1, total - warmup), eta_min=base_lr * cfg.min_lr_ratio)
    if warmup == 0:
        return cosine
    linear = LinearLR(optimizer, start_factor=cfg.warmup_start_factor, end_factor=1.0, total_iters=warmup)
    return SequentialLR(optimizer, [linear, cosine], milestones=[warmup])


def set_weight_decay(optimizer: torch.optim.Optimizer, cfg: OptimConfig, progress: float) -> float:
    """Cosine-anneal weight decay from cfg.weight_decay to cfg.weight_decay_end at training
    progress in [0, 1] (MobileOne); returns the value set on the decayed groups."""
    if cfg.weight_decay_end is None:
        return cfg.weight_decay
    p = min(max(progress, 0.0), 1.0)
    wd = cfg.weight_decay_end + 0.5 * (cfg.weight_decay - cfg.weight_decay_end) * (1 + math.cos(math.pi * p))
    for group in optimizer.param_groups:
        if group.get("decayed", True):
            group["weight_decay"] = wd
    return wd
