"""The shuffle-free deployed form of ShuffleNetV2 stages computes what the shuffled one does."""

import copy

import numpy as np
import onnx
import pytest
import torch
from torch import nn
from torchvision.models.shufflenetv2 import InvertedResidual

import leannet
from leannet.deploy.onnx import export_onnx
from leannet.layers.shuffle import (
    ShuffleV2Block,
    UnshuffledStage,
    channel_shuffle,
    split_even_odd,
    unshuffle_stages,
)
from tests.helpers import calibrate_bn


def _stage(unit, in_chs: int, out_chs: int, n: int) -> nn.Sequential:
    units = [unit(in_chs if i == 0 else out_chs, out_chs, 2 if i == 0 else 1) for i in range(n)]
    stage = nn.Sequential(*units).double().eval()
    for m in stage.modules():  # non-trivial BN so every channel is distinguishable
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return stage


def _megvii(i: int, o: int, s: int) -> ShuffleV2Block:
    return ShuffleV2Block(i, o, s, kernel=5)


# (unit, in, out, units): megvii's 5x5 unit (SNet's; unequal halves after a stride-2 unit:
# 24 + 108, 48 + 200, 132 + 132, 24 + 36) and torchvision's; an odd half (29) makes the
# logical split uneven between pieces; 8 units is ShuffleNetV2's longest stage.
CASES = [
    pytest.param(_megvii, 24, 132, 4, id="snet146-stage2"),
    pytest.param(_megvii, 132, 264, 8, id="snet146-stage3"),
    pytest.param(_megvii, 48, 248, 4, id="snet535-stage2"),
    pytest.param(_megvii, 24, 60, 4, id="snet49-stage2"),
    pytest.param(_megvii, 24, 60, 1, id="megvii-stride2-only"),
    pytest.param(_megvii, 24, 62, 5, id="megvii-odd-half"),
    pytest.param(InvertedResidual, 116, 232, 8, id="torchvision-stage3"),
    pytest.param(InvertedResidual, 24, 58, 5, id="odd-half"),
    pytest.param(InvertedResidual, 24, 48, 1, id="stride2-only"),
]


@pytest.mark.parametrize(("unit", "in_chs", "out_chs", "n"), CASES)
def test_unshuffled_stage_equals_the_shuffled_one(unit, in_chs, out_chs, n):
    stage = _stage(unit, in_chs, out_chs, n)
    before = copy.deepcopy(stage.state_dict())
    fast = UnshuffledStage(list(stage.children()))
    x = torch.randn(2, in_chs, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), stage(x), rtol=1e-12, atol=1e-12)
    for k, v in stage.state_dict().items():  # the source units are not modified
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("name", ["shufflenetv2_x0_5", "snet146", pytest.param("snet535", marks=pytest.mark.slow)])
def test_reparameterize_drops_every_shuffle_and_keeps_the_contract(name):
    model = calibrate_bn(leannet.create_model(name, num_classes=10), (3, 64, 64)).double().eval()
    deployed = leannet.reparameterize(model)
    stages = [m for m in deployed.modules() if isinstance(m, UnshuffledStage)]
    assert len(stages) == 3
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(deployed(x), model(x), rtol=1e-10, atol=1e-10)
        # Features (detection necks read them) come out in the original channel order.
        for a, b in zip(deployed.forward_intermediates(x), model.forward_intermediates(x), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    assert unshuffle_stages(deployed) == 0  # nothing left to rewrite


@pytest.mark.parametrize(("name", "shuffles", "gathers"), [("shufflenetv2_x0_5", 3, 3), ("snet49", 0, 0)])
def test_exported_graph_has_one_gather_per_stage(tmp_path, name, shuffles, gathers):
    model = leannet.reparameterize(leannet.create_model(name, num_classes=10))
    ops = [n.op_type for n in onnx.load(export_onnx(model, tmp_path / "m.onnx", (3, 64, 64))).graph.node]
    # The shuffled graph has one Transpose per unit (16); the deployed one, one per stage
    # (torchvision's unit ends a stage in a shuffle; megvii's ends in a plain concat).
    # One Gather per stage where the pass-through order changes (torchvision's unit); none for
    # snet49, whose order is the identity (the train-form snet49 has 26: two per split).
    assert ops.count("Transpose") == shuffles and ops.count("Gather") == gathers
    if not shuffles:
        assert "Reshape" not in ops  # nothing of the splits' reshapes is left


def test_megvii_unit_splits_even_from_odd_and_widths():
    x = torch.arange(12.0).reshape(1, 12, 1, 1)
    even, odd = split_even_odd(x)
    assert even.flatten().tolist() == [0, 2, 4, 6, 8, 10] and odd.flatten().tolist() == [1, 3, 5, 7, 9, 11]
    unit = ShuffleV2Block(24, 132, 2, kernel=5)  # SNet146's first unit: 24 + 108
    assert [_width(unit.branch1), _width(unit.branch2)] == [24, 108]
    assert _width(ShuffleV2Block(132, 132, 1).branch2) == 66
    with torch.no_grad():  # a stride-1 unit passes the even channels through, in place 0..n/2
        x = torch.randn(1, 132, 4, 4)
        torch.testing.assert_close(ShuffleV2Block(132, 132, 1).eval()(x)[:, :66], x[:, 0::2], rtol=0, atol=0)


def _width(branch: nn.Module) -> int:
    return [m for m in branch.modules() if isinstance(m, nn.Conv2d)][-1].out_channels


def test_channel_shuffle_is_a_permutation():
    x = torch.arange(12.0).reshape(1, 12, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 6, 1, 7, 2, 8, 3, 9, 4, 10, 5, 11]


@pytest.mark.parametrize("unit", [InvertedResidual, _megvii], ids=["torchvision", "megvii"])
def test_consecutive_stages_are_right_in_openvino(tmp_path, unit):
    """OpenVINO 2026.4 folds a channel Gather that feeds a dense conv into that conv with the
    inverse permutation; the stage's last concat keeps its Gather away from the next conv."""
    ov = pytest.importorskip("openvino")
    torch.manual_seed(0)
    stages = [_stage(unit, 24, 48, 3).float(), _stage(unit, 48, 96, 2).float()]
    model = nn.Sequential(*[UnshuffledStage(list(s.children())) for s in stages], nn.Conv2d(96, 8, 1)).eval()
    path = export_onnx(model, tmp_path / "s.onnx", (24, 16, 16))
    x = np.random.default_rng(0).standard_normal((1, 24, 16, 16), dtype=np.float32)
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(compiled({0: x})[0], ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
