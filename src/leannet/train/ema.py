"""Exponential moving average of weights, on torch's AveragedModel.

BatchNorm running statistics are averaged too (`use_buffers=True`), so the EMA model is
evaluated as-is without recalibration.
"""

from __future__ import annotations

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from leannet.train.config import EmaConfig


def build_ema(model: nn.Module, cfg: EmaConfig) -> AveragedModel | None:
    """An EMA copy of `model` (the unwrapped module, not its DDP wrapper), or None if disabled.
    Call `ema.update_parameters(model)` after each optimizer step; the averaged network is
    `ema.module`."""
    if not cfg.enabled:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.decay), use_buffers=True)
