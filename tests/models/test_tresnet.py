"""TResNet against timm's definition (the BatchNorm port of the official code), fvcore, the
official SpaceToDepth order, a hand-computed blur, and the paper's FLOPs."""

import pytest
import torch
import torch.nn.functional as F

import leannet
from leannet.errors import ShapeError
from leannet.models.tresnet import BlurPool, SpaceToDepth, TResNet
from leannet.profile.complexity import count_macs, count_params
from leannet.registry import model_info
from tests.helpers import assert_close_rel, calibrate_bn, fvcore_macs


def _official_space_to_depth(x: torch.Tensor, bs: int = 4) -> torch.Tensor:
    # The official SpaceToDepth (Alibaba-MIIL/TResNet, kept by timm): view -> permute(0,3,5,1,2,4).
    n, c, h, w = x.shape
    x = x.view(n, c, h // bs, bs, w // bs, bs).permute(0, 3, 5, 1, 2, 4)
    return x.reshape(n, c * bs * bs, h // bs, w // bs)


@pytest.mark.parametrize("name", ["tresnet_m", "tresnet_l", "tresnet_xl"])
def test_params_equal_timm(name):
    timm = pytest.importorskip("timm")  # v1 definitions; timm's tresnet_v2_* are other networks
    # On the meta device: no memory, no init cost; counts only need shapes.
    with torch.device("meta"):
        ours = leannet.create_model(name)
        ref = timm.create_model(name, pretrained=False)
    assert count_params(ours) == count_params(ref)
    # Same tensors in the same order (the layout weight converters rely on).
    ours_shapes = [tuple(v.shape) for v in ours.state_dict().values()]
    ref_shapes = [tuple(v.shape) for v in ref.state_dict().values()]
    assert ours_shapes == ref_shapes


def test_outputs_equal_timm_with_same_weights():
    timm = pytest.importorskip("timm")
    ours = calibrate_bn(leannet.create_model("tresnet_m"))
    ref = timm.create_model("tresnet_m", pretrained=False).eval()
    src, dst = ours.state_dict(), ref.state_dict()
    assert len(src) == len(dst)
    ref.load_state_dict(dict(zip(dst, src.values(), strict=True)))
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert_close_rel(ours(x), ref(x), 1e-5)


def test_macs_equal_fvcore_conv_and_linear():
    pytest.importorskip("fvcore")
    model = leannet.create_model("tresnet_m")
    ref = fvcore_macs(model)  # includes the blur, a functional conv2d
    ours = count_macs(model)
    assert ours == ref  # exactly: a skipped SE or blur conv would show
    assert round(ours / 1e6, 1) == 5736.5  # = timm's tresnet_m; pins the docs note


def test_macs_vs_paper():
    # Paper: 5.5G (its ResNet-50 comparison table). Ours is 4.3% higher; the residual blocks'
    # own convs alone give the paper's figure, so the paper's counter most likely left out the
    # stem conv and the 1x1 shortcut convs (registry note).
    model = leannet.create_model("tresnet_m").eval()
    paper = model_info("tresnet_m").published.macs_m * 1e6
    total = count_macs(model)
    assert 0.03 < total / paper - 1 < 0.05
    macs = {}

    def hook(name):
        def record(mod, inp, out):
            macs[name] = out.numel() * mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        return record

    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(hook(name))
    with torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    blocks = sum(v for k, v in macs.items() if k.startswith("stages.") and ".downsample." not in k)
    assert abs(blocks / paper - 1) < 0.005
    assert blocks + macs["stem.conv.conv"] + model.head.fc.weight.numel() < total  # shortcuts remain


def test_space_to_depth_is_the_official_order():
    x = torch.randn(2, 3, 8, 12)
    out = SpaceToDepth(4)(x)
    torch.testing.assert_close(out, _official_space_to_depth(x), rtol=0, atol=0)
    # Spelled out: channel (4 * row + col) * C + c of cell (i, j) is pixel (4i + row, 4j + col).
    n, c, i, j, row, col = 1, 2, 1, 2, 3, 1
    assert out[n, (4 * row + col) * 3 + c, i, j] == x[n, c, 4 * i + row, 4 * j + col]
    # pixel_unshuffle orders the same values c-major: a channel permutation, not the same tensor.
    pu = F.pixel_unshuffle(x, 4)
    assert not torch.equal(out, pu)
    perm = [c_ * 16 + cell for cell in range(16) for c_ in range(3)]
    torch.testing.assert_close(out, pu[:, perm], rtol=0, atol=0)


def test_blur_pool_hand_computed():
    # x[i, j] = 4i + j. Reflect padding mirrors row 1 into row -1, so a border output averages
    # rows (0, 1) with weights (1/2, 1/2); interior ones see (1, 2, 3) with (1/4, 1/2, 1/4).
    # Outputs sit at rows/cols 0 and 2: row part 4 * (0.5, 2), col part (0.5, 2).
    x = torch.arange(16.0).view(1, 1, 4, 4)
    expected = torch.tensor([[[[2.5, 4.0], [8.5, 10.0]]]])
    torch.testing.assert_close(BlurPool(1)(x), expected)
    # An impulse returns the [1,2,1]x[1,2,1]/16 kernel, per channel, with no channel mixing.
    imp = torch.zeros(1, 2, 7, 7)
    imp[0, 1, 3, 3] = 16.0
    out = BlurPool(2, stride=1)(imp)
    torch.testing.assert_close(out[0, 1, 2:5, 2:5], torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]))
    assert out[0, 0].abs().sum() == 0
    assert "filt" not in BlurPool(4).state_dict()  # fixed, not a weight


def test_structure_follows_the_paper():
    model = leannet.create_model("tresnet_m")
    kinds = [type(stage[0]).__name__ for stage in model.stages]
    assert kinds == ["BasicBlock", "BasicBlock", "Bottleneck", "Bottleneck"]
    se = [all(not isinstance(b.se, torch.nn.Identity) for b in stage) for stage in model.stages]
    assert se == [True, True, True, False]
    assert [len(s) for s in model.stages] == [3, 4, 11, 3]
    # SE reductions: max(C/4, 64) in basic blocks, max(4C/8, 64) in bottlenecks (C = planes).
    assert model.stages[0][0].se.conv_reduce.out_channels == 64
    assert model.stages[2][0].se.conv_reduce.out_channels == 128
    # No conv has a stride: downsampling is the blur (main path) or a 2x2 avg pool (shortcut).
    assert all(m.stride == (1, 1) for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert sum(isinstance(m, BlurPool) for m in model.modules()) == 3
    slopes = {m.negative_slope for m in model.modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {1e-2, 1e-3}
    assert [i.channels for i in model.feature_info] == [64, 128, 1024, 2048]
    assert model_info("tresnet_l").published.top1 == 81.5
    assert int(64 * 1.3) == leannet.create_model("tresnet_xl").stem.conv.conv.out_channels


def test_preprocessing_is_unnormalised():
    info = model_info("tresnet_m")
    assert info.mean == (0.0, 0.0, 0.0) and info.std == (1.0, 1.0, 1.0)
    assert info.input_size == (3, 224, 224)


@pytest.mark.parametrize("size", [(66, 64), (64, 30), (16, 16)])
def test_bad_input_size_is_a_clear_error(size):
    model = TResNet(depths=(1, 1, 1, 1), width=0.25)
    with pytest.raises(ShapeError, match=r"divisible by 4 .* at least 32, got \d+x\d+"):
        model(torch.randn(1, 3, *size))


def test_sizes_not_multiple_of_32_work():
    # Only the 4x4 SpaceToDepth constrains the size; stride-2 stages round up (ceil).
    model = TResNet(depths=(1, 1, 1, 1), width=0.25, num_classes=3).eval()
    assert model(torch.randn(1, 3, 36, 44)).shape == (1, 3)
    assert [m.shape[-1] for m in model.forward_intermediates(torch.randn(1, 3, 44, 44))] == [11, 6, 3, 2]


def test_channels_last_matches():
    model = calibrate_bn(TResNet(depths=(1, 1, 1, 1), width=0.5))
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        out = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    assert_close_rel(out, ref, 1e-5)


@pytest.mark.slow  # a first compile takes 12-15 s on 2 cores; test_contract compiles one family by default
def test_torch_compile_small():
    # Same blocks as tresnet_m at a fraction of the compile time; tresnet_m itself is slow-tier.
    model = calibrate_bn(TResNet(depths=(1, 1, 1, 1), width=0.25, num_classes=10))
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert_close_rel(torch.compile(model)(x), model(x), 1e-4)


@pytest.mark.slow
def test_torch_compile_tresnet_m():
    model = calibrate_bn(leannet.create_model("tresnet_m", num_classes=10))
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert_close_rel(torch.compile(model)(x), model(x), 1e-4)


def test_onnx_export_matches(tmp_path):
    # The stem's pixel_unshuffle + channel swap and the reflect-padded blur must survive export
    # in the official channel order (a reordering would still run, with wrong numbers).
    ort = pytest.importorskip("onnxruntime")
    from leannet.deploy.onnx import export_onnx

    model = calibrate_bn(TResNet(depths=(1, 1, 1, 1), width=0.25, num_classes=10))
    path = export_onnx(leannet.reparameterize(model), tmp_path / "t.onnx", input_size=(3, 64, 64))
    x = torch.rand(1, 3, 64, 64)
    out = ort.InferenceSession(str(path)).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        assert_close_rel(torch.from_numpy(out), model(x), 1e-5)
