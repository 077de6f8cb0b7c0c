"""GhostNet against timm's implementation, fvcore's MAC count and the paper's Table 7."""

import pytest
import torch

import leannet
from leannet.models.ghostnet import GhostModule
from leannet.profile.complexity import count_macs, count_params
from leannet.registry import model_info
from tests.helpers import assert_close_rel, calibrate_bn

NAMES = ["ghostnet_x0_5", "ghostnet_x1_0", "ghostnet_x1_3"]
TIMM = {"ghostnet_x0_5": "ghostnet_050", "ghostnet_x1_0": "ghostnet_100", "ghostnet_x1_3": "ghostnet_130"}
# Table 7 rounds params to 0.1M and MACs to 1M; 1.3x computes to 7.36M / 227M.
PAPER_PARAMS_REL = 0.02
PAPER_MACS_REL = 0.02


@pytest.mark.parametrize("name", NAMES)
def test_params_and_macs_equal_timm(name):
    timm = pytest.importorskip("timm")
    ref = timm.create_model(TIMM[name], pretrained=False)
    model = leannet.create_model(name)
    assert count_params(model) == count_params(ref)
    assert count_macs(model, (3, 64, 64)) == count_macs(ref, (3, 64, 64))


def test_state_dict_lines_up_with_timm():
    # Same tensors, same shapes, same order: a converter is a pure key rename.
    timm = pytest.importorskip("timm")
    ours = leannet.create_model("ghostnet_x1_0").state_dict()
    theirs = timm.create_model("ghostnet_100", pretrained=False).state_dict()
    assert [v.shape for v in ours.values()] == [v.shape for v in theirs.values()]


def test_outputs_equal_timm_with_same_weights():
    # Independent check of the forward pass (activation placement, SE gate, shortcut):
    # timm's weights copied positionally into ours must give the same logits.
    timm = pytest.importorskip("timm")
    ref = calibrate_bn(timm.create_model("ghostnet_050", pretrained=False), (3, 64, 64))
    model = leannet.create_model("ghostnet_x0_5").eval()
    model.load_state_dict(dict(zip(model.state_dict(), ref.state_dict().values(), strict=True)))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert_close_rel(model(x), ref(x), rel=1e-5)


def test_macs_match_fvcore():
    # One width suffices: the widths share every code path, and all three equal timm (above).
    fvcore = pytest.importorskip("fvcore.nn")
    model = leannet.create_model("ghostnet_x1_0").eval()
    flops = fvcore.FlopCountAnalysis(model, torch.zeros(1, 3, 224, 224))
    flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_op = flops.by_operator()
    # fvcore also counts BN and pooling; the papers' "FLOPs" are conv + FC multiply-adds.
    ref = by_op["conv"] + by_op["linear"]
    assert count_macs(model) == ref  # exactly: a skipped ghost or SE conv would show


@pytest.mark.parametrize("name", NAMES)
def test_params_and_macs_near_paper(name):
    with torch.device("meta"):  # shapes only: no memory, no init, no arithmetic
        model = leannet.create_model(name)
        params_m, macs_m = count_params(model) / 1e6, count_macs(model) / 1e6
    facts = model_info(name).published
    assert facts.source == "arXiv:1911.11907 Table 7"
    assert abs(params_m - facts.params_m) <= PAPER_PARAMS_REL * facts.params_m, params_m
    assert abs(macs_m - facts.macs_m) <= PAPER_MACS_REL * facts.macs_m, macs_m


def test_ghost_module_concat_and_slice():
    m = GhostModule(8, 7).eval()  # odd width: 4 intrinsic + 4 ghost maps, sliced to 7
    assert m.primary.conv.out_channels == 4 and m.cheap.conv.groups == 4
    x = torch.randn(1, 8, 5, 5)
    with torch.no_grad():
        out = m(x)
        intrinsic = m.primary(x)
    assert out.shape == (1, 7, 5, 5)
    torch.testing.assert_close(out[:, :4], intrinsic)


@pytest.mark.parametrize(("width", "slices"), [(8, 0), (7, 1)])
def test_ghost_module_slices_only_an_odd_width(tmp_path, width, slices):
    # A full-width slice exports as a Slice that copies (and blocks OpenVINO's in-place concat).
    onnx = pytest.importorskip("onnx")
    from leannet.deploy.onnx import export_onnx

    path = export_onnx(GhostModule(8, width).eval(), tmp_path / "g.onnx", input_size=(8, 5, 5))
    assert [n.op_type for n in onnx.load(path).graph.node].count("Slice") == slices


def test_se_only_where_table_1_puts_it():
    model = leannet.create_model("ghostnet_x1_0")
    se_blocks = [n for n, m in model.named_modules() if type(m).__name__ == "SqueezeExcite"]
    # Table 1: SE in both 40-channel blocks, both 112-channel blocks and three 160-channel ones.
    assert len(se_blocks) == 7
    assert model.stages[4][2].se.conv_reduce.out_channels == 240  # make_divisible(960/4, 4)


def test_feature_info_channels():
    net = leannet.create_model("ghostnet_x1_0", features_only=True)
    assert [(i.channels, i.stride) for i in net.feature_info] == [
        (16, 2), (24, 4), (40, 8), (112, 16), (160, 32)]


@pytest.mark.slow  # the first compile of a ~100-op graph takes tens of seconds on 2 cores
def test_torch_compile():
    model = calibrate_bn(leannet.create_model("ghostnet_x0_5", num_classes=10))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        out = torch.compile(model)(x)
    assert_close_rel(out, ref, 1e-4)
