"""ThunderNet's SNet against the official code (qinzheng93/ThunderNet snet-training, megvii's
ShuffleNetV2 unit): widths, MACs, params, init, preprocessing; fvcore for the MAC count."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models.shufflenetv2 import channel_shuffle as tv_channel_shuffle

import leannet
from leannet.data.images import eval_transform_for
from leannet.layers.shuffle import ShuffleV2Block, channel_shuffle
from leannet.models.snet import SPECS, SNet
from leannet.profile.complexity import count_macs, count_params
from leannet.registry import model_info
from tests.helpers import assert_close_rel, calibrate_bn, fvcore_macs

OFFICIAL_KEYS = Path(__file__).parents[1] / "weights" / "data" / "snet146_official_keys.json"


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


def _out(branch):
    return [m for m in branch.modules() if isinstance(m, torch.nn.Conv2d)][-1].out_channels


@pytest.mark.parametrize(
    ("name", "splits"),
    [  # (projection, main) output widths of each stage's stride-2 unit: in + (out - in)
        ("snet49", [(24, 36), (60, 60), (120, 120)]),
        ("snet146", [(24, 108), (132, 132), (264, 264)]),
        ("snet535", [(48, 200), (248, 248), (496, 496)]),
    ],
)
def test_stride2_units_keep_the_projection_width(name, splits):
    model = leannet.create_model(name)
    firsts = [stage[0] for stage in model.stages[1:]]
    assert all(isinstance(u, ShuffleV2Block) and u.stride == 2 for u in firsts)
    assert [(_out(u.branch1), _out(u.branch2)) for u in firsts] == splits


def test_snet146_has_the_official_tensors():
    # The multiset of tensor shapes equals the official state dict's (recorded from the
    # official definition; the key mapping itself is tested in tests/weights/).
    official = json.loads(OFFICIAL_KEYS.read_text())
    ours = {k: list(v.shape) for k, v in leannet.create_model("snet146").state_dict().items()}
    assert sorted(map(tuple, ours.values())) == sorted(map(tuple, official.values()))
    assert count_params(leannet.create_model("snet146")) == sum(
        int(np.prod(s)) for k, s in official.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))


def _official_macs(spec, k: int = 5, size: int = 224) -> int:
    """Conv + FC multiply-adds of the official network, written out from its layers."""
    h = size // 2
    n = h * h * spec.stem * 3 * 9  # first_conv, 3x3 s2
    h //= 2  # max-pool
    chs = spec.stem
    for out, repeats in zip(spec.stages, (4, 8, 4), strict=True):
        mid, h_in, h = out // 2, h, h // 2
        n += k * k * chs * h * h + chs * chs * h * h  # projection: dw s2, pw
        n += chs * mid * h_in * h_in + k * k * mid * h * h + mid * (out - chs) * h * h  # main
        n += (repeats - 1) * (out // 2 * mid + k * k * mid + mid * (out - out // 2)) * h * h
        chs = out
    if spec.conv5:
        n += chs * spec.conv5 * h * h
        chs = spec.conv5
    return n + chs * 1000  # classifier, no bias


@pytest.mark.parametrize("name", ["snet49", "snet146", "snet535"])
def test_macs_are_the_official_codes(name):
    ours = count_macs(leannet.create_model(name))
    assert ours == _official_macs(SPECS[name])
    paper = model_info(name).published.macs_m
    if name == "snet49":  # no official code: the name's 49 is kept; the official unit counts 51.2M
        assert round(ours / 1e6, 1) == 51.2 and paper == 49
    else:  # 162.5M and 539.9M, given to 0.1M
        assert round(ours / 1e6, 1) == paper


@pytest.mark.parametrize(
    "name", ["snet49", *(pytest.param(n, marks=pytest.mark.slow) for n in ("snet146", "snet535"))]
)
def test_macs_equal_fvcore_conv_and_linear(name):
    pytest.importorskip("fvcore")
    model = leannet.create_model(name)
    assert count_macs(model) == fvcore_macs(model)


def test_params_follow_the_official_unit():
    # SNet49 (no official code): the official unit at Table 1's widths, written out.
    def unit(i, o, s, k=5):
        mid = o // 2
        if s == 2:
            proj = k * k * i + 2 * i + i * i + 2 * i  # dw + BN, pw + BN
            return proj + i * mid + 2 * mid + k * k * mid + 2 * mid + mid * (o - i) + 2 * (o - i)
        return (o // 2) * mid + 2 * mid + k * k * mid + 2 * mid + mid * (o - o // 2) + 2 * (o - o // 2)

    n = 3 * 9 * 24 + 2 * 24  # conv1 + BN
    for i, o, r in ((24, 60, 4), (60, 120, 8), (120, 240, 4)):
        n += unit(i, o, 2) + (r - 1) * unit(o, o, 1)
    n += 240 * 512 + 2 * 512 + 512 * 1000  # conv5 + BN, FC without bias
    assert count_params(leannet.create_model("snet49")) == n


def test_classifier_has_no_bias():
    model = leannet.create_model("snet146")
    assert model.head.fc.bias is None
    model.reset_classifier(10)
    assert model.head.fc.bias is None and model.head.fc.out_features == 10


def test_init_is_the_official_one():
    torch.manual_seed(0)
    model = leannet.create_model("snet146")
    stage4 = model.stages[3]
    dw = stage4[1].branch2[1].conv  # 264 channels x 5x5, std 1 / weight.shape[1] = 1
    pw = stage4[1].branch2[0].conv  # 264 -> 264 1x1, std 1/264
    assert abs(dw.weight.std().item() - 1.0) < 0.05
    assert abs(pw.weight.std().item() * 264 - 1.0) < 0.05
    assert abs(model.stem.conv.weight.std().item() / 0.01 - 1) < 0.2
    assert abs(model.head.fc.weight.std().item() / 0.01 - 1) < 0.05
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(torch.all(m.bias == 1e-4) and torch.all(m.weight == 1) for m in bns)


def test_preprocessing_is_bgr_0_255():
    pre = model_info("snet146").preprocessing()
    assert pre["channel_order"] == "bgr" and pre["mean"] == [0, 0, 0]
    img = Image.new("RGB", (256, 256), (10, 20, 30))
    x = eval_transform_for(pre)(img)
    assert x.shape == (3, 224, 224)
    torch.testing.assert_close(x[:, 0, 0], torch.tensor([30.0, 20.0, 10.0]), rtol=1e-5, atol=1e-4)
    assert model_info("resnet50").preprocessing()["channel_order"] == "rgb"


def test_features_for_detection():
    net = leannet.create_model("snet146", features_only=True, out_indices=(1, 2, 3)).eval()
    maps = net(torch.randn(1, 3, 320, 320))  # ThunderNet's detection input
    assert [tuple(m.shape[1:]) for m in maps] == [(132, 40, 40), (264, 20, 20), (528, 10, 10)]


@pytest.mark.slow  # a first compile takes 12-15 s on 2 cores; test_contract compiles one family by default
def test_torch_compile_small():
    # One unit per stage: the same ops as snet49 at a fraction of the compile time.
    model = calibrate_bn(SNet(SPECS["snet49"], num_classes=10, repeats=(1, 2, 1)))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert_close_rel(torch.compile(model)(x), model(x), 1e-4)


@pytest.mark.slow
def test_torch_compile_snet49():
    model = calibrate_bn(leannet.create_model("snet49", num_classes=10))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert_close_rel(torch.compile(model)(x), model(x), 1e-4)
