"""A RetinaNet with any leannet backbone, a slimmable FPN and slimmable heads.

Everything that is not architecture comes from torchvision and is not rewritten here: the
`RetinaNet` module itself (resize/normalise transform, anchor matching, sigmoid focal loss,
box coding, per-class batched NMS), `FeaturePyramidNetwork`, `AnchorGenerator` and the
prediction layers and losses of `RetinaNetHead`. This file only decides their sizes:

    backbone (create_model(..., features_only=True))  levels at `in_strides`
      -> FPN `fpn_channels` wide, + `extra_levels` stride-2 convs (P6, P7)
      -> per level: class and box towers of `head_depth` convs, `head_channels` wide
         (3x3 or 1x1, optionally depthwise-separable; GroupNorm, BatchNorm or none)

The seed's baseline is RetinaNet-ResNet-50 (256-wide FPN, four 256-wide 3x3 convs per tower);
its slim detector swaps the backbone for a ShuffleNet-like one and narrows the neck and heads.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops import Conv2dNormActivation, FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock

from leannet.detect.config import ModelConfig
from leannet.errors import ConfigError
from leannet.factory import create_model


def _norm(kind: str) -> Callable[[int], nn.Module] | None:
    if kind == "group":
        # At most 32 groups (Wu & He's default; torchvision's on 256 channels) and at least 8
        # channels per group, so narrow heads on 1x1 top levels still normalise over something.
        return lambda c: nn.GroupNorm(math.gcd(32, max(1, c // 8)), c)
    return nn.BatchNorm2d if kind == "batch" else None


class ExtraLevels(ExtraFPNBlock):
    """P6, P7, ...: stride-2 3x3 convs (ReLU between them) after the last level. RetinaNet
    (arXiv:1708.02002 Sec. 4) computes P6 from C5, the backbone map (`from_c5`; torchvision's
    LastLevelP6P7 with two levels); FCOS and RetinaNet v2 from P5, which is cheaper when the
    FPN is narrower than C5."""

    def __init__(self, in_channels: int, channels: int, num: int, from_c5: bool):
        super().__init__()
        self.from_c5 = from_c5
        self.convs = nn.ModuleList(
            nn.Conv2d(in_channels if i == 0 and from_c5 else channels, channels, 3, 2, 1) for i in range(num)
        )
        for conv in self.convs:
            nn.init.kaiming_uniform_(conv.weight, a=1)
            nn.init.zeros_(conv.bias)

    def forward(self, results: list[torch.Tensor], x: list[torch.Tensor], names: list[str]):
        p = x[-1] if self.from_c5 else results[-1]
        for i, conv in enumerate(self.convs):
            p = conv(p if i == 0 else nn.functional.relu(p))
            results.append(p)
            names.append(f"p{len(names)}")
        return results, names


class BackboneFPN(nn.Module):
    """leannet FeatureNet -> torchvision FPN; `out_channels` is what RetinaNet reads."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        probe = create_model(cfg.backbone, features_only=True)
        strides = [f.stride for f in probe.feature_info]
        missing = [s for s in cfg.in_strides if s not in strides]
        if missing:
            raise ConfigError(f"model.in_strides: {cfg.backbone} has no feature level at stride "
                              f"{missing} (it has {strides})")
        indices = tuple(strides.index(s) for s in cfg.in_strides)
        del probe
        self.body = create_model(cfg.backbone, features_only=True, out_indices=indices)
        self.fpn = FeaturePyramidNetwork(
            [f.channels for f in self.body.feature_info], cfg.fpn_channels,
            extra_blocks=ExtraLevels(self.body.feature_info[-1].channels, cfg.fpn_channels, cfg.extra_levels,
                                     from_c5=cfg.extra_from == "c5") if cfg.extra_levels else None,
            norm_layer=_norm(cfg.fpn_norm),
        )
        self.out_channels = cfg.fpn_channels
        self.strides = [*cfg.in_strides, *(cfg.in_strides[-1] * 2 ** (i + 1) for i in range(cfg.extra_levels))]

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        feats = self.body(x)
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))


def _tower(cin: int, cfg: ModelConfig) -> nn.Sequential:
    norm = _norm(cfg.head_norm)
    k, width, layers = cfg.head_kernel, cfg.head_channels, []
    for i in range(cfg.head_depth):
        c = cin if i == 0 else width
        if cfg.head_separable:
            layers += [Conv2dNormActivation(c, c, k, groups=c, norm_layer=norm),
                       Conv2dNormActivation(c, width, 1, norm_layer=norm)]
        else:
            layers.append(Conv2dNormActivation(c, width, k, norm_layer=norm))
    for m in nn.Sequential(*layers).modules():  # torchvision's RetinaNet head init
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return nn.Sequential(*layers)


def _slim_head(cfg: ModelConfig, num_anchors: int) -> RetinaNetHead:
    """torchvision's RetinaNetHead (its focal and box losses, output layout) with towers and
    predictors sized by `cfg`."""
    cin = cfg.fpn_channels
    cpred = cfg.head_channels if cfg.head_depth else cin
    head = RetinaNetHead(cpred, num_anchors, cfg.num_classes, norm_layer=_norm(cfg.head_norm))
    for sub in (head.classification_head, head.regression_head):
        sub.conv = _tower(cin, cfg)
    if cfg.head_kernel != 3:
        cls = head.classification_head
        old = cls.cls_logits
        cls.cls_logits = nn.Conv2d(cpred, old.out_channels, cfg.head_kernel)
        nn.init.normal_(cls.cls_logits.weight, std=0.01)
        cls.cls_logits.bias.data.copy_(old.bias.data)  # keeps the focal-loss prior
        reg = head.regression_head
        reg.bbox_reg = nn.Conv2d(cpred, reg.bbox_reg.out_channels, cfg.head_kernel)
        nn.init.normal_(reg.bbox_reg.weight, std=0.01)
        nn.init.zeros_(reg.bbox_reg.bias)
    head.regression_head._loss_type = cfg.box_loss
    return head


def build_detector(cfg: ModelConfig) -> RetinaNet:
    """A torchvision RetinaNet built from `cfg`; `detector.config` keeps the config."""
    backbone = BackboneFPN(cfg)
    sizes = tuple(
        # int() truncates as torchvision does, so the ResNet-50 config reproduces its anchors
        tuple(int(cfg.anchor_scale * s * 2 ** (i / cfg.anchor_octaves)) for i in range(cfg.anchor_octaves))
        for s in backbone.strides
    )
    anchors = AnchorGenerator(sizes, (tuple(cfg.anchor_ratios),) * len(sizes))
    head = _slim_head(cfg, anchors.num_anchors_per_location()[0])
    pre = backbone.body.pretrained_cfg
    model = RetinaNet(
        backbone, num_classes=cfg.num_classes, min_size=cfg.image_size, max_size=cfg.image_size,
        image_mean=list(pre.mean), image_std=list(pre.std), anchor_generator=anchors, head=head,
        score_thresh=cfg.score_thresh, nms_thresh=cfg.nms_thresh,
        detections_per_img=cfg.detections_per_img, topk_candidates=cfg.topk_candidates,
    )
    model.config = cfg
    return model


class RawDetector(nn.Module):
    """backbone -> FPN -> heads on a fixed-size normalised batch; returns the raw class logits
    and box deltas of every anchor. This is the part that costs MACs (and what one exports);
    resizing, anchor decoding and NMS happen around it."""

    def __init__(self, detector: RetinaNet):
        super().__init__()
        self.backbone = detector.backbone
        self.head = detector.head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(list(self.backbone(x).values()))
        return out["cls_logits"], out["bbox_regression"]


def detector_meta(cfg: ModelConfig, class_names: list[str]) -> dict[str, Any]:
    """What a weights file needs to rebuild its detector (stored in the safetensors metadata)."""
    return {"task": "detection", "arch": "retinanet", "model": cfg.model_dump(), "classes": class_names}


def load_detector(weights: str, overrides: list[str] | tuple[str, ...] = ()) -> tuple[RetinaNet, list[str]]:
    """Rebuild a detector from a leannet detection weights file alone; return it (eval mode)
    and its class names. `overrides` (`score_thresh=0.3`) adjust the stored model config."""
    from leannet.config import apply_overrides, validate
    from leannet.errors import WeightsError
    from leannet.weights.io import load_into, load_state_dict, read_metadata

    meta = read_metadata(weights)
    if meta.get("task") != "detection" or "model" not in meta:
        raise WeightsError(f"{weights}: not a leannet detector checkpoint (no detection config in its metadata)")
    cfg = validate(ModelConfig, apply_overrides(dict(meta["model"]), overrides), source=f"{weights} model")
    model = build_detector(cfg)
    load_into(model, load_state_dict(weights), source=str(weights))
    return model.eval(), list(meta.get("classes") or [str(i) for i in range(cfg.num_classes)])
