"""MobileOne: An Improved One millisecond Mobile Backbone (Vasu et al., arXiv:2206.04040).

A MobileNetV1-shaped stack (3x3 depthwise then 1x1 pointwise, ReLU, no shortcuts at
inference) whose every conv is a train-time multi-branch RepConvBlock: k over-parameterised
conv-BN branches, a 1x1 scale branch, a BN identity branch. `leannet.reparameterize` (or
`reparameterize()` on each block) turns each into one conv, so the deployed net is a plain
chain of convs and ReLUs, which the paper finds fastest on an iPhone 12. Only S4 uses SE.

Layout follows apple/ml-mobileone `mobileone.py`: stage0 -> stem, stage1..4 -> stages.0..3
(each a flat Sequential of alternating depthwise/pointwise blocks), linear -> head.fc.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from torch import nn

from leannet.layers import ClassifierHead, SqueezeExcite
from leannet.layers.rep_block import RepConvBlock
from leannet.models.base import StagedModel
from leannet.registry import Published, register

__all__ = ["MobileOne", "mobileone_s0", "mobileone_s1", "mobileone_s2", "mobileone_s3", "mobileone_s4"]


@dataclass(frozen=True)
class Stage:
    chs: int  # output channels before the variant's width multiplier
    depth: int  # depthwise+pointwise block pairs; the first has stride 2
    se_tail: int = 0  # trailing pairs with SE, in variants that use SE


# MobileOne Table 7, stages 2-6. Table 7's two 14x14 stages (5 + 5 blocks, 256 channels) are
# one stage of 10 here as in the official code; SE-ReLU (S4) is on the second of them and on
# the 7x7 stage.
STAGES: tuple[Stage, ...] = (
    Stage(chs=64, depth=2),
    Stage(chs=128, depth=8),
    Stage(chs=256, depth=10, se_tail=5),
    Stage(chs=512, depth=1, se_tail=1),
)
STEM_CHS = 64  # Table 7 stage 1; scaled by the first width multiplier, capped at 64
SE_RATIO = 0.0625  # official SEBlock: reduce to int(channels / 16), ReLU, sigmoid gate


@dataclass(frozen=True)
class Variant:
    widths: tuple[float, float, float, float]  # alpha per stage (Table 7)
    branches: int = 1  # k, the over-parameterisation factor (Table 7)
    se: bool = False


VARIANTS: dict[str, Variant] = {
    "s0": Variant(widths=(0.75, 1.0, 1.0, 2.0), branches=4),
    "s1": Variant(widths=(1.5, 1.5, 2.0, 2.5)),
    "s2": Variant(widths=(1.5, 2.0, 2.5, 4.0)),
    "s3": Variant(widths=(2.0, 2.5, 3.0, 4.0)),
    "s4": Variant(widths=(3.0, 3.5, 3.5, 4.0), se=True),
}


class MobileOne(StagedModel):
    """`inference_mode=True` builds the deployed form (one conv with bias per block)."""

    def __init__(
        self,
        variant: Variant,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        inference_mode: bool = False,
    ):
        super().__init__()
        self.in_chans, self.num_classes = in_chans, num_classes
        chs = min(STEM_CHS, int(STEM_CHS * variant.widths[0]))
        # The official stem has a single kxk branch even in S0 (k=4 is for the stages).
        self.stem = RepConvBlock(in_chans, chs, 3, stride=2, inference_mode=inference_mode)
        stride = 2
        for stage, width in zip(STAGES, variant.widths, strict=True):
            out = int(stage.chs * width)
            blocks = []
            for j in range(stage.depth):
                se = variant.se and j >= stage.depth - stage.se_tail
                blocks += self._pair(chs, out, 2 if j == 0 else 1, variant.branches, se, inference_mode)
                chs = out
            stride *= 2
            self.add_stage(nn.Sequential(*blocks), chs, stride)
        self.final = nn.Identity()
        self.head = ClassifierHead(chs, num_classes, drop_rate=drop_rate)
        self.num_features = chs
        # Default PyTorch init, as the official code: no custom scheme.

    @staticmethod
    def _pair(in_chs: int, out_chs: int, stride: int, branches: int, se: bool,
              inference_mode: bool) -> list[RepConvBlock]:
        """A 3x3 depthwise block then a 1x1 pointwise block (SE on both when `se`)."""

        def gate(chs: int) -> nn.Module | None:
            return SqueezeExcite(chs, int(chs * SE_RATIO), act="relu", gate="sigmoid") if se else None

        return [
            RepConvBlock(in_chs, in_chs, 3, stride, groups=in_chs, num_branches=branches,
                         se=gate(in_chs), inference_mode=inference_mode),
            RepConvBlock(in_chs, out_chs, 1, 1, num_branches=branches,
                         se=gate(out_chs), inference_mode=inference_mode),
        ]


# MobileOne Table 9 (ImageNet-1k, 224x224, no distillation): params are of the deployed form,
# "FLOPs" are fvcore counts, i.e. MACs; latency is of a Core ML model on an iPhone 12 (the
# apple/ml-mobileone README, repeating the numbers, says iPhone 12 Pro). The two
# param counts of the architecture itself (train form with all branches, and deployed) are
# kept in `extra` because users compare the wrong one; tests check them against the model.
# timm's names are the same, so no aliases; crop_pct is timm's eval crop for these weights.
_table9 = partial(
    Published,
    source="arXiv:2206.04040 Table 9",
    latency_hw="iPhone 12 (Pro per the official README), Core ML",
    params_form="deployed",
)


@register("mobileone_s0", family="mobileone", reparameterizable=True, crop_pct=0.875,
          published=_table9(params_m=2.1, macs_m=275, top1=71.4, latency_ms=0.79),
          extra={"params_train_m": 5.29, "params_deployed_m": 2.08})  # k=4: most of S0 is branches
def mobileone_s0(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 inference_mode: bool = False) -> MobileOne:
    """MobileOne-S0 (arXiv:2206.04040); inference_mode=True gives the deployed form."""
    return MobileOne(VARIANTS["s0"], num_classes=num_classes, in_chans=in_chans,
                     drop_rate=drop_rate, inference_mode=inference_mode)


@register("mobileone_s1", family="mobileone", reparameterizable=True, crop_pct=0.9,
          published=_table9(params_m=4.8, macs_m=825, top1=75.9, latency_ms=0.89),
          extra={"params_train_m": 4.83, "params_deployed_m": 4.76})
def mobileone_s1(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 inference_mode: bool = False) -> MobileOne:
    """MobileOne-S1 (arXiv:2206.04040); inference_mode=True gives the deployed form."""
    return MobileOne(VARIANTS["s1"], num_classes=num_classes, in_chans=in_chans,
                     drop_rate=drop_rate, inference_mode=inference_mode)


@register("mobileone_s2", family="mobileone", reparameterizable=True, crop_pct=0.9,
          published=_table9(params_m=7.8, macs_m=1299, top1=77.4, latency_ms=1.18),
          extra={"params_train_m": 7.88, "params_deployed_m": 7.81})
def mobileone_s2(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 inference_mode: bool = False) -> MobileOne:
    """MobileOne-S2 (arXiv:2206.04040); inference_mode=True gives the deployed form."""
    return MobileOne(VARIANTS["s2"], num_classes=num_classes, in_chans=in_chans,
                     drop_rate=drop_rate, inference_mode=inference_mode)


@register("mobileone_s3", family="mobileone", reparameterizable=True, crop_pct=0.9,
          published=_table9(params_m=10.1, macs_m=1896, top1=78.1, latency_ms=1.53),
          extra={"params_train_m": 10.17, "params_deployed_m": 10.08})
def mobileone_s3(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 inference_mode: bool = False) -> MobileOne:
    """MobileOne-S3 (arXiv:2206.04040); inference_mode=True gives the deployed form."""
    return MobileOne(VARIANTS["s3"], num_classes=num_classes, in_chans=in_chans,
                     drop_rate=drop_rate, inference_mode=inference_mode)


@register("mobileone_s4", family="mobileone", reparameterizable=True, crop_pct=0.9,
          published=_table9(params_m=14.8, macs_m=2978, top1=79.4, latency_ms=1.86),
          extra={"params_train_m": 14.95, "params_deployed_m": 14.84})
def mobileone_s4(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 inference_mode: bool = False) -> MobileOne:
    """MobileOne-S4 (arXiv:2206.04040); inference_mode=True gives the deployed form."""
    return MobileOne(VARIANTS["s4"], num_classes=num_classes, in_chans=in_chans,
                     drop_rate=drop_rate, inference_mode=inference_mode)
