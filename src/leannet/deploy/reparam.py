from __future__ import annotations

import copy

from torch import nn

from leannet.layers.fusion import fold_batchnorms
from leannet.layers.shuffle import unshuffle_stages


def reparameterize(model: nn.Module, inplace: bool = False) -> nn.Module:
    """The deployed form of `model`: multi-branch blocks merged, every BatchNorm folded, eval mode.

    Blocks that can merge their branches define `reparameterize()` (MobileOne, RepVGG); they
    are converted deepest first. Then each BatchNorm that directly follows a conv is folded
    into it. Last, ShuffleNetV2 stages (ShuffleNetV2, SNet) are computed without channel
    shuffles (`leannet.layers.shuffle.UnshuffledStage`: the same function, fewer copies, and
    no layout round trips in runtimes that run convs in NHWC). The input model is left
    untouched unless `inplace=True`.
    """
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    for m in reversed(list(model.modules())):
        if m is not model and callable(getattr(m, "reparameterize", None)):
            m.reparameterize()
    fold_batchnorms(model)
    unshuffle_stages(model)
    return model
