"""RepConvBlock: every branch combination fuses into one conv with the same output."""

import copy

import pytest
import torch
import torch.nn.functional as F
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
        (8, 8, 5, 1, 8, 2),  # 5x5 depthwise: the deployed conv's padding must be 2, not 1
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


def test_defaults_build_the_repvgg_block():
    """RepVGG builds its blocks as RepConvBlock(chs, out, 3, stride): the defaults are the rest
    of RepVGG's block (one 3x3 branch, dense conv, stride 1, so the identity branch exists)."""
    block = RepConvBlock(8, 8)
    assert len(block.conv_kxk) == 1
    conv = block.conv_kxk[0].conv
    assert (conv.kernel_size, conv.stride, conv.groups) == ((3, 3), (1, 1), 1)
    assert block.conv_scale is not None and block.identity is not None


class _Gate(nn.Module):
    """A stand-in for squeeze-excite: scales each channel by a sigmoid of its mean."""

    def forward(self, x):
        return x * torch.sigmoid(x.mean((2, 3), keepdim=True))


def _bn_eval(x, bn):
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


@pytest.mark.parametrize("act", ["relu", "hard_swish"])
def test_forward_is_act_of_gate_of_branch_sum(act):
    """Both forms compute act(se(sum of branches)), each branch written out with torch's
    conv2d and batch_norm (3x3 branches pad 1, the 1x1 pads 0, identity is BN alone)."""
    block = RepConvBlock(8, 8, 3, 1, 8, num_branches=2, se=_Gate(), act=act)
    block = calibrate_bn(nn.Sequential(block), (8, 9, 9)).double()[0]
    x = torch.randn(2, 8, 9, 9, dtype=torch.float64)
    total = _bn_eval(x, block.identity)
    for branch, pad in [(b, 1) for b in block.conv_kxk] + [(block.conv_scale, 0)]:
        total = total + _bn_eval(F.conv2d(x, branch.conv.weight, padding=pad, groups=8), branch.bn)
    fn = {"relu": F.relu, "hard_swish": F.hardswish}[act]
    ref = fn(_Gate()(total))
    assert ref.min() < 0 or act == "relu"  # hardswish's negative lobe is exercised
    with torch.no_grad():
        assert_close_rel(block(x), ref, rel=1e-12)
        block.reparameterize()
        assert_close_rel(block(x), ref, rel=1e-12)
