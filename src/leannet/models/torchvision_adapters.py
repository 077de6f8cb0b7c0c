"""The baselines the seed papers compare against, taken from torchvision and wrapped in
leannet's model contract. Modules keep torchvision's names, so torchvision's own state dicts
load unchanged; only the stage boundaries (for `forward_intermediates`) and the head are
described here.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torchvision.models as tvm
from torch import nn

from leannet.models.base import FeatureInfo, LeanModel
from leannet.registry import Published, register

__all__ = [
    "TorchvisionModel",
    "mobilenetv2_x1_0",
    "mobilenetv3_large_x1_0",
    "mobilenetv3_small_x1_0",
    "regnetx_032",
    "resnet50",
    "shufflenetv2_x0_5",
    "shufflenetv2_x1_0",
    "shufflenetv2_x1_5",
    "shufflenetv2_x2_0",
]


@dataclass(frozen=True)
class Layout:
    """Where a torchvision model's pieces are, by module path."""

    stem: tuple[str, ...]
    stages: tuple[tuple[str, ...], ...]  # one tuple of paths per feature level
    strides: tuple[int, ...]  # total stride after each stage
    final: tuple[str, ...]  # after the last level, before pooling
    head: tuple[str, ...]  # after pooling + flatten; the last one must be the nn.Linear
    first_conv: str  # replaced when in_chans != 3
    dropout: str | None = None  # the head's Dropout, set from drop_rate


def _seq(prefix: str, start: int, stop: int) -> tuple[str, ...]:
    return tuple(f"{prefix}.{i}" for i in range(start, stop))


class TorchvisionModel(LeanModel):
    def __init__(self, tv: nn.Module, layout: Layout, in_chans: int = 3, drop_rate: float | None = None):
        super().__init__()
        for name, child in tv.named_children():
            if not isinstance(child, nn.AdaptiveAvgPool2d):
                self.add_module(name, child)
        self.layout = layout
        self.in_chans = in_chans
        if in_chans != 3:
            old = self.get_submodule(layout.first_conv)
            new = nn.Conv2d(in_chans, old.out_channels, old.kernel_size, old.stride, old.padding,
                            groups=old.groups, bias=old.bias is not None)
            self._replace(layout.first_conv, new)
        if drop_rate is not None and layout.dropout:
            self.get_submodule(layout.dropout).p = drop_rate
        fc = self.get_submodule(layout.head[-1])
        self.num_classes, self.num_features = fc.out_features, fc.in_features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_info = [
            FeatureInfo(c, stride, paths[-1])
            for c, stride, paths in zip(self._probe_channels(), layout.strides, layout.stages, strict=True)
        ]

    def _replace(self, path: str, new: nn.Module) -> None:
        parent, _, name = path.rpartition(".")
        setattr(self.get_submodule(parent) if parent else self, name, new)

    @torch.no_grad()
    def _probe_channels(self) -> list[int]:
        # Read the channels off one tiny forward: a stage's last BN is not always its output
        # (ShuffleNetV2 concatenates two branches).
        was_training = self.training
        self.eval()
        maps = self.forward_intermediates(torch.zeros(1, self.in_chans, 32, 32))
        self.train(was_training)
        return [m.shape[1] for m in maps]

    def _run(self, paths: tuple[str, ...], x: torch.Tensor) -> torch.Tensor:
        for p in paths:
            x = self.get_submodule(p)(x)
        return x

    def forward_intermediates(self, x: torch.Tensor, stop: int | None = None) -> list[torch.Tensor]:
        self.check_input(x)
        x = self._run(self.layout.stem, x)
        outs = []
        last = len(self.layout.stages) - 1 if stop is None else stop
        for i, paths in enumerate(self.layout.stages):
            x = self._run(paths, x)
            outs.append(x)
            if i == last:
                break
        return outs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self._run(self.layout.stem, x)
        for paths in self.layout.stages:
            x = self._run(paths, x)
        return self._run(self.layout.final, x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.pool(x), 1)
        head = self.layout.head if not pre_logits else self.layout.head[:-1]
        return self._run(head, x)

    def get_classifier(self) -> nn.Module:
        return self.get_submodule(self.layout.head[-1])

    def reset_classifier(self, num_classes: int) -> None:
        new = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        self._replace(self.layout.head[-1], new)
        self.num_classes = num_classes

    def prune(self, stop: int) -> None:
        layout = self.layout
        used = [*layout.stem, *(p for paths in layout.stages[: stop + 1] for p in paths)]
        tops = {p.split(".")[0] for p in used}
        for name, child in list(self.named_children()):
            if name not in tops and name != "pool":
                delattr(self, name)
            elif isinstance(child, nn.Sequential) and all(p.count(".") >= 1 for p in used if p.startswith(name + ".")):
                # A container shared by kept and dropped stages (MobileNet's `features`):
                # keep its used children under their own names so state-dict keys don't move.
                kept = {p.split(".")[1] for p in used if p.startswith(name + ".")}
                if kept:
                    setattr(self, name, nn.Sequential(OrderedDict(
                        (n, m) for n, m in child.named_children() if n in kept)))
        self.layout = Layout(layout.stem, layout.stages[: stop + 1], layout.strides[: stop + 1],
                             (), (), layout.first_conv)


# --- layouts, read off torchvision's modules -------------------------------------------------

MOBILENETV2 = Layout(
    stem=("features.0",),
    stages=(("features.1",), _seq("features", 2, 4), _seq("features", 4, 7),
            _seq("features", 7, 14), _seq("features", 14, 18)),
    strides=(2, 4, 8, 16, 32),
    final=("features.18",),
    head=("classifier.0", "classifier.1"),
    first_conv="features.0.0",
    dropout="classifier.0",
)
MOBILENETV3_LARGE = Layout(
    stem=("features.0",),
    stages=(("features.1",), _seq("features", 2, 4), _seq("features", 4, 7),
            _seq("features", 7, 13), _seq("features", 13, 16)),
    strides=(2, 4, 8, 16, 32),
    final=("features.16",),
    head=("classifier.0", "classifier.1", "classifier.2", "classifier.3"),
    first_conv="features.0.0",
    dropout="classifier.2",
)
MOBILENETV3_SMALL = Layout(
    stem=("features.0",),
    stages=(("features.1",), _seq("features", 2, 4), _seq("features", 4, 9), _seq("features", 9, 12)),
    strides=(4, 8, 16, 32),
    final=("features.12",),
    head=("classifier.0", "classifier.1", "classifier.2", "classifier.3"),
    first_conv="features.0.0",
    dropout="classifier.2",
)
SHUFFLENETV2 = Layout(
    stem=("conv1",),
    stages=(("maxpool",), ("stage2",), ("stage3",), ("stage4",)),
    strides=(4, 8, 16, 32),
    final=("conv5",),
    head=("fc",),
    first_conv="conv1.0",
)
RESNET = Layout(
    stem=("conv1", "bn1", "relu"),
    stages=(("maxpool", "layer1"), ("layer2",), ("layer3",), ("layer4",)),
    strides=(4, 8, 16, 32),
    final=(),
    head=("fc",),
    first_conv="conv1",
)
REGNET = Layout(
    stem=("stem",),
    stages=(("trunk_output.block1",), ("trunk_output.block2",), ("trunk_output.block3",),
            ("trunk_output.block4",)),
    strides=(4, 8, 16, 32),
    final=(),
    head=("fc",),
    first_conv="stem.0",
)


def _adapt(tv_builder: Callable[..., nn.Module], layout: Layout, *, num_classes: int, in_chans: int,
           drop_rate: float | None) -> TorchvisionModel:
    # weights=None: nothing is downloaded; torchvision checkpoints load via `pretrained=PATH`.
    return TorchvisionModel(tv_builder(weights=None, num_classes=num_classes), layout,
                            in_chans=in_chans, drop_rate=drop_rate)


_TV = "torchvision model docs (IMAGENET1K_V1)"
_shufflenet_table8 = partial(Published, source="arXiv:1807.11164 Table 8; params: " + _TV)


@register(
    "mobilenetv2_x1_0",
    family="mobilenetv2",
    aliases=("mobilenetv2_100",),
    published=Published(
        source="arXiv:1801.04381 Table 4", params_m=3.4, macs_m=300, top1=72.0, latency_ms=75.0,
        latency_hw="Google Pixel 1 CPU, TF-Lite",
        note="torchvision and timm both build 3.50M params for this architecture; the paper's 3.4M "
        "is not reproduced by them",
    ),
)
def mobilenetv2_x1_0(*, num_classes: int = 1000, in_chans: int = 3,
                     drop_rate: float | None = None) -> TorchvisionModel:
    """torchvision's mobilenet_v2, untrained, in leannet's contract."""
    return _adapt(tvm.mobilenet_v2, MOBILENETV2, num_classes=num_classes, in_chans=in_chans,
                  drop_rate=drop_rate)


@register(
    "mobilenetv3_large_x1_0",
    family="mobilenetv3",
    aliases=("mobilenetv3_large_100",),
    published=Published(
        source="arXiv:1905.02244 Table 3", params_m=5.4, macs_m=219, top1=75.2, latency_ms=51.0,
        latency_hw="Google Pixel 1 CPU, TF-Lite",
    ),
)
def mobilenetv3_large_x1_0(*, num_classes: int = 1000, in_chans: int = 3,
                           drop_rate: float | None = None) -> TorchvisionModel:
    """torchvision's mobilenet_v3_large, untrained, in leannet's contract."""
    return _adapt(tvm.mobilenet_v3_large, MOBILENETV3_LARGE, num_classes=num_classes, in_chans=in_chans,
                  drop_rate=drop_rate)


@register(
    "mobilenetv3_small_x1_0",
    family="mobilenetv3",
    aliases=("mobilenetv3_small_100",),
    published=Published(
        source="arXiv:1905.02244 Table 3", params_m=2.5, macs_m=56, top1=67.4, latency_ms=15.8,
        latency_hw="Google Pixel 1 CPU, TF-Lite",
    ),
)
def mobilenetv3_small_x1_0(*, num_classes: int = 1000, in_chans: int = 3,
                           drop_rate: float | None = None) -> TorchvisionModel:
    """torchvision's mobilenet_v3_small, untrained, in leannet's contract."""
    return _adapt(tvm.mobilenet_v3_small, MOBILENETV3_SMALL, num_classes=num_classes, in_chans=in_chans,
                  drop_rate=drop_rate)


@register("shufflenetv2_x0_5", family="shufflenetv2",
          published=_shufflenet_table8(params_m=1.37, macs_m=41, top1=60.3))
def shufflenetv2_x0_5(*, num_classes: int = 1000, in_chans: int = 3,
                      drop_rate: float | None = None) -> TorchvisionModel:
    """torchvision's shufflenet_v2_x0_5, untrained, in leannet's contract."""
    return _adapt(tvm.shufflenet_v2_x0_5, SHUFFLENETV2, num_classes=num_classes, in_chans=in_chans,
                  drop_rate=drop_rate)


@register("shufflenetv2_x1_0", family="shufflenetv2",
          published=_shufflenet_table8(params_m=2.28, macs_m=146, top1=69.4))
def shufflenetv2_x1_0(*, num_classes: int = 1000, in_chans: int = 3,
                      drop_rate: float | None = None) -> TorchvisionModel:
    """torchvision's shufflenet_v2_x1_0, untrained, in leannet's contract."""
    return _adapt(tvm.shufflenet_v2_x1_0, SHUFFLENETV2, num_classes=num_classes, in_chans=in_chans,
                  drop_rate=drop_rate)


@register("shufflenetv2_x1_5", family="shufflenetv2",
          published=_shufflenet_table8(params_m=3.50, macs_m=299, top1=72.6))
def shufflenetv2_x1_5(*, num_classes: int = 1000, in_chans: int = 3,
                      drop_rate: float | None = None) -> TorchvisionModel:
    """torchvision's shufflenet_v2_x1_5, untrained, in leannet's contract."""
    return _adapt(tvm.shufflenet_v2_x1_5, SHUFFLENETV2, num_classes=num_classes, in_chans=in_chans,
                  drop_rate=drop_rate)


@register("shufflenetv2_x2_0", family="shufflenetv2",
          published=_shufflenet_table8(params_m=7.39, macs_m=591, top1=74.9))
def shufflenetv2_x2_0(*, num_classes: int = 1000, in_chans: int = 3,
                      drop_rate: float | None = None) -> TorchvisionModel:
    """torchvision's shufflenet_v2_x2_0, untrained, in leannet's contract."""
    return _adapt(tvm.shufflenet_v2_x2_0, SHUFFLENETV2, num_classes=num_classes, in_chans=in_chans,
                  drop_rate=drop_rate)


@register(
    "resnet50",
    family="resnet50",
    published=Published(
        source="arXiv:1512.03385 Table 1 (3.8 GFLOPs = MACs); params, top-1: " + _TV,
        params_m=25.56, macs_m=3800, top1=76.13,
        note="torchvision's ResNet-50 v1.5 puts the stride in the 3x3 conv (paper: in the 1x1), "
        "which costs 4.09G MACs instead of 3.8G",
    ),
)
def resnet50(*, num_classes: int = 1000, in_chans: int = 3,
             drop_rate: float | None = None) -> TorchvisionModel:
    """torchvision's resnet50 (v1.5), untrained, in leannet's contract."""
    return _adapt(tvm.resnet50, RESNET, num_classes=num_classes, in_chans=in_chans,
                  drop_rate=drop_rate)


@register("regnetx_032", family="regnetx",
          published=Published(source="arXiv:2003.13678 Table 6 (REGNETX-3.2GF)", params_m=15.3,
                              macs_m=3200, top1=78.3))
def regnetx_032(*, num_classes: int = 1000, in_chans: int = 3,
                drop_rate: float | None = None) -> TorchvisionModel:
    """torchvision's regnet_x_3_2gf, untrained, in leannet's contract."""
    return _adapt(tvm.regnet_x_3_2gf, REGNET, num_classes=num_classes, in_chans=in_chans,
                  drop_rate=drop_rate)
