"""G-GhostNet: G-Ghost stages on RegNetX (Han et al., "GhostNets on Heterogeneous Devices via
Cheap Operations", IJCV 2022, arXiv:2201.03297).

The GPU-oriented Ghost design. Depthwise convs are cheap in FLOPs but slow on GPUs, so the
redundancy is taken across the blocks of a stage instead of inside a layer: in a G-Ghost
stage only a (1 - lambda) share of the channels (the "complex" features) runs through the
inner blocks; the other lambda share (the "ghost" features) is made from the first block's
output by a cheap 1x1 conv + BN. A "mix" branch pools the concatenated intermediate outputs
to a vector (GAP -> 1x1 conv -> BN -> ReLU -> 1x1 conv -> BN) and adds it to the ghost
features, giving them some of the deep information they skipped. Fewer activations, which
track GPU latency better than FLOPs.

Follows the official `g_ghost_pytorch/g_ghost_regnet.py` of huawei-noah/Efficient-AI-Backbones
(the seed's reference), whose details the paper leaves open:
- a G-Ghost stage is: a full-width first block (downsampling), `depth - 2` complex blocks
  on the complex channels, then a full-width last block on concat(complex, ghost);
- the complex blocks use 3/4 of the stage's group width, and the complex width is rounded
  down to a multiple of it, so the ghost share is `out - floor(out*(1-lambda)/gw')*gw'`
  (e.g. 120 of 192 channels in stage 2 of the 3.2GF model, not 96);
- the mix branch sees the first block's full output and every complex block's output;
- stage 3 (1/16) is always a G-Ghost stage; stages 2 and 4 only when deeper than 2 blocks;
  stage 1 never.
Module names follow the official file where it has them, so its checkpoints map by renaming:
`conv1`/`bn1` -> `stem.{conv,bn}`; `layerN` -> `stages.{N-1}`; in a G-Ghost stage `base`,
`end` keep their names, `layers.i` -> `blocks.i`, `merge.{1,2,4,5}` -> `merge.{1.conv,1.bn,
2.conv,2.bn}`, `cheap.{0,1}` -> `cheap.{conv,bn}`; in an X block `convN`/`bnN` ->
`convN.{conv,bn}`, `downsample.{0,1}` -> `downsample.{conv,bn}`; `fc` -> `head.fc`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from leannet.layers import ClassifierHead, ConvBnAct, init_weights
from leannet.models.base import StagedModel
from leannet.registry import Published, register

__all__ = [
    "GGhostRegNet",
    "g_ghost_regnetx_032",
    "g_ghost_regnetx_040",
    "g_ghost_regnetx_080",
    "g_ghost_regnetx_160",
]

STEM_CHS = 32
CHEAP_RATIO = 0.5  # lambda: share of a G-Ghost stage's channels made by the cheap branch
COMPLEX_GROUP_SCALE = 0.75  # the official code narrows the complex blocks' group width


@dataclass(frozen=True)
class RegNetX:
    """A RegNetX design (Radosavovic et al., arXiv:2003.13678): per-stage depth and width."""

    depths: tuple[int, int, int, int]
    widths: tuple[int, int, int, int]
    group_width: int


# The RegNetX designs the official g_ghost_regnet.py builds (its g_ghost_regnetx_NNN
# functions), NNN = hundreds of MFLOPs of the plain RegNetX.
CONFIGS: dict[str, RegNetX] = {
    "002": RegNetX((1, 1, 4, 7), (24, 56, 152, 368), 8),
    "004": RegNetX((1, 2, 7, 12), (32, 64, 160, 384), 16),
    "006": RegNetX((1, 3, 5, 7), (48, 96, 240, 528), 24),
    "008": RegNetX((1, 3, 7, 5), (64, 128, 288, 672), 16),
    "016": RegNetX((2, 4, 10, 2), (72, 168, 408, 912), 24),
    "032": RegNetX((2, 6, 15, 2), (96, 192, 432, 1008), 48),  # the seed's reference model
    "040": RegNetX((2, 5, 14, 2), (80, 240, 560, 1360), 40),
    "064": RegNetX((2, 4, 10, 1), (168, 392, 784, 1624), 56),
    "080": RegNetX((2, 5, 15, 1), (80, 240, 720, 1920), 120),
    "120": RegNetX((2, 5, 11, 1), (224, 448, 896, 2240), 112),
    "160": RegNetX((2, 6, 13, 1), (256, 512, 896, 2048), 128),
    "320": RegNetX((2, 7, 13, 1), (336, 672, 1344, 2520), 168),
}


def is_ghost_stage(index: int, depth: int) -> bool:
    """Which stages the official code builds as G-Ghost stages (see the module docstring)."""
    return index == 2 or (index in (1, 3) and depth > 2)


class XBlock(nn.Module):
    """RegNet X block: 1x1 -> grouped 3x3 (stride) -> 1x1, BN after each, ReLU after the add."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, group_width: int = 1):
        super().__init__()
        self.conv1 = ConvBnAct(in_chs, out_chs, 1)
        self.conv2 = ConvBnAct(out_chs, out_chs, 3, stride, groups=out_chs // min(out_chs, group_width))
        self.conv3 = ConvBnAct(out_chs, out_chs, 1, act=None)
        self.downsample = (ConvBnAct(in_chs, out_chs, 1, stride, act=None)
                           if stride != 1 or in_chs != out_chs else nn.Identity())
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv3(self.conv2(self.conv1(x))) + self.downsample(x))


def plain_stage(in_chs: int, out_chs: int, depth: int, group_width: int, stride: int = 2) -> nn.Sequential:
    blocks = [XBlock(in_chs, out_chs, stride, group_width)]
    blocks += [XBlock(out_chs, out_chs, 1, group_width) for _ in range(depth - 1)]
    return nn.Sequential(*blocks)


class GGhostStage(nn.Module):
    """base block -> split(complex, ghost); complex -> `depth - 2` blocks; ghost -> cheap 1x1
    + mix(all intermediate outputs) -> ReLU; concat -> end block."""

    def __init__(self, in_chs: int, out_chs: int, depth: int, group_width: int, stride: int = 2,
                 cheap_ratio: float = CHEAP_RATIO):
        super().__init__()
        if depth < 3:
            raise ValueError(f"a G-Ghost stage needs at least 3 blocks, got {depth}")
        complex_gw = int(group_width * COMPLEX_GROUP_SCALE)
        self.complex_chs = int(out_chs * (1 - cheap_ratio) / complex_gw) * complex_gw
        self.ghost_chs = out_chs - self.complex_chs
        self.base = XBlock(in_chs, out_chs, stride, group_width)
        self.blocks = nn.Sequential(*[
            XBlock(self.complex_chs, self.complex_chs, 1, complex_gw) for _ in range(depth - 2)
        ])
        mixed_chs = out_chs + self.complex_chs * (depth - 2)
        self.merge = nn.Sequential(  # the paper's "mix": GAP, then a two-layer transform
            nn.AdaptiveAvgPool2d(1),
            ConvBnAct(mixed_chs, self.ghost_chs, 1, act="relu"),
            ConvBnAct(self.ghost_chs, self.ghost_chs, 1, act=None),
        )
        self.cheap = ConvBnAct(self.ghost_chs, self.ghost_chs, 1, act=None)
        self.cheap_act = nn.ReLU(inplace=True)
        self.end = XBlock(out_chs, out_chs, 1, group_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.base(x)
        intermediates = [x]
        e = x[:, : self.complex_chs]
        for block in self.blocks:
            e = block(e)
            intermediates.append(e)
        mix = self.merge(torch.cat(intermediates, dim=1))  # (N, ghost, 1, 1), broadcast below
        ghost = self.cheap_act(self.cheap(x[:, self.complex_chs:]) + mix)
        return self.end(torch.cat([e, ghost], dim=1))


class GGhostRegNet(StagedModel):
    def __init__(self, cfg: RegNetX, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.2):
        super().__init__()
        self.in_chans, self.num_classes = in_chans, num_classes
        self.stem = ConvBnAct(in_chans, STEM_CHS, 3, stride=2)
        chs, stride = STEM_CHS, 2
        for i, (depth, width) in enumerate(zip(cfg.depths, cfg.widths, strict=True)):
            kind = GGhostStage if is_ghost_stage(i, depth) else plain_stage
            self.add_stage(kind(chs, width, depth, cfg.group_width), width, stride * 2)
            chs, stride = width, stride * 2
        self.final = nn.Identity()
        self.head = ClassifierHead(chs, num_classes, hidden=0, drop_rate=drop_rate)
        self.num_features = chs
        # As g_ghost_regnet.py: Kaiming-normal (fan-out) convs, BN 1 and 0, and the FC left at
        # nn.Linear's own init (its loop touches only convs and norms). Its zero_init_residual
        # argument is accepted there but never used, so no residual BN starts at zero.
        init_weights(self)
        if isinstance(self.head.fc, nn.Linear):
            self.head.fc.reset_parameters()


# Official repository README (g_ghost_pytorch/readme.md, huawei-noah/Efficient-AI-Backbones):
# params, FLOPs (multiply-adds) and ImageNet top-1 of the four released checkpoints. Only these
# sizes are registered: the other CONFIGS rows have no published numbers or weights (build
# them with `GGhostRegNet(CONFIGS["002"])`), and each registered name costs every contract test.
_readme = partial(
    Published,
    source="huawei-noah/Efficient-AI-Backbones g_ghost_pytorch/readme.md",
    note="the README rounds FLOPs (multiply-adds) to 0.1B and params to 0.1M",
)


@register("g_ghost_regnetx_032", family="g_ghostnet",
          published=_readme(params_m=10.5, macs_m=1800, top1=77.8))
def g_ghost_regnetx_032(*, num_classes: int = 1000, in_chans: int = 3,
                        drop_rate: float = 0.2) -> GGhostRegNet:
    """G-Ghost-RegNetX-3.2GF (official g_ghost_regnet.py; README numbers)."""
    return GGhostRegNet(CONFIGS["032"], num_classes=num_classes, in_chans=in_chans,
                        drop_rate=drop_rate)


@register("g_ghost_regnetx_040", family="g_ghostnet",
          published=_readme(params_m=15.7, macs_m=2200, top1=78.6))
def g_ghost_regnetx_040(*, num_classes: int = 1000, in_chans: int = 3,
                        drop_rate: float = 0.2) -> GGhostRegNet:
    """G-Ghost-RegNetX-4GF (official g_ghost_regnet.py; README numbers)."""
    return GGhostRegNet(CONFIGS["040"], num_classes=num_classes, in_chans=in_chans,
                        drop_rate=drop_rate)


@register("g_ghost_regnetx_080", family="g_ghostnet",
          published=_readme(params_m=24.6, macs_m=4200, top1=79.0))
def g_ghost_regnetx_080(*, num_classes: int = 1000, in_chans: int = 3,
                        drop_rate: float = 0.2) -> GGhostRegNet:
    """G-Ghost-RegNetX-8GF (official g_ghost_regnet.py; README numbers)."""
    return GGhostRegNet(CONFIGS["080"], num_classes=num_classes, in_chans=in_chans,
                        drop_rate=drop_rate)


@register("g_ghost_regnetx_160", family="g_ghostnet",
          published=_readme(params_m=32.4, macs_m=9000, top1=79.9))
def g_ghost_regnetx_160(*, num_classes: int = 1000, in_chans: int = 3,
                        drop_rate: float = 0.2) -> GGhostRegNet:
    """G-Ghost-RegNetX-16GF (official g_ghost_regnet.py; README numbers)."""
    return GGhostRegNet(CONFIGS["160"], num_classes=num_classes, in_chans=in_chans,
                        drop_rate=drop_rate)
