"""PP-LCNet: A Lightweight CPU Convolutional Neural Network (Cui et al., arXiv:2109.15099).

A MobileNetV1-like stack of depthwise-separable blocks tuned for Intel CPUs with MKLDNN: no
shortcuts (adds and concats cost memory traffic and gain little in small nets), H-Swish
everywhere, 5x5 depthwise kernels and SE only near the tail, and a 1280-wide 1x1 conv after
global pooling. Layout follows PaddleClas `ppcls/arch/backbone/legendary_models/pp_lcnet.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from torch import nn

from leannet.layers import (
    ClassifierHead,
    ConvBnAct,
    DepthwiseSeparable,
    make_divisible,
)
from leannet.models.base import StagedModel
from leannet.registry import Published, register

__all__ = [
    "PPLCNet",
    "pplcnet_x0_5",
    "pplcnet_x0_25",
    "pplcnet_x0_35",
    "pplcnet_x0_75",
    "pplcnet_x1_0",
    "pplcnet_x1_5",
    "pplcnet_x2_0",
    "pplcnet_x2_5",
]


@dataclass(frozen=True)
class Block:
    kernel: int
    out_chs: int  # at scale 1.0, before make_divisible
    stride: int
    se: bool = False


# PP-LCNet Table 1 (PaddleClas NET_CONFIG "blocks2".."blocks6"); one inner tuple per stage.
STAGES: tuple[tuple[Block, ...], ...] = (
    (Block(3, 32, 1),),
    (Block(3, 64, 2), Block(3, 64, 1)),
    (Block(3, 128, 2), Block(3, 128, 1)),
    (Block(3, 256, 2), *[Block(5, 256, 1)] * 5),
    (Block(5, 512, 2, se=True), Block(5, 512, 1, se=True)),
)
STEM_CHS = 16
HEAD_HIDDEN = 1280


class PPLCNet(StagedModel):
    def __init__(
        self,
        scale: float = 1.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.2,
        head_bias: bool = False,  # PaddleClas: no bias; timm's lcnet_*: bias
    ):
        super().__init__()
        self.in_chans, self.num_classes = in_chans, num_classes
        chs = make_divisible(STEM_CHS * scale)
        self.stem = ConvBnAct(in_chans, chs, 3, stride=2, act="hard_swish")
        stride = 2
        for rows in STAGES:
            blocks = []
            for b in rows:
                out = make_divisible(b.out_chs * scale)
                blocks.append(DepthwiseSeparable(chs, out, b.kernel, b.stride, b.se, act="hard_swish"))
                chs, stride = out, stride * b.stride
            self.add_stage(nn.Sequential(*blocks), chs, stride)
        self.final = nn.Identity()
        self.head = ClassifierHead(chs, num_classes, hidden=HEAD_HIDDEN, act="hard_swish",
                                   hidden_bias=head_bias, drop_rate=drop_rate)
        self.num_features = HEAD_HIDDEN
        init_as_paddleclas(self)


def init_as_paddleclas(model: nn.Module) -> None:
    """PaddleClas's initialisation of PPLCNet, in torch terms.

    Its ConvBNLayer convs use `KaimingNormal()`, which is fan-in (std sqrt(2 / fan_in), fan_in =
    in/groups * k * k); the SE convs and `last_conv` take Paddle's Conv2D default, Normal(0,
    sqrt(2 / (in * k * k))), the same rule for these ungrouped convs. Conv biases, BN shifts:
    0; BN scales: 1. The FC is Paddle's Linear default, Xavier-uniform, with a zero bias.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


# PP-LCNet Table 2: params, FLOPs (really MACs), top-1 without SSLD, latency on an Intel Xeon
# Gold 6148 (batch 1, MKLDNN, 4 threads). One builder per row; timm's names are the aliases.
# Measured: adding one op per output element of every BN and H-Swish to our conv+FC MACs
# gives 18.3M (x0.25), 160.7M (x1.0), 906.3M (x2.5), i.e. the paper's 18/161/906.
_table2 = partial(
    Published,
    source="arXiv:2109.15099 Table 2",
    latency_hw="Intel Xeon Gold 6148, Paddle + MKLDNN, bs1, 4 threads",
    note="paper's FLOPs (PaddleClas counter) add one op per output element of every BN and "
    "H-Swish to the conv+FC MACs counted here",
)


@register("pplcnet_x0_25", family="pplcnet", aliases=("lcnet_025",),
          published=_table2(params_m=1.5, macs_m=18, top1=51.86, latency_ms=1.74))
def pplcnet_x0_25(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2,
                  head_bias: bool = False) -> PPLCNet:
    """PP-LCNet x0.25 (arXiv:2109.15099). `head_bias=True` for timm's lcnet_* weights."""
    return PPLCNet(scale=0.25, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate,
                   head_bias=head_bias)


@register("pplcnet_x0_35", family="pplcnet", aliases=("lcnet_035",),
          published=_table2(params_m=1.6, macs_m=29, top1=58.09, latency_ms=1.92))
def pplcnet_x0_35(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2,
                  head_bias: bool = False) -> PPLCNet:
    """PP-LCNet x0.35 (arXiv:2109.15099). `head_bias=True` for timm's lcnet_* weights."""
    return PPLCNet(scale=0.35, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate,
                   head_bias=head_bias)


@register("pplcnet_x0_5", family="pplcnet", aliases=("lcnet_050",),
          published=_table2(params_m=1.9, macs_m=47, top1=63.14, latency_ms=2.05))
def pplcnet_x0_5(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2,
                 head_bias: bool = False) -> PPLCNet:
    """PP-LCNet x0.5 (arXiv:2109.15099). `head_bias=True` for timm's lcnet_* weights."""
    return PPLCNet(scale=0.5, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate,
                   head_bias=head_bias)


@register("pplcnet_x0_75", family="pplcnet", aliases=("lcnet_075",),
          published=_table2(params_m=2.4, macs_m=99, top1=68.18, latency_ms=2.29))
def pplcnet_x0_75(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2,
                  head_bias: bool = False) -> PPLCNet:
    """PP-LCNet x0.75 (arXiv:2109.15099). `head_bias=True` for timm's lcnet_* weights."""
    return PPLCNet(scale=0.75, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate,
                   head_bias=head_bias)


@register("pplcnet_x1_0", family="pplcnet", aliases=("lcnet_100",),
          published=_table2(params_m=3.0, macs_m=161, top1=71.32, latency_ms=2.46))
def pplcnet_x1_0(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2,
                 head_bias: bool = False) -> PPLCNet:
    """PP-LCNet x1.0 (arXiv:2109.15099). `head_bias=True` for timm's lcnet_* weights."""
    return PPLCNet(scale=1.0, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate,
                   head_bias=head_bias)


@register("pplcnet_x1_5", family="pplcnet", aliases=("lcnet_150",),
          published=_table2(params_m=4.5, macs_m=342, top1=73.71, latency_ms=3.19))
def pplcnet_x1_5(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2,
                 head_bias: bool = False) -> PPLCNet:
    """PP-LCNet x1.5 (arXiv:2109.15099). `head_bias=True` for timm's lcnet_* weights."""
    return PPLCNet(scale=1.5, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate,
                   head_bias=head_bias)


@register("pplcnet_x2_0", family="pplcnet", aliases=("lcnet_200",),
          published=_table2(params_m=6.5, macs_m=590, top1=75.18, latency_ms=4.27))
def pplcnet_x2_0(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2,
                 head_bias: bool = False) -> PPLCNet:
    """PP-LCNet x2.0 (arXiv:2109.15099). `head_bias=True` for timm's lcnet_* weights."""
    return PPLCNet(scale=2.0, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate,
                   head_bias=head_bias)


@register("pplcnet_x2_5", family="pplcnet", aliases=("lcnet_250",),
          published=_table2(params_m=9.0, macs_m=906, top1=76.60, latency_ms=5.39))
def pplcnet_x2_5(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.2,
                 head_bias: bool = False) -> PPLCNet:
    """PP-LCNet x2.5 (arXiv:2109.15099). `head_bias=True` for timm's lcnet_* weights."""
    return PPLCNet(scale=2.5, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate,
                   head_bias=head_bias)
