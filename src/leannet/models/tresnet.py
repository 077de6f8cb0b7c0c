"""TResNet: High Performance GPU-Dedicated Architecture (Ridnik et al., arXiv:2003.13630).

A ResNet-50 reworked for GPU throughput rather than FLOPs:
- SpaceToDepth stem: a 4x4 space-to-depth rearrangement and one 3x3 conv replace the 7x7
  conv + max-pool, so the stem is cheap and loses no information.
- Anti-aliased downsampling: every stride-2 3x3 conv becomes a stride-1 conv followed by a
  fixed [1,2,1]x[1,2,1] blur with stride 2 (reflect padding), as in the official
  `AntiAliasDownsampleLayer`; shortcuts downsample with a 2x2 average pool before the 1x1 conv.
- Inplace-ABN (BN + Leaky-ReLU) everywhere. Here it is a plain BatchNorm2d + LeakyReLU so BN
  folding and every runtime work; the slopes are the official ones (1e-2 in the stem, 1e-3 in
  the blocks; the last conv of each block has no activation, the residual sum gets a ReLU).
- BasicBlocks in stages 1-2 (bigger receptive field, cheap at high resolution), Bottlenecks in
  stages 3-4; SE only in stages 1-3, reduced to max(C/4, 64) (basic) or max(4C/8, 64)
  channels of the bottleneck's width C (bottleneck, placed after its 3x3 conv).

Module order and names follow timm's `tresnet.py` (itself a BN port of the official code), so
their state dicts map one-to-one: body.conv1 -> stem.conv, body.layerN -> stages.(N-1),
se.fc1/fc2 -> se.conv_reduce/conv_expand. Official Inplace-ABN checkpoints store the BN weight
before `abs() + eps`; converters must apply that (timm's `checkpoint_filter_fn` does).

Inputs are in [0, 1] with no mean/std normalisation (the official training recipe).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from leannet.errors import ShapeError
from leannet.layers import ClassifierHead, ConvBnAct, SqueezeExcite
from leannet.models.base import StagedModel
from leannet.registry import Published, register

__all__ = ["TResNet", "tresnet_l", "tresnet_m", "tresnet_xl"]

STEM_SLOPE = 1e-2  # official conv2d_ABN default, used by the stem conv
BLOCK_SLOPE = 1e-3  # official blocks pass activation_param=1e-3
STEM_ACT = partial(nn.LeakyReLU, negative_slope=STEM_SLOPE)
BLOCK_ACT = partial(nn.LeakyReLU, negative_slope=BLOCK_SLOPE)
S2D_BLOCK = 4


class SpaceToDepth(nn.Module):
    """(N, C, H, W) -> (N, 16C, H/4, W/4), output channel = (4 * row + col) * C + c.

    This is the official (and timm) order: the position inside the 4x4 cell is the slow index
    and the input channel the fast one, unlike `pixel_unshuffle` (c * 16 + 4 * row + col).
    The stem conv's weights depend on it, so checkpoints only load with this order.
    """

    def __init__(self, block: int = S2D_BLOCK):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pixel_unshuffle(x, self.block)  # channel = c * b^2 + cell
        # swap (c, cell) -> (cell, c) without reading shapes, so export sees no size arithmetic
        return x.unflatten(1, (-1, self.block * self.block)).transpose(1, 2).flatten(1, 2)


class BlurPool(nn.Module):
    """Depthwise [1,2,1]x[1,2,1]/16 filter, stride 2, reflect padding 1 (the official AA layer).

    The filter is a fixed, non-persistent buffer: it never trains and is not in state dicts
    (neither timm's nor the official JIT variant stores it).
    """

    def __init__(self, channels: int, stride: int = 2):
        super().__init__()
        self.stride = stride
        a = torch.tensor([1.0, 2.0, 1.0])
        filt = (a[:, None] * a[None, :]) / 16.0
        self.register_buffer("filt", filt.expand(channels, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (1, 1, 1, 1), mode="reflect")
        return F.conv2d(x, self.filt, stride=self.stride, groups=self.filt.shape[0])


def _shortcut(in_chs: int, out_chs: int, stride: int) -> nn.Module:
    """Identity, or [2x2 avg pool] -> 1x1 conv + BN (no activation) when shape changes."""
    if stride == 1 and in_chs == out_chs:
        return nn.Identity()
    pool = (nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False) if stride == 2
            else nn.Identity())
    return nn.Sequential(pool, ConvBnAct(in_chs, out_chs, 1, act=None))


class BasicBlock(nn.Module):
    """3x3 (+ blur if stride 2) -> 3x3 -> [SE] -> + shortcut -> ReLU."""

    expansion = 1

    def __init__(self, in_chs: int, planes: int, stride: int = 1, se: bool = True):
        super().__init__()
        out_chs = planes * self.expansion
        self.downsample = _shortcut(in_chs, out_chs, stride)
        self.conv1 = ConvBnAct(in_chs, planes, 3, act=BLOCK_ACT)
        self.aa = BlurPool(planes, stride) if stride == 2 else nn.Identity()
        self.conv2 = ConvBnAct(planes, out_chs, 3, act=None)
        self.se = SqueezeExcite(out_chs, max(out_chs // 4, 64), gate="sigmoid") if se else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.se(self.conv2(self.aa(self.conv1(x))))
        return self.act(out + self.downsample(x))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (+ blur if stride 2) -> [SE] -> 1x1 (x4 channels) -> + shortcut -> ReLU."""

    expansion = 4

    def __init__(self, in_chs: int, planes: int, stride: int = 1, se: bool = True):
        super().__init__()
        out_chs = planes * self.expansion
        self.downsample = _shortcut(in_chs, out_chs, stride)
        self.conv1 = ConvBnAct(in_chs, planes, 1, act=BLOCK_ACT)
        self.conv2 = ConvBnAct(planes, planes, 3, act=BLOCK_ACT)
        self.aa = BlurPool(planes, stride) if stride == 2 else nn.Identity()
        # SE runs on the narrow 3x3 output; its reduction is sized from the block's output.
        self.se = SqueezeExcite(planes, max(out_chs // 8, 64), gate="sigmoid") if se else nn.Identity()
        self.conv3 = ConvBnAct(planes, out_chs, 1, act=None)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3(self.se(self.aa(self.conv2(self.conv1(x)))))
        return self.act(out + self.downsample(x))


@dataclass(frozen=True)
class Stage:
    block: type[BasicBlock] | type[Bottleneck]
    planes: int  # multiple of the base width (64 x width factor)
    stride: int
    se: bool


# TResNet paper Sec. 3.2-3.3 / official tresnet.py: block type, width and SE per stage.
STAGES: tuple[Stage, ...] = (
    Stage(BasicBlock, planes=1, stride=1, se=True),
    Stage(BasicBlock, planes=2, stride=2, se=True),
    Stage(Bottleneck, planes=4, stride=2, se=True),
    Stage(Bottleneck, planes=8, stride=2, se=False),
)


@dataclass(frozen=True)
class Variant:
    width: float  # base width = int(64 * width): 64 (M), 76 (L), 83 (XL)
    depths: tuple[int, int, int, int]


# TResNet paper, models table; official TResnetM/L/XL builders.
VARIANTS: dict[str, Variant] = {
    "tresnet_m": Variant(width=1.0, depths=(3, 4, 11, 3)),
    "tresnet_l": Variant(width=1.2, depths=(4, 5, 18, 3)),
    "tresnet_xl": Variant(width=1.3, depths=(4, 5, 24, 3)),
}

# The stage-4 blur reflect-pads its input, which needs 2+ pixels (H > 16); 32, one pixel
# at the output stride, is the documented floor.
MIN_SIZE = 32


class TResNet(StagedModel):
    def __init__(
        self,
        depths: tuple[int, int, int, int] = (3, 4, 11, 3),
        width: float = 1.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
    ):
        super().__init__()
        self.in_chans, self.num_classes = in_chans, num_classes
        base = int(64 * width)
        self.stem = nn.Sequential()
        self.stem.add_module("s2d", SpaceToDepth(S2D_BLOCK))
        self.stem.add_module("conv", ConvBnAct(in_chans * S2D_BLOCK**2, base, 3, act=STEM_ACT))
        chs, stride = base, S2D_BLOCK
        for spec, depth in zip(STAGES, depths, strict=True):
            planes = base * spec.planes
            blocks = []
            for j in range(depth):
                blocks.append(spec.block(chs, planes, spec.stride if j == 0 else 1, spec.se))
                chs = planes * spec.block.expansion
            stride *= spec.stride
            self.add_stage(nn.Sequential(*blocks), chs, stride)
        self.final = nn.Identity()
        self.head = ClassifierHead(chs, num_classes, drop_rate=drop_rate)
        self.num_features = chs
        self._init_weights()

    def _init_weights(self) -> None:
        # Official init: Kaiming (fan-out, leaky) convs, N(0, 0.01) FC, and every residual
        # branch starting at zero (its last BN gamma = 0) so each block begins as an identity.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
            elif isinstance(m, BasicBlock):
                nn.init.zeros_(m.conv2.bn.weight)
            elif isinstance(m, Bottleneck):
                nn.init.zeros_(m.conv3.bn.weight)

    def check_input(self, x: torch.Tensor) -> None:
        super().check_input(x)
        if isinstance(x, torch.fx.Proxy) or torch.jit.is_tracing():
            return
        h, w = x.shape[-2:]
        if h % S2D_BLOCK or w % S2D_BLOCK or min(h, w) < MIN_SIZE:
            raise ShapeError(
                f"{type(self).__name__} needs H and W divisible by {S2D_BLOCK} (SpaceToDepth stem) "
                f"and at least {MIN_SIZE}, got {h}x{w}; resize or pad the input"
            )


# Published numbers. Source: the paper's TResNet-models table (ImageNet, 224x224, V100 with
# mixed precision, throughput at 90% of the largest batch) as reproduced in the official README
# ("Main Article Results"), and TResNet-M's 5.5G FLOPs from the README's ResNet-50 comparison
# (where ResNet-50 has 4.1G: i.e. MACs). Throughput is not latency, so it goes in `extra`.
# The paper's parameter counts and L/XL FLOPs were not available offline and are left unset
# rather than guessed; tests compare our params and MACs with timm's definition instead.
_PAPER = "arXiv:2003.13630 (TResNet models table; official README)"
_HW = "NVIDIA V100, mixed precision, throughput at 90% of max batch"
# Measured (tests/models/test_tresnet.py): ours = timm's tresnet_m = 5736.5M MACs, of which the
# blocks' own convs are 5510.5M, the stem conv 86.7M and the 1x1 shortcut convs 134.9M.
_MACS_NOTE = ("paper's 5.5G equals the residual blocks' convs alone (5.51G); with the stem conv "
              "(0.09G) and the 1x1 shortcut convs (0.13G) ours, identical to timm's, is 5.74G")
_UNSET_NOTE = ("the paper's params and FLOPs for this size were not available offline; ours equal "
               "timm's definition tensor for tensor (tests/models/test_tresnet.py)")


def _extra(infer: int, train: int) -> dict:
    # Throughput, and the 448x448 fine-tuned checkpoints of the official MODEL_ZOO (the
    # paper's numbers are all at 224).
    return {"throughput_img_s": infer, "train_throughput_img_s": train, "throughput_hw": _HW,
            "also_trained_at": 448, "min_input": MIN_SIZE, "input_multiple": S2D_BLOCK}


# Inputs in [0, 1] with no mean/std normalisation (the official training recipe).
_PRE = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0), "interpolation": "bilinear", "crop_pct": 0.875}


@register("tresnet_m", family="tresnet", **_PRE, extra=_extra(infer=2930, train=730),
          published=Published(source=_PAPER, macs_m=5500, top1=80.8, note=_MACS_NOTE))
def tresnet_m(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0) -> TResNet:
    """TResNet-M (arXiv:2003.13630): base width 64, depths (3, 4, 11, 3)."""
    variant = VARIANTS["tresnet_m"]
    return TResNet(depths=variant.depths, width=variant.width, num_classes=num_classes,
                   in_chans=in_chans, drop_rate=drop_rate)


@register("tresnet_l", family="tresnet", **_PRE, extra=_extra(infer=1390, train=345),
          published=Published(source=_PAPER, top1=81.5, note=_UNSET_NOTE))
def tresnet_l(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0) -> TResNet:
    """TResNet-L (arXiv:2003.13630): base width 76, depths (4, 5, 18, 3)."""
    variant = VARIANTS["tresnet_l"]
    return TResNet(depths=variant.depths, width=variant.width, num_classes=num_classes,
                   in_chans=in_chans, drop_rate=drop_rate)


@register("tresnet_xl", family="tresnet", **_PRE, extra=_extra(infer=1060, train=250),
          published=Published(source=_PAPER, top1=82.0, note=_UNSET_NOTE))
def tresnet_xl(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0) -> TResNet:
    """TResNet-XL (arXiv:2003.13630): base width 83, depths (4, 5, 24, 3)."""
    variant = VARIANTS["tresnet_xl"]
    return TResNet(depths=variant.depths, width=variant.width, num_classes=num_classes,
                   in_chans=in_chans, drop_rate=drop_rate)
