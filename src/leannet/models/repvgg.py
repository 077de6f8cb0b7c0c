"""RepVGG: Making VGG-style ConvNets Great Again (Ding et al., arXiv:2101.03697).

A plain stack of 3x3 convs and ReLUs at inference. At train time each block adds a 1x1
conv-BN branch and, where the block keeps its shape, a BN identity branch to the 3x3 conv-BN
(a ResNet-like multi-branch net that trains well); `leannet.reparameterize` merges them into
the single 3x3 conv. Layout follows DingXiaoH/RepVGG `repvgg.py`: stage0 -> stem,
stage1..4 -> stages.0..3, linear -> head.fc. torchvision has no RepVGG, so it is written here.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from leannet.layers import ClassifierHead
from leannet.layers.rep_block import RepConvBlock
from leannet.models.base import StagedModel
from leannet.registry import Published, register

__all__ = ["RepVGG", "repvgg_a0"]


@dataclass(frozen=True)
class Stage:
    chs: int  # output channels before the width multiplier
    depth: int  # 3x3 blocks; the first has stride 2


# RepVGG Table 2 (architectural specification), stages 2-5; stage 1 is the stem.
BASE_CHS = (64, 128, 256, 512)
DEPTHS_A = (2, 4, 14, 1)  # RepVGG-A
STEM_CHS = 64  # scaled by a, capped at 64: min(64, 64a)


@dataclass(frozen=True)
class Variant:
    a: float  # width multiplier of the first three stages
    b: float  # width multiplier of the last stage
    depths: tuple[int, int, int, int] = DEPTHS_A


VARIANTS: dict[str, Variant] = {
    "a0": Variant(a=0.75, b=2.5),  # Table 3
}


class RepVGG(StagedModel):
    """`inference_mode=True` builds the deployed form (one 3x3 conv with bias per block)."""

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
        widths = (variant.a, variant.a, variant.a, variant.b)
        chs = min(STEM_CHS, int(STEM_CHS * variant.a))
        self.stem = RepConvBlock(in_chans, chs, 3, stride=2, inference_mode=inference_mode)
        stride = 2
        for base, depth, width in zip(BASE_CHS, variant.depths, widths, strict=True):
            out = int(base * width)
            blocks = []
            for j in range(depth):
                blocks.append(RepConvBlock(chs, out, 3, 2 if j == 0 else 1, inference_mode=inference_mode))
                chs = out
            stride *= 2
            self.add_stage(nn.Sequential(*blocks), chs, stride)
        self.final = nn.Identity()
        self.head = ClassifierHead(chs, num_classes, drop_rate=drop_rate)
        self.num_features = chs
        # Default PyTorch init, as the official code.


# RepVGG Table 4 (ImageNet-1k, 120 epochs, simple augmentation): params and FLOPs of the
# deployed form ("Theo FLOPs" 1.4B = MACs; our count is in docs/models.md), speed is a
# throughput in images/s on a 1080Ti (batch 128, fp32), not a latency.
_FACTS = Published(
    source="arXiv:2101.03697 Table 4",
    params_m=8.30,
    macs_m=1400,
    top1=72.41,
    params_form="deployed",
    note="the paper prints 1.4B MACs for the deployed form, rounded to 0.1B; the deployed "
    "form counts 1361.5M (train form with its 1x1 branches: 1512.6M)",
)


@register("repvgg_a0", family="repvgg", published=_FACTS, reparameterizable=True,
          extra={"params_train_m": 9.11, "params_deployed_m": 8.31,
                 "throughput_img_s": 3256, "throughput_hw": "NVIDIA 1080Ti, batch 128, fp32"})
def repvgg_a0(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
              inference_mode: bool = False) -> RepVGG:
    """RepVGG-A0 (arXiv:2101.03697); inference_mode=True gives the deployed form."""
    return RepVGG(VARIANTS["a0"], num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate,
                  inference_mode=inference_mode)
