"""SNet, the backbone of ThunderNet: Towards Real-time Generic Object Detection (Qin et al.,
arXiv:1903.11752, Sec. 3.1 and Table 1), built as the official code builds it.

A ShuffleNetV2 (Ma et al., arXiv:1807.11164) re-tuned for detection: every depthwise conv is
5x5 (a larger receptive field for localisation at almost no cost), and the channel widths are
rebalanced. SNet49 keeps a 1x1 conv5 (512) before pooling; SNet146 and SNet535 drop conv5 and
put the channels into the early stages, which the detector reads.

The official code (github.com/qinzheng93/ThunderNet, `snet-training/network.py` and
`blocks.py`, "the code from megvii's ShuffleNetV2") uses megvii's unit, not torchvision's
(`leannet.layers.shuffle.ShuffleV2Block`): a stride-2 unit's projection branch keeps its
input width and the main branch makes the rest, so stage 2 of SNet146 starts with 24 + 108
channels (SNet535: 48 + 200, SNet49: 24 + 36); a stride-1 unit splits even from odd channels
at its start and ends in a plain concat. The classifier has no bias. Training feeds BGR pixels
in 0-255 with no mean/std (its `ToBGRTensor`), recorded in the registry's preprocessing.
The deployed form computes each stage without the splits' data movement (`UnshuffledStage`).

Feature levels: the stem's max-pool (stride 4), stage2 (8), stage3 (16), stage4 (32). SNet49's
conv5 sits after the last level, as megvii's conv_last does.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from leannet.layers import ClassifierHead, ConvBnAct
from leannet.layers.shuffle import ShuffleV2Block
from leannet.models.base import StagedModel
from leannet.registry import Published, register

__all__ = ["SNet", "snet49", "snet146", "snet535"]


@dataclass(frozen=True)
class Spec:
    stem: int  # conv1 (3x3, stride 2) width, followed by a 3x3 stride-2 max-pool
    stages: tuple[int, int, int]  # stage2..stage4 widths
    conv5: int | None  # 1x1 conv before pooling, or none


REPEATS = (4, 8, 4)  # units per stage, as ShuffleNetV2; the first of each has stride 2
KERNEL = 5  # ThunderNet: all depthwise convs are 5x5

# ThunderNet Table 1 (input 224x224 for ImageNet pre-training); SNet146's row is also the
# official network.py's `stage_out_channels = [-1, 24, 132, 264, 528]`.
SPECS: dict[str, Spec] = {
    "snet49": Spec(stem=24, stages=(60, 120, 240), conv5=512),
    "snet146": Spec(stem=24, stages=(132, 264, 528), conv5=None),
    "snet535": Spec(stem=48, stages=(248, 496, 992), conv5=None),
}


class SNet(StagedModel):
    def __init__(
        self,
        spec: Spec = SPECS["snet49"],
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        kernel: int = KERNEL,
        repeats: tuple[int, int, int] = REPEATS,
    ):
        super().__init__()
        self.in_chans, self.num_classes = in_chans, num_classes
        chs = spec.stem
        self.stem = ConvBnAct(in_chans, chs, 3, stride=2, act="relu")
        self.add_stage(nn.MaxPool2d(3, 2, 1), chs, 4)
        stride = 4
        for out, n in zip(spec.stages, repeats, strict=True):
            units = [ShuffleV2Block(chs if j == 0 else out, out, 2 if j == 0 else 1, kernel) for j in range(n)]
            chs, stride = out, stride * 2
            self.add_stage(nn.Sequential(*units), chs, stride)
        if spec.conv5:
            self.final = ConvBnAct(chs, spec.conv5, 1, act="relu")
            chs = spec.conv5
        else:
            self.final = nn.Identity()
        self.head = ClassifierHead(chs, num_classes, drop_rate=drop_rate, bias=False)
        self.num_features = chs
        self.init_weights()

    def init_weights(self) -> None:
        """As the official `_initialize_weights`: the first conv N(0, 0.01), every other conv
        N(0, 1 / weight.shape[1]) (input channels per group: a depthwise conv gets std 1), BN
        weight 1, bias 1e-4 and running mean 0, linears N(0, 0.01)."""
        for name, m in self.named_modules():
            if isinstance(m, nn.Conv2d):
                std = 0.01 if name.startswith("stem.") else 1.0 / m.weight.shape[1]
                nn.init.normal_(m.weight, 0, std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.constant_(m.bias, 1e-4)
                nn.init.zeros_(m.running_mean)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


# ThunderNet names each backbone by its FLOPs at 224x224 (multiply-adds). The official code
# (snet-training's network.py: SNet146 only; SNet535 is its unit at Table 1's widths), counted
# as conv + FC multiply-adds, is 162.5M MACs for SNet146 and 539.9M for SNet535: those are
# the MACs recorded here (tests/models/test_snet.py checks them against leannet.profile and
# fvcore). SNet49 has no official code; its name (49) is kept. SNet146's top-1 is the
# snet-training README's (32.2% top-1 error, its log's last evaluation).
_PAPER = "arXiv:1903.11752 Table 1; MACs and top-1: github.com/qinzheng93/ThunderNet snet-training"
# megvii's trainer feeds BGR pixels in 0-255 (`ToBGRTensor`): with leannet's [0, 1] pixels,
# mean 0 and std 1/255 give back 0-255.
_PRE = {"mean": (0.0, 0.0, 0.0), "std": (1 / 255,) * 3, "channel_order": "bgr", "interpolation": "bilinear"}
# One builder per row of Table 1; other depths or kernels: `SNet(SPECS[...], repeats=..., kernel=...)`.


@register("snet49", family="snet", **_PRE, published=Published(
    source=_PAPER, macs_m=49,
    note="the name says 49 MFLOPs; the official unit at Table 1's widths counts 51.2M MACs (+4.6%)",
))
def snet49(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0) -> SNet:
    """ThunderNet SNet49 (arXiv:1903.11752 Table 1)."""
    return SNet(SPECS["snet49"], num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate)


@register("snet146", family="snet", **_PRE, published=Published(
    source=_PAPER, macs_m=162.5, top1=67.8,
    note="named for 146 MFLOPs; the official code counts 162.5M MACs",
))
def snet146(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0) -> SNet:
    """ThunderNet SNet146 (arXiv:1903.11752 Table 1)."""
    return SNet(SPECS["snet146"], num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate)


@register("snet535", family="snet", **_PRE, published=Published(
    source=_PAPER, macs_m=539.9,
    note="named for 535 MFLOPs; the official unit at Table 1's widths counts 539.9M MACs",
))
def snet535(*, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0) -> SNet:
    """ThunderNet SNet535 (arXiv:1903.11752 Table 1)."""
    return SNet(SPECS["snet535"], num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate)
