"""SNet, the backbone of ThunderNet: Towards Real-time Generic Object Detection (Qin et al.,
arXiv:1903.11752, Sec. 3.1 and Table 1).

A ShuffleNetV2 (Ma et al., arXiv:1807.11164) re-tuned for detection: every 3x3 depthwise
conv becomes 5x5 (a larger receptive field for localisation at almost no cost in FLOPs), and
the channel widths are rebalanced. SNet49 keeps a 1x1 conv5 (512) before pooling; SNet146 and
SNet535 drop conv5 and put the channels into the early stages, which the detector reads.

Units are the ShuffleNetV2 ones (Fig. 3c/d of that paper, `leannet.layers.shuffle.ShuffleUnit`)
with 5x5 depthwise convs: a stride-1 unit splits the channels in half, transforms one half and
concatenates; a stride-2 unit runs both halves from the full input; each unit ends in a channel
shuffle with 2 groups. The deployed form computes each stage without shuffles
(`UnshuffledStage`).

Feature levels: the stem's max-pool (stride 4), stage2 (8), stage3 (16), stage4 (32). SNet49's
conv5 sits after the last level, as ShuffleNetV2's conv5 does in torchvision.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from leannet.layers import ClassifierHead, ConvBnAct, init_weights
from leannet.layers.shuffle import ShuffleUnit
from leannet.models.base import FeatureInfo, StagedModel
from leannet.registry import Published, register


@dataclass(frozen=True)
class Spec:
    stem: int  # conv1 (3x3, stride 2) width, followed by a 3x3 stride-2 max-pool
    stages: tuple[int, int, int]  # stage2..stage4 widths
    conv5: int | None  # 1x1 conv before pooling, or none


REPEATS = (4, 8, 4)  # units per stage, as ShuffleNetV2; the first of each has stride 2
KERNEL = 5  # ThunderNet: all depthwise convs are 5x5

# ThunderNet Table 1 (input 224x224 for ImageNet pre-training).
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
        stages: list[nn.Module] = [nn.MaxPool2d(3, 2, 1)]
        self.feature_info = [FeatureInfo(chs, 4, "stages.0")]
        stride = 4
        for i, (out, n) in enumerate(zip(spec.stages, repeats, strict=True), start=1):
            units = [ShuffleUnit(chs if j == 0 else out, out, 2 if j == 0 else 1, kernel) for j in range(n)]
            chs, stride = out, stride * 2
            stages.append(nn.Sequential(*units))
            self.feature_info.append(FeatureInfo(chs, stride, f"stages.{i}"))
        self.stages = nn.Sequential(*stages)
        if spec.conv5:
            self.final = ConvBnAct(chs, spec.conv5, 1, act="relu")
            chs = spec.conv5
        else:
            self.final = nn.Identity()
        self.head = ClassifierHead(chs, num_classes, drop_rate=drop_rate)
        self.num_features = chs
        init_weights(self)


# ThunderNet names each backbone by its FLOPs at 224x224, counted as multiply-adds (the
# ShuffleNet convention; conv + FC, no BN/ReLU/pooling). Counting Table 1's layers that way
# (tests/models/test_snet.py) gives 535.4M for SNet535 and, with 3x3 kernels and ShuffleNetV2's
# widths, exactly torchvision's ShuffleNetV2 1x (144.9M; 146M in its paper): that pins the unit and the
# convention; SNet49 and SNet146 come out at 51.2M and 161.1M, so those names are nominal.
# The paper's ImageNet top-1 for SNet could not be checked offline, so it is left unset.
_PAPER = "arXiv:1903.11752 Table 1"
_MACS = {"snet49": 49, "snet146": 146, "snet535": 535}
_NOTES = {
    "snet49": "Table 1's layers count 51.2M MACs (+4.5%); the same count gives 535.4M for SNet535",
    "snet146": "Table 1's layers count 161.1M MACs (+10.4%); the same count gives 535.4M for SNet535",
    "snet535": "",
}


def _make(name: str, spec: Spec) -> None:
    note = "; ".join(filter(None, [_NOTES[name], "ImageNet top-1 (ThunderNet's backbone table) not available offline"]))
    facts = Published(_PAPER, macs_m=_MACS[name], note=note)

    @register(name, family="snet", published=facts, interpolation="bilinear")
    def build(**kwargs) -> SNet:
        return SNet(spec=spec, **kwargs)

    build.__name__ = name
    build.__doc__ = f"ThunderNet {name} ({_PAPER}): stages {spec.stages}, conv5 {spec.conv5}."


for _name, _spec in SPECS.items():
    _make(_name, _spec)
