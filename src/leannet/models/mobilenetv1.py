"""MobileNetV1 (Howard et al., arXiv:1704.04861): the plain depthwise-separable stack that
PP-LCNet starts from. torchvision has no MobileNetV1, so it is written here."""

from __future__ import annotations

from torch import nn

from leannet.layers import (
    Act,
    ClassifierHead,
    ConvBnAct,
    DepthwiseSeparable,
    init_weights,
    make_divisible,
)
from leannet.models.base import StagedModel
from leannet.registry import Published, register

__all__ = ["MobileNetV1", "mobilenetv1_x1_0"]

# MobileNetV1 Table 1, as (out_chs, stride) per depthwise-separable block, grouped by stride.
STAGES: tuple[tuple[tuple[int, int], ...], ...] = (
    ((64, 1),),
    ((128, 2), (128, 1)),
    ((256, 2), (256, 1)),
    ((512, 2), *[(512, 1)] * 5),
    ((1024, 2), (1024, 1)),
)


class MobileNetV1(StagedModel):
    def __init__(self, width: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, act: Act = "relu"):
        # act="relu6" is TF-slim's (and timm's mobilenetv1_100) choice; the paper says ReLU.
        super().__init__()
        self.in_chans, self.num_classes = in_chans, num_classes
        chs = make_divisible(32 * width)
        self.stem = ConvBnAct(in_chans, chs, 3, stride=2, act=act)
        stride = 2
        for rows in STAGES:
            blocks = []
            for out, s in rows:
                out = make_divisible(out * width)
                blocks.append(DepthwiseSeparable(chs, out, 3, s, act=act))
                chs, stride = out, stride * s
            self.add_stage(nn.Sequential(*blocks), chs, stride)
        self.final = nn.Identity()
        self.head = ClassifierHead(chs, num_classes, drop_rate=drop_rate)
        self.num_features = chs
        init_weights(self)


@register(
    "mobilenetv1_x1_0",
    family="mobilenetv1",
    aliases=("mobilenetv1_100",),
    # The one public checkpoint is timm's mobilenetv1_100 (ra4 recipe), trained and evaluated
    # with mean = std = 0.5 and bicubic resizing (its pretrained_cfg), not ImageNet's statistics.
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    interpolation="bicubic",
    published=Published(source="arXiv:1704.04861 Table 6 (1.0 MobileNet-224)", params_m=4.2,
                        macs_m=569, top1=70.6),
)
def mobilenetv1_x1_0(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                     act: Act = "relu") -> MobileNetV1:
    """MobileNetV1 1.0 (arXiv:1704.04861). `act="relu6"` for timm's mobilenetv1_100 weights."""
    return MobileNetV1(width=1.0, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate,
                       act=act)
