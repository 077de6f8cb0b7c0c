"""RepConvBlock: every branch combination fuses into one conv with the same output."""

import copy

import pytest
import torch
from torch import nn

from leannet.layers.rep_block import RepConvBlock
from tests.helpers import assert_close_rel, calibrate_bn


@pytest.mark.parametrize(
    ("in_chs", "out_chs", "kernel", "stride", "groups", "branches"),
    [
        (8, 8, 3, 1, 1, 1),  # RepVGG block keeping shape: 3x3 + 1x1 + identity
        (8, 16, 3, 2, 1, 1),  # RepVGG downsampling block: no identity
        (8, 8, 3, 1, 8, 4),  # MobileOne-S0 depthwise: 4 branches + scale + identity
        (8, 8, 3, 2, 8, 4),  # depthwise with stride: the 1x1 must align with the 3x3 centre
        (8, 8, 1, 1, 1, 4),  # MobileOne pointwise: no scale branch (kernel is already 1x1)
        (8, 12, 1, 1, 1, 2),  # pointwise widening: conv branches only
        (8, 8, 3, 1, 2, 1),  # grouped conv: identity kernel per group
    ],
)
def test_reparameterize_matches_branches(in_chs, out_chs, kernel, stride, groups, branches):
    block = RepConvBlock(in_chs, out_chs, kernel, stride, groups, num_branches=branches)
    block = calibrate_bn(nn.Sequential(block), (in_chs, 9, 9)).double()[0]
    assert (block.identity is not None) == (in_chs == out_chs and stride == 1)
    assert (block.conv_scale is not None) == (kernel > 1)
    x = torch.randn(2, in_chs, 9, 9, dtype=torch.float64)
    with torch.no_grad():
        ref = block(x)
        block.reparameterize()
        out = block(x)
    assert block.conv_kxk is None and block.conv_scale is None and block.identity is None
    assert block.reparam_conv.weight.shape == (out_chs, in_chs // groups, kernel, kernel)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in block.modules())
    assert_close_rel(out, ref, rel=1e-12)


def test_inference_mode_has_the_reparameterized_layout():
    trained = RepConvBlock(8, 8, 3, 1, 8, num_branches=4)
    trained.eval().reparameterize()
    built = RepConvBlock(8, 8, 3, 1, 8, num_branches=4, inference_mode=True)
    shapes = {k: v.shape for k, v in trained.state_dict().items()}
    assert shapes == {k: v.shape for k, v in built.state_dict().items()}
    assert set(shapes) == {"reparam_conv.weight", "reparam_conv.bias"}


def test_reparameterize_twice_is_a_no_op():
    block = RepConvBlock(4, 4, 3).eval()
    block.reparameterize()
    conv = block.reparam_conv
    block.reparameterize()
    assert block.reparam_conv is conv


def test_float32_fusion_rounds_once():
    """The deployed float32 kernel is the exact (float64) fusion rounded once: summing the
    branches in float32 would add rounding that a deep net amplifies (MobileOne-S4)."""
    block = calibrate_bn(nn.Sequential(RepConvBlock(8, 8, 3, 1, 8, num_branches=4)), (8, 9, 9))[0]
    exact = copy.deepcopy(block).double()
    block.reparameterize()
    exact.reparameterize()
    assert block.reparam_conv.weight.dtype == torch.float32
    assert torch.equal(block.reparam_conv.weight, exact.reparam_conv.weight.float())
    assert torch.equal(block.reparam_conv.bias, exact.reparam_conv.bias.float())
