"""The contract every leannet backbone keeps, so tools treat all models alike.

    feats = model.forward_features(x)       # last feature map, (N, C, H/32, W/32) typically
    logits = model.forward_head(feats)      # pooled features when num_classes == 0
    maps = model.forward_intermediates(x)   # one map per `feature_info` level
    model.get_classifier()                  # the final linear layer (its keys are "the head")
    model.reset_classifier(10)

Families built in leannet subclass `StagedModel` (stem -> stages -> final -> head); adapters
of torchvision models subclass `LeanModel` directly and keep torchvision's module names.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from leannet.errors import ShapeError
from leannet.layers.head import ClassifierHead


@dataclass(frozen=True)
class FeatureInfo:
    """One pyramid level: channels and total stride of the map, and the module that makes it."""

    channels: int
    stride: int
    module: str


class LeanModel(nn.Module):
    in_chans: int = 3
    num_classes: int = 1000
    num_features: int  # channels entering the classifier (after any pre-logits layer)
    feature_info: list[FeatureInfo]

    def forward_intermediates(self, x: torch.Tensor, stop: int | None = None) -> list[torch.Tensor]:
        """The maps of levels 0..stop (all levels when stop is None)."""
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def get_classifier(self) -> nn.Module:
        """The layer `reset_classifier` replaces: loading weights with `reset_head=True` skips
        exactly its parameters."""
        raise NotImplementedError

    def reset_classifier(self, num_classes: int) -> None:
        raise NotImplementedError

    def prune(self, stop: int) -> None:
        """Drop every layer after feature level `stop` and the classifier (features_only)."""

    def check_input(self, x: torch.Tensor) -> None:
        # Shapes are static under dynamo/export, so the check costs nothing in a graph; an
        # FX proxy has no shape to check.
        if isinstance(x, torch.fx.Proxy) or torch.jit.is_tracing():
            return
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ShapeError(
                f"{type(self).__name__} expects input of shape (N, {self.in_chans}, H, W), "
                f"got {tuple(x.shape)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.forward_head(self.forward_features(x))


class StagedModel(LeanModel):
    """stem -> stages[i] (one per feature level) -> final -> head.

    Subclasses set `stem`, `stages` (nn.Sequential of stages), optionally `final` (layers
    after the last level that are not part of the classifier, e.g. GhostNet's 1x1 to 960),
    `head` (a ClassifierHead) and `feature_info` (one entry per stage).
    """

    final: nn.Module
    head: ClassifierHead

    def add_stage(self, stage: nn.Module, channels: int, stride: int) -> None:
        """Append a stage; its output becomes a feature level (channels, total stride)."""
        if "stages" not in self._modules:
            self.stages = nn.Sequential()
            self.feature_info = []
        self.feature_info.append(FeatureInfo(channels, stride, f"stages.{len(self.stages)}"))
        self.stages.append(stage)

    def forward_intermediates(self, x: torch.Tensor, stop: int | None = None) -> list[torch.Tensor]:
        self.check_input(x)
        x = self.stem(x)
        outs = []
        last = len(self.stages) - 1 if stop is None else stop
        for i, stage in enumerate(self.stages):
            x = stage(x)
            outs.append(x)
            if i == last:
                break
        return outs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.final(self.stages(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.head.reset(num_classes)
        self.num_classes = num_classes

    def prune(self, stop: int) -> None:
        self.stages = self.stages[: stop + 1]
        self.final = nn.Identity()
        self.head = nn.Identity()  # type: ignore[assignment]


class FeatureNet(nn.Module):
    """A backbone cut to its feature levels (`features_only=True`), for detection necks.

    Returns a list of maps, one per `out_indices` entry; `feature_info` lists their channels
    and strides. Stages after the deepest requested level and the classifier are dropped.
    """

    def __init__(self, model: LeanModel, out_indices: tuple[int, ...] | None = None):
        super().__init__()
        levels = len(model.feature_info)
        out_indices = tuple(range(levels)) if out_indices is None else tuple(out_indices)
        bad = [i for i in out_indices if not -levels <= i < levels]
        if bad:
            raise ShapeError(f"out_indices {bad} out of range for {levels} feature levels")
        self.out_indices = tuple(i % levels for i in out_indices)
        self.feature_info = [model.feature_info[i] for i in self.out_indices]
        self.stop = max(self.out_indices)
        model.prune(self.stop)
        self.model = model

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.model.forward_intermediates(x, stop=self.stop)
        return [feats[i] for i in self.out_indices]
