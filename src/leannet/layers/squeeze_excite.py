import torch
from torch import nn

from leannet.layers.activations import Act, get_act


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global pool -> 1x1 reduce -> act -> 1x1 expand -> gate -> scale.

    The families differ only in the reduced width and the gate: PP-LCNet and GhostNet use
    ReLU + hard-sigmoid (as MobileNetV3), MobileOne and TResNet ReLU + sigmoid.
    """

    def __init__(self, chs: int, rd_chs: int, act: Act = "relu", gate: Act = "hard_sigmoid"):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv_reduce = nn.Conv2d(chs, rd_chs, 1, bias=True)
        self.act = get_act(act, inplace=True)
        self.conv_expand = nn.Conv2d(rd_chs, chs, 1, bias=True)
        self.gate = get_act(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.conv_expand(self.act(self.conv_reduce(self.pool(x))))
        return x * self.gate(s)
