"""layers/fusion.py against independent references: torch's own conv2d and batch_norm in eval
mode, and module graphs whose foldable conv -> BN pairs are known by construction."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from leannet.layers.fusion import (
    fold_batchnorms,
    fold_conv_bn,
    fuse_bn,
    identity_kernel,
    pad_kernel,
)
from tests.helpers import assert_close_rel


def _bn(channels: int, affine: bool = True, eps: float = 0.1) -> nn.BatchNorm2d:
    """An eval-mode BN with statistics far from 0/1 and a large eps, so every term shows."""
    bn = nn.BatchNorm2d(channels, eps=eps, affine=affine).eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-2, 2)
        bn.running_var.uniform_(0.2, 3)
        if affine:
            bn.weight.uniform_(0.5, 2)
            bn.bias.uniform_(-1, 1)
    return bn


def _bn_ref(y: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """torch's batch_norm in eval mode, in float64: the reference for folding."""
    w = bn.weight.double() if bn.affine else None
    b = bn.bias.double() if bn.affine else None
    return F.batch_norm(y, bn.running_mean.double(), bn.running_var.double(), w, b, False, 0.0, bn.eps)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("with_bias", [True, False])
def test_fuse_bn_equals_conv_then_bn(affine, with_bias):
    bn = _bn(6, affine)
    kernel = torch.randn(6, 4, 3, 3)
    bias = torch.randn(6) if with_bias else None
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64)
    ref = _bn_ref(F.conv2d(x, kernel.double(), None if bias is None else bias.double(), padding=1), bn)
    k, b = fuse_bn(kernel, bn, bias)
    assert k.dtype == b.dtype == torch.float64  # documented: callers round once
    assert k.shape == kernel.shape and b.shape == (6,)
    assert_close_rel(F.conv2d(x, k, b, padding=1), ref, rel=1e-12)


@pytest.mark.parametrize(("small", "size"), [(1, 3), (3, 5), (1, 5), (3, 3)])
def test_pad_kernel_keeps_the_conv(small, size):
    """A small kernel padded to `size` with the matching padding gives the same output."""
    kernel = torch.randn(5, 2, small, small, dtype=torch.float64)
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    padded = pad_kernel(kernel, size)
    assert padded.shape == (5, 2, size, size)
    assert_close_rel(F.conv2d(x, padded, padding=size // 2), F.conv2d(x, kernel, padding=small // 2), rel=1e-15)


@pytest.mark.parametrize(("channels", "groups", "size"), [(6, 1, 3), (6, 2, 3), (6, 6, 3), (4, 1, 1), (4, 4, 5)])
def test_identity_kernel_copies_its_input(channels, groups, size):
    like = torch.zeros(1, dtype=torch.float64)
    k = identity_kernel(channels, groups, size, like=like)
    assert k.shape == (channels, channels // groups, size, size) and k.dtype == torch.float64
    x = torch.randn(2, channels, 6, 6, dtype=torch.float64)
    assert torch.equal(F.conv2d(x, k, padding=size // 2, groups=groups), x)


@pytest.mark.parametrize("with_bias", [True, False])
def test_fold_conv_bn_in_place(with_bias):
    conv = nn.Conv2d(3, 5, 3, padding=1, bias=with_bias)
    bn = _bn(5)
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        ref = bn(conv(x))
        fold_conv_bn(conv, bn)
        out = conv(x)
    assert isinstance(conv.bias, nn.Parameter) and conv.bias.dtype == torch.float32
    assert_close_rel(out, ref, rel=1e-5)


class _Shared(nn.Module):
    """Only conv_a -> bn_a is foldable: bn_b follows a ReLU, conv_c also feeds the sum,
    and bn_d is called twice (one fold would serve one call site only)."""

    def __init__(self):
        super().__init__()
        self.conv_a, self.bn_a = nn.Conv2d(3, 4, 3, padding=1), _bn(4)
        self.bn_b = _bn(4)
        self.conv_c, self.bn_c = nn.Conv2d(4, 4, 1), _bn(4)
        self.conv_d, self.bn_d = nn.Conv2d(4, 4, 1), _bn(4)

    def forward(self, x):
        y = torch.relu(self.bn_a(self.conv_a(x)))
        y = self.bn_b(y)
        c = self.conv_c(y)
        y = self.bn_c(c) + c
        return self.bn_d(self.conv_d(y)) + self.bn_d(y)


def _bns(model):
    return sorted(n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d))


def test_fold_batchnorms_follows_dataflow():
    model = _Shared().eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        ref = model(x)
        assert fold_batchnorms(model) == 1
        out = model(x)
    assert _bns(model) == ["bn_b", "bn_c", "bn_d"]
    assert isinstance(model.bn_a, nn.Identity) and model.conv_a.bias is not None
    assert model.conv_c.bias.shape == (4,) and model.conv_d.bias.shape == (4,)
    assert_close_rel(out, ref, rel=1e-5)


class _Untraceable(nn.Module):
    """Branches on a tensor value, which torch.fx cannot trace: the fallback pairs adjacent
    children of Sequentials, at any depth, and nothing else."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), _bn(4), nn.ReLU())
        self.body = nn.Sequential(nn.Sequential(nn.Conv2d(4, 4, 1), _bn(4)), nn.ReLU(), _bn(4))
        self.conv, self.bn = nn.Conv2d(4, 4, 1), _bn(4)  # not in a Sequential: order is not dataflow

    def forward(self, x):
        y = self.body(self.stem(x))
        if y.sum() > 0:
            y = y + 1
        return self.bn(self.conv(y))


def test_fold_batchnorms_untraceable_falls_back_to_sequentials():
    model = _Untraceable().eval()
    with pytest.raises(Exception):  # noqa: B017 - the premise: fx cannot trace this model
        torch.fx.symbolic_trace(model)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        ref = model(x)
        assert fold_batchnorms(model) == 2
        out = model(x)
    assert _bns(model) == ["bn", "body.2"]
    assert isinstance(model.stem[1], nn.Identity) and isinstance(model.body[0][1], nn.Identity)
    assert_close_rel(out, ref, rel=1e-5)


class _DataDependent(nn.Module):
    def forward(self, x):
        return x + 1 if x.sum() > 0 else x - 1


def test_untraceable_top_level_sequential_is_folded():
    """The fallback at the root: child paths are "0", "1", not ".0"."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), _bn(4), _DataDependent()).eval()
    x = torch.randn(1, 3, 6, 6)
    with torch.no_grad():
        ref = model(x)
        assert fold_batchnorms(model) == 1
        out = model(x)
    assert isinstance(model[1], nn.Identity)
    assert_close_rel(out, ref, rel=1e-5)


def test_top_level_sequential_is_folded():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), _bn(4), nn.ReLU(), nn.Conv2d(4, 2, 1), _bn(2)).eval()
    x = torch.randn(1, 3, 6, 6)
    with torch.no_grad():
        ref = model(x)
        assert fold_batchnorms(model) == 2
        out = model(x)
    assert _bns(model) == []
    assert_close_rel(out, ref, rel=1e-5)


def test_bn_without_running_stats_is_left_alone():
    """A BN that normalises by batch statistics even in eval mode has no fixed affine form."""
    bn = nn.BatchNorm2d(4, track_running_stats=False)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), bn).eval()
    weight, bias = model[0].weight.clone(), model[0].bias.clone()
    x = torch.randn(2, 3, 5, 5)
    with torch.no_grad():
        ref = model(x)
        fold_batchnorms(model)
        out = model(x)
    assert model[1] is bn
    assert torch.equal(model[0].weight, weight) and torch.equal(model[0].bias, bias)
    assert torch.equal(out, ref)
