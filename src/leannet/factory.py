"""`create_model`: registry name (or timm alias) -> model with the leannet contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from leannet.errors import WeightsError
from leannet.models.base import FeatureNet
from leannet.registry import build as registry_build
from leannet.registry import model_info


def create_model(
    name: str,
    num_classes: int = 1000,
    pretrained: bool | str | Path | None = None,
    in_chans: int = 3,
    drop_rate: float | None = None,
    features_only: bool = False,
    out_indices: tuple[int, ...] | None = None,
    reset_head: bool = False,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model.

    `pretrained`: True downloads the model's default checkpoint (`leannet weights` lists
    them), converts it once and caches it in $LEANNET_HOME; also "hf-hub:ORG/REPO[@REV]", a
    timm tag ("lcnet_100.ra2_in1k"), a URL, or a checkpoint path (leannet safetensors, or a
    timm/official layout converted on load). See `leannet.weights.hub`. The checkpoint's class
    count must equal `num_classes` unless `reset_head=True`, which keeps a fresh classifier
    (fine-tuning). `features_only=True` returns a FeatureNet
    whose forward gives one map per level in `out_indices` (all levels by default).
    """
    info = model_info(name)
    if reset_head and not pretrained:
        raise WeightsError(f"{name}: reset_head=True needs pretrained weights (a new model's head is fresh already)")
    build_args = dict(kwargs, num_classes=num_classes, in_chans=in_chans)
    if drop_rate is not None:
        build_args["drop_rate"] = drop_rate

    def build(**implied: Any) -> nn.Module:
        # `implied`: arguments a checkpoint's contents imply (e.g. PP-LCNet's head_bias);
        # the caller's own arguments win.
        return registry_build(info.name, **{**implied, **build_args})

    if pretrained:
        from leannet.weights.hub import load_pretrained

        model = load_pretrained(build, info.name, pretrained, reset_head=reset_head)
    else:
        model = build()
    if features_only:
        model = FeatureNet(model, out_indices)
        model.pretrained_cfg = info
    return model
