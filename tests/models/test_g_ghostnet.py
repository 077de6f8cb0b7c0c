"""G-GhostNet: stage structure as the official code builds it, and the published sizes."""

import pytest
import torch

import leannet
from leannet.models.g_ghostnet import (
    CHEAP_RATIO,
    CONFIGS,
    GGhostRegNet,
    GGhostStage,
    is_ghost_stage,
)
from leannet.profile.complexity import count_macs, count_params
from leannet.registry import model_info
from tests.helpers import assert_close_rel, calibrate_bn

PUBLISHED = ["g_ghost_regnetx_032", "g_ghost_regnetx_040", "g_ghost_regnetx_080", "g_ghost_regnetx_160"]
# The README rounds params to 0.1M and FLOPs to 0.1B (so 2.2B may be 2.15-2.25B); measured
# differences are <= 0.2% for params and <= 1.3% for MACs (040: 2228M vs "2.2B").
PARAMS_REL = 0.01
MACS_REL = 0.02


@pytest.mark.parametrize("name", PUBLISHED)
def test_params_and_macs_near_published(name):
    with torch.device("meta"):  # shapes only: no memory, no init, no arithmetic
        model = leannet.create_model(name)
        params_m, macs_m = count_params(model) / 1e6, count_macs(model) / 1e6
    facts = model_info(name).published
    assert abs(params_m - facts.params_m) <= PARAMS_REL * facts.params_m, params_m
    assert abs(macs_m - facts.macs_m) <= MACS_REL * facts.macs_m, macs_m


def test_macs_match_fvcore():
    fvcore = pytest.importorskip("fvcore.nn")
    model = leannet.create_model("g_ghost_regnetx_032").eval()
    flops = fvcore.FlopCountAnalysis(model, torch.zeros(1, 3, 224, 224))
    flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_op = flops.by_operator()
    ref = by_op["conv"] + by_op["linear"]  # fvcore also counts BN and pooling
    assert count_macs(model) == ref  # exactly: a skipped ghost or SE conv would show


def test_which_stages_are_ghost():
    # Official code: stage 3 always; stages 2 and 4 when deeper than two blocks.
    with torch.device("meta"):
        kinds = {size: [type(s).__name__ for s in GGhostRegNet(CONFIGS[size]).stages] for size in ("002", "032")}
    assert kinds["002"] == ["Sequential", "Sequential", "GGhostStage", "GGhostStage"]  # depths 1,1,4,7
    assert kinds["032"] == ["Sequential", "GGhostStage", "GGhostStage", "Sequential"]  # depths 2,6,15,2
    assert all(not is_ghost_stage(0, d) for d in range(1, 20))


def test_only_published_sizes_are_registered():
    assert leannet.list_models("g_ghost*") == PUBLISHED
    assert all(model_info(n).published.source.endswith("g_ghost_pytorch/readme.md") for n in PUBLISHED)


@pytest.mark.parametrize("size", list(CONFIGS))
def test_ghost_stage_split(size):
    cfg = CONFIGS[size]
    with torch.device("meta"):
        model = GGhostRegNet(cfg)
    for stage, depth, width in zip(model.stages, cfg.depths, cfg.widths, strict=True):
        if not isinstance(stage, GGhostStage):
            assert len(stage) == depth
            continue
        gw = stage.blocks[0].conv2.conv.in_channels // stage.blocks[0].conv2.conv.groups
        assert gw == int(cfg.group_width * 0.75)
        # complex width: the largest multiple of the group width within (1 - lambda) * width
        assert stage.complex_chs % gw == 0
        assert stage.complex_chs <= (1 - CHEAP_RATIO) * width < stage.complex_chs + gw
        assert stage.ghost_chs == width - stage.complex_chs
        assert stage.cheap.conv.in_channels == stage.cheap.conv.out_channels == stage.ghost_chs
        assert len(stage.blocks) == depth - 2  # + base + end = depth blocks
        assert stage.merge[1].conv.in_channels == width + (depth - 2) * stage.complex_chs


def test_ghost_share_of_reference_model():
    # 3.2GF stage 3: 432 channels, complex group width 36 -> exactly lambda * 432 ghost maps.
    with torch.device("meta"):
        stage = leannet.create_model("g_ghost_regnetx_032").stages[2]
    assert stage.ghost_chs == CHEAP_RATIO * 432 and len(stage.blocks) == 13


def _end_input(stage, x):
    seen = []
    handle = stage.end.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
    with torch.no_grad():
        stage(x)
    handle.remove()
    return seen[0]


def test_ghost_branch_skips_complex_blocks():
    # With the mix branch silenced, the ghost maps depend on the first block only: changing
    # the complex blocks must change the complex maps and leave the ghost maps alone.
    stage = GGhostStage(16, 32, depth=4, group_width=8, stride=1)
    calibrate_bn(stage, (16, 8, 8))
    last_bn = stage.merge[2].bn
    with torch.no_grad():
        last_bn.weight.zero_()
        last_bn.bias.zero_()
    x = torch.randn(2, 16, 8, 8)
    before = _end_input(stage, x)
    with torch.no_grad():
        stage.blocks[0].conv1.conv.weight.mul_(-1.5)
    after = _end_input(stage, x)
    c = stage.complex_chs
    assert not torch.allclose(before[:, :c], after[:, :c])
    torch.testing.assert_close(before[:, c:], after[:, c:])


def test_mix_branch_reaches_ghost_maps():
    stage = calibrate_bn(GGhostStage(16, 32, depth=4, group_width=8, stride=1), (16, 8, 8))
    x = torch.randn(2, 16, 8, 8)
    before = _end_input(stage, x)
    with torch.no_grad():
        stage.blocks[-1].conv3.bn.bias.add_(1.0)
    after = _end_input(stage, x)
    assert not torch.allclose(before[:, stage.complex_chs:], after[:, stage.complex_chs:])


@pytest.mark.slow  # the first compile of a ~100-op graph takes tens of seconds on 2 cores
def test_torch_compile():
    model = calibrate_bn(GGhostRegNet(CONFIGS["002"], num_classes=10))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        out = torch.compile(model)(x)
    assert_close_rel(out, ref, 1e-4)
