"""Checks shared by the re-parameterisable families (MobileOne, RepVGG)."""

from __future__ import annotations

import copy
import re

import torch
from torch import nn

import leannet
from leannet.layers.rep_block import RepConvBlock
from tests import helpers
from tests.helpers import assert_close_rel, calibrate_bn

SIZE = 64


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual.double() - expected.double()).abs().max() / expected.double().abs().max()).item()


def assert_reparameterized_equals_float32(name: str, rel: float = 1e-5) -> None:
    """Deployed vs train form in float32, eval mode, BN calibrated: max relative error <= `rel`,
    or, where the train form's own float32 noise (vs its exact float64 value) is already of
    that order, no more than 4x that noise.

    A randomly initialised MobileOne amplifies rounding by ~1.15x per block, so over its 44
    blocks the train form itself is only good to ~1e-5 relative in float32 (measured vs its
    float64 value: 9e-6 (S3) to 5e-5 (S4) at 64 px, up to 6e-4 for some S4 seeds); folding
    can't be judged more finely than that. The fusion itself is exact to one float32 rounding
    (tests/layers/test_rep_block.py). At 224 px, where BN statistics are better estimated,
    deployed vs train measured 5e-6 to 1.3e-5 for S3/S4 over 4 seeds. A wrong fusion gives
    errors of order 1.
    """
    model = calibrate_bn(leannet.create_model(name, num_classes=10), (3, SIZE, SIZE))
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        ref = model(x)
        err = rel_err(leannet.reparameterize(model)(x), ref)
        if err <= rel:
            return
        noise = rel_err(ref, copy.deepcopy(model).double()(x.double()))
    assert err <= 4 * noise, f"deployed vs train {err:.2g} > {rel:g}, and > 4x the train form's float32 noise {noise:.2g}"


def assert_single_branch(deployed: nn.Module) -> None:
    """No BatchNorm anywhere; every rep block is one conv (plus its SE gate and activation)."""
    assert not any(isinstance(m, nn.BatchNorm2d) for m in deployed.modules())
    blocks = [m for m in deployed.modules() if isinstance(m, RepConvBlock)]
    assert blocks
    for block in blocks:
        assert block.inference_mode
        assert block.conv_kxk is None and block.conv_scale is None and block.identity is None
        convs = [m for n, m in block.named_modules() if isinstance(m, nn.Conv2d) and not n.startswith("se.")]
        assert convs == [block.reparam_conv]


def shapes(model: nn.Module) -> dict[str, torch.Size]:
    return {k: v.shape for k, v in model.state_dict().items()}


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def from_timm(name: str) -> tuple[nn.Module, nn.Module]:
    """timm's model of the same name (independent code), BN-calibrated, and ours carrying its
    weights; both in eval mode.

    Only child names differ (timm: attn.fc1/fc2, and for RepVGG conv_kxk without a branch
    index and conv_1x1); a strict load proves the two have the same tensors.
    """
    import timm

    # Small calibration: only non-trivial BN statistics are needed, not realistic ones.
    ref = calibrate_bn(timm.create_model(name, pretrained=False), (3, 32, 32), steps=1, batch=2)
    ours = leannet.create_model(name).eval()

    def rename(key: str) -> str:
        key = key.replace("attn.fc1", "se.conv_reduce").replace("attn.fc2", "se.conv_expand")
        key = re.sub(r"conv_kxk\.(conv|bn)\.", r"conv_kxk.0.\1.", key)
        return key.replace("conv_1x1.", "conv_scale.")

    ours.load_state_dict({rename(k): v for k, v in ref.state_dict().items()}, strict=True)
    return ref, ours


def fvcore_macs(model: nn.Module, size: int = 224) -> int:
    # conv + linear only: fvcore's default handles also count the global pool's input
    # elements (1024 x 7 x 7 for MobileOne-S0), which hid behind a 1% tolerance here before
    return helpers.fvcore_macs(model, (3, size, size))


def assert_compiles(name: str, deployed: bool) -> None:
    """torch.compile of the train or deployed form gives the eager outputs."""
    model = calibrate_bn(leannet.create_model(name, num_classes=10))
    if deployed:
        model = leannet.reparameterize(model)
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        ref = model(x)
        out = torch.compile(model)(x)
    assert_close_rel(out, ref, 1e-4)  # inductor reorders sums
