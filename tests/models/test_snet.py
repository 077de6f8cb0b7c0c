"""ThunderNet's SNet against Table 1, torchvision's ShuffleNetV2 (same unit, 3x3 kernels),
fvcore, and the paper's MFLOPs."""

import pytest
import torch
import torchvision.models as tvm
from torchvision.models.shufflenetv2 import channel_shuffle as tv_channel_shuffle

import leannet
from leannet.layers.shuffle import channel_shuffle
from leannet.models.snet import SPECS, SNet, Spec
from leannet.profile.complexity import count_macs, count_params
from leannet.registry import model_info
from tests.helpers import assert_close_rel, calibrate_bn, fvcore_macs

# ShuffleNetV2 1x written as an SNet spec: same unit, 3x3 depthwise kernels.
SHUFFLENETV2_X1_0 = Spec(stem=24, stages=(116, 232, 464), conv5=1024)


def test_unit_is_shufflenetv2():
    # With 3x3 kernels SNet's code must rebuild torchvision's ShuffleNetV2 1x exactly:
    # same tensors in the same order, same outputs once the weights are shared.
    ours = calibrate_bn(SNet(SHUFFLENETV2_X1_0, kernel=3))
    ref = tvm.shufflenet_v2_x1_0().eval()
    src, dst = ours.state_dict(), ref.state_dict()
    assert [tuple(v.shape) for v in src.values()] == [tuple(v.shape) for v in dst.values()]
    ref.load_state_dict(dict(zip(dst, src.values(), strict=True)))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert_close_rel(ours(x), ref(x), 1e-5)
    assert count_macs(ours) == count_macs(ref)


def test_channel_shuffle_matches_torchvision():
    x = torch.arange(2 * 12 * 2 * 2.0).view(2, 12, 2, 2)
    torch.testing.assert_close(channel_shuffle(x, 2), tv_channel_shuffle(x, 2), rtol=0, atol=0)
    assert channel_shuffle(x, 2)[0, :4, 0, 0].tolist() == [0, 24, 4, 28]  # channels 0, 6, 1, 7


@pytest.mark.parametrize(
    ("name", "widths", "features"),
    [  # ThunderNet Table 1: conv1, stage2..4; conv5 512 for SNet49 only
        ("snet49", [24, 60, 120, 240], 512),
        ("snet146", [24, 132, 264, 528], 528),
        ("snet535", [48, 248, 496, 992], 992),
    ],
)
def test_table1_widths_and_5x5(name, widths, features):
    model = leannet.create_model(name)
    assert [i.channels for i in model.feature_info] == widths
    assert [i.stride for i in model.feature_info] == [4, 8, 16, 32]
    assert model.num_features == features
    assert [len(s) for s in model.stages[1:]] == [4, 8, 4]
    dw = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert dw and all(m.kernel_size == (5, 5) and m.groups == m.in_channels for m in dw)
    assert all(m.kernel_size in ((1, 1), (3, 3)) for m in model.modules()
               if isinstance(m, torch.nn.Conv2d) and m.groups == 1)


@pytest.mark.parametrize(
    ("name", "tol"),
    [
        ("snet535", 0.005),  # 535.4M: Table 1 counted as multiply-adds reproduces the name
        ("snet49", 0.05),  # 51.2M (+4.5%): nominal name, see the registry note
        ("snet146", 0.11),  # 161.1M (+10.4%): nominal name, see the registry note
    ],
)
def test_macs_vs_paper(name, tol):
    paper = model_info(name).published.macs_m
    ours = count_macs(leannet.create_model(name)) / 1e6
    assert abs(ours / paper - 1) <= tol
    assert ours > paper  # the gaps are all excess: nothing in Table 1 is missing


@pytest.mark.parametrize(
    "name", ["snet49", *(pytest.param(n, marks=pytest.mark.slow) for n in ("snet146", "snet535"))]
)
def test_macs_equal_fvcore_conv_and_linear(name):
    pytest.importorskip("fvcore")
    model = leannet.create_model(name)
    ref = fvcore_macs(model)
    assert abs(count_macs(model) - ref) <= 0.01 * ref


def test_params_follow_table1():
    # No published params: check against a count written out from Table 1 for SNet49.
    def unit(i, o, s, k=5):
        h = o // 2
        b2 = (i if s == 2 else h) * h + k * k * h + h * h + 3 * 2 * h  # 3 convs + 3 BNs
        b1 = (k * k * i + 2 * i + i * h + 2 * h) if s == 2 else 0
        return b1 + b2

    n = 3 * 9 * 24 + 2 * 24  # conv1 + BN
    for i, o, r in ((24, 60, 4), (60, 120, 8), (120, 240, 4)):
        n += unit(i, o, 2) + (r - 1) * unit(o, o, 1)
    n += 240 * 512 + 2 * 512 + 512 * 1000 + 1000  # conv5 + BN, FC
    assert count_params(leannet.create_model("snet49")) == n


def test_features_for_detection():
    net = leannet.create_model("snet146", features_only=True, out_indices=(1, 2, 3)).eval()
    maps = net(torch.randn(1, 3, 320, 320))  # ThunderNet's detection input
    assert [tuple(m.shape[1:]) for m in maps] == [(132, 40, 40), (264, 20, 20), (528, 10, 10)]


def test_torch_compile_small():
    # One unit per stage: the same ops as snet49 at a fraction of the compile time.
    model = calibrate_bn(SNet(SPECS["snet49"], num_classes=10, repeats=(1, 1, 1)))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert_close_rel(torch.compile(model)(x), model(x), 1e-4)


@pytest.mark.slow
def test_torch_compile_snet49():
    model = calibrate_bn(leannet.create_model("snet49", num_classes=10))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert_close_rel(torch.compile(model)(x), model(x), 1e-4)
