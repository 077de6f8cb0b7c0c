"""GhostNet: More Features from Cheap Operations (Han et al., CVPR 2020, arXiv:1911.11907).

The C-Ghost network of the IJCV follow-up (arXiv:2201.03297). A Ghost module makes half of
its output maps with an ordinary 1x1 conv (the "intrinsic" maps) and the other half from
those by a cheap 3x3 depthwise conv, because many maps of a trained CNN are near-copies of
others. Ghost bottlenecks stack two such modules like MobileNetV3's inverted residuals
(expand -> [depthwise stride-2] -> [SE] -> project, linear projection, residual add).

Layout follows the official huawei-noah `ghostnet_pytorch/ghostnet.py` (also timm's
`ghostnet.py`, v1), grouped by output resolution so each stage is one feature level. Key
mapping from timm's `ghostnet_*`: `conv_stem`/`bn1` -> `stem.conv`/`stem.bn`; `blocks.i.j`
(i = 0..8, one block group per row of Table 1) -> `stages.s.b` in order; inside a block,
`ghostN.primary_conv.{0,1}` -> `ghostN.primary.{conv,bn}`, `ghostN.cheap_operation.{0,1}` ->
`ghostN.cheap.{conv,bn}`, `conv_dw`/`bn_dw` -> `dw.{conv,bn}`, `se.*` -> `se.*`,
`shortcut.{0,1,2,3}` -> `shortcut.{dw.conv,dw.bn,pw.conv,pw.bn}`; `blocks.9.0.{conv,bn1}` ->
`final.{conv,bn}`; `conv_head` -> `head.conv`; `classifier` -> `head.fc`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from leannet.layers import ClassifierHead, ConvBnAct, SqueezeExcite, make_divisible
from leannet.models.base import StagedModel
from leannet.registry import Published, register

__all__ = ["GhostNet", "ghostnet_x0_5", "ghostnet_x1_0", "ghostnet_x1_3"]


@dataclass(frozen=True)
class Bneck:
    """One row of Table 1: a Ghost bottleneck (channels at width 1.0, before rounding)."""

    kernel: int  # depthwise kernel (used only when stride 2, and in the shortcut)
    mid_chs: int  # "#exp": width after the expanding Ghost module
    out_chs: int
    stride: int = 1
    se: bool = False


# GhostNet Table 1 (arXiv:1911.11907), one inner tuple per output resolution (112..7 at 224).
STAGES: tuple[tuple[Bneck, ...], ...] = (
    (Bneck(3, 16, 16),),
    (Bneck(3, 48, 24, stride=2), Bneck(3, 72, 24)),
    (Bneck(5, 72, 40, stride=2, se=True), Bneck(5, 120, 40, se=True)),
    (
        Bneck(3, 240, 80, stride=2),
        Bneck(3, 200, 80),
        Bneck(3, 184, 80),
        Bneck(3, 184, 80),
        Bneck(3, 480, 112, se=True),
        Bneck(3, 672, 112, se=True),
    ),
    (
        Bneck(5, 672, 160, stride=2, se=True),
        Bneck(5, 960, 160),
        Bneck(5, 960, 160, se=True),
        Bneck(5, 960, 160),
        Bneck(5, 960, 160, se=True),
    ),
)
STEM_CHS = 16
FINAL_CHS = 960  # Table 1 "Conv2d 1x1" after the last bottleneck; scales with width
HEAD_HIDDEN = 1280  # the 1x1 conv after pooling; not scaled with width
SE_RATIO = 0.25
DIVISOR = 4  # the official code rounds every width to a multiple of 4, not 8


class GhostModule(nn.Module):
    """1x1 conv -> m intrinsic maps; depthwise conv on them -> (ratio-1)*m ghost maps; concat."""

    def __init__(self, in_chs: int, out_chs: int, act: str | None = "relu", ratio: int = 2,
                 dw_kernel: int = 3):
        super().__init__()
        self.out_chs = out_chs
        init_chs = math.ceil(out_chs / ratio)
        self.primary = ConvBnAct(in_chs, init_chs, 1, act=act)
        self.cheap = ConvBnAct(init_chs, init_chs * (ratio - 1), dw_kernel, groups=init_chs, act=act)
        # Only a width the ratio does not divide has channels too many. A full-width slice
        # is not free: exported, it stays a Slice that copies in ONNX Runtime and changes
        # NNCF's INT8 graph (ghostnet_x1_0 b1: ORT fp32 6.52 -> 5.46 ms, OpenVINO INT8
        # 3.73 -> 2.91 ms without it).
        self.trim = init_chs * ratio != out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.primary(x)
        out = torch.cat([x, self.cheap(x)], dim=1)
        return out[:, : self.out_chs] if self.trim else out


class GhostBottleneck(nn.Module):
    """Ghost module (ReLU) -> [depthwise stride-2 conv + BN] -> [SE] -> Ghost module (linear),
    plus the input, through a depthwise + pointwise conv pair when the shape changes."""

    def __init__(self, in_chs: int, mid_chs: int, out_chs: int, kernel: int = 3, stride: int = 1,
                 se: bool = False):
        super().__init__()
        self.ghost1 = GhostModule(in_chs, mid_chs, act="relu")
        self.dw = (ConvBnAct(mid_chs, mid_chs, kernel, stride, groups=mid_chs, act=None)
                   if stride > 1 else nn.Identity())
        self.se = (SqueezeExcite(mid_chs, make_divisible(mid_chs * SE_RATIO, DIVISOR),
                                 act="relu", gate="hard_sigmoid") if se else nn.Identity())
        self.ghost2 = GhostModule(mid_chs, out_chs, act=None)
        if in_chs == out_chs and stride == 1:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(OrderedDict(
                dw=ConvBnAct(in_chs, in_chs, kernel, stride, groups=in_chs, act=None),
                pw=ConvBnAct(in_chs, out_chs, 1, act=None),
            ))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ghost2(self.se(self.dw(self.ghost1(x)))) + self.shortcut(x)


class GhostNet(StagedModel):
    def __init__(self, width: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.2):
        super().__init__()
        self.in_chans, self.num_classes = in_chans, num_classes
        chs = make_divisible(STEM_CHS * width, DIVISOR)
        self.stem = ConvBnAct(in_chans, chs, 3, stride=2, act="relu")
        stride = 2
        for rows in STAGES:
            blocks = []
            for b in rows:
                mid = make_divisible(b.mid_chs * width, DIVISOR)
                out = make_divisible(b.out_chs * width, DIVISOR)
                blocks.append(GhostBottleneck(chs, mid, out, b.kernel, b.stride, b.se))
                chs, stride = out, stride * b.stride
            self.add_stage(nn.Sequential(*blocks), chs, stride)
        final_chs = make_divisible(FINAL_CHS * width, DIVISOR)
        self.final = ConvBnAct(chs, final_chs, 1, act="relu")
        self.head = ClassifierHead(final_chs, num_classes, hidden=HEAD_HIDDEN, act="relu",
                                   hidden_bias=True, drop_rate=drop_rate)
        self.num_features = HEAD_HIDDEN
        # No init of our own: huawei-noah's ghostnet.py keeps PyTorch's defaults (convs and the
        # FC uniform within 1/sqrt(fan_in), biases too; BN 1 and 0), and so do we.


# GhostNet Table 7 (arXiv:1911.11907): params, FLOPs (multiply-adds), ImageNet top-1 at 224.
# The paper's latencies (Fig. 7, ARM phone, TFLite) are only plotted, so none are recorded.
# One builder per width of the table; timm's names are the aliases. Interpolation bicubic:
# what timm's ghostnet_100.in1k weights were evaluated with.
_table7 = partial(Published, source="arXiv:1911.11907 Table 7")


@register("ghostnet_x0_5", family="ghostnet", aliases=("ghostnet_050",), interpolation="bicubic",
          published=_table7(params_m=2.6, macs_m=42, top1=66.2))
def ghostnet_x0_5(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2) -> GhostNet:
    """GhostNet 0.5x (arXiv:1911.11907 Table 7)."""
    return GhostNet(width=0.5, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate)


@register("ghostnet_x1_0", family="ghostnet", aliases=("ghostnet_100",), interpolation="bicubic",
          published=_table7(params_m=5.2, macs_m=141, top1=73.9))
def ghostnet_x1_0(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2) -> GhostNet:
    """GhostNet 1.0x (arXiv:1911.11907 Table 7)."""
    return GhostNet(width=1.0, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate)


@register("ghostnet_x1_3", family="ghostnet", aliases=("ghostnet_130",), interpolation="bicubic",
          published=_table7(params_m=7.3, macs_m=226, top1=75.7))
def ghostnet_x1_3(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2) -> GhostNet:
    """GhostNet 1.3x (arXiv:1911.11907 Table 7)."""
    return GhostNet(width=1.3, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate)
