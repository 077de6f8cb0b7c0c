"""Static cost of a model. MACs come from torch's own FlopCounterMode (which counts FLOPs =
2 x MACs for convs and matmuls); params are counted from the module."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, input_size: tuple[int, ...] = (3, 224, 224), batch: int = 1) -> int:
    """Multiply-accumulates of one forward pass at `input_size` (per batch of `batch`)."""
    was_training = model.training
    model.eval()
    x = torch.zeros(batch, *input_size)
    with FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() // 2
