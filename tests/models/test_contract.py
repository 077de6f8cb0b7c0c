"""Every registered model keeps the contract: forward/backward, heads, features, folding."""

import pytest
import torch

import leannet
from leannet.errors import ShapeError, UnknownModelError
from leannet.registry import model_info
from tests.helpers import assert_close_rel, calibrate_bn

# Larger siblings of a family already covered here at default tier (same blocks, only deeper
# and wider): their contract runs in the slow tier. TResNet-L/XL cost 40-80 s each per test on 2 cores.
HEAVY = {"tresnet_l", "tresnet_xl"}
MODELS = [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in leannet.list_models()]
SIZE = 64


def _input_size(name):
    return (3, SIZE, SIZE)


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward(name):
    model = leannet.create_model(name, num_classes=7)
    x = torch.randn(2, *_input_size(name))
    out = model(x)
    assert out.shape == (2, 7)
    out.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads), "some parameters got no gradient"
    assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", MODELS)
def test_head_contract(name):
    model = leannet.create_model(name, num_classes=5).eval()
    x = torch.randn(1, *_input_size(name))
    feats = model.forward_features(x)
    assert feats.dim() == 4
    logits = model.forward_head(feats)
    torch.testing.assert_close(logits, model(x))
    pre = model.forward_head(feats, pre_logits=True)
    assert pre.shape == (1, model.num_features)
    model.reset_classifier(0)
    torch.testing.assert_close(model(x), pre)
    model.reset_classifier(3)
    assert model(x).shape == (1, 3)


@pytest.mark.parametrize("name", MODELS)
def test_features_only(name):
    net = leannet.create_model(name, features_only=True).eval()
    x = torch.randn(1, *_input_size(name))
    maps = net(x)
    assert len(maps) == len(net.feature_info)
    for fmap, info in zip(maps, net.feature_info, strict=True):
        assert fmap.shape[1] == info.channels, info
        assert SIZE // fmap.shape[-1] == info.stride, info
    strides = [i.stride for i in net.feature_info]
    assert strides == sorted(strides) and strides[-1] == 32


def test_features_only_out_indices_prunes():
    full = leannet.create_model("pplcnet_x1_0")
    net = leannet.create_model("pplcnet_x1_0", features_only=True, out_indices=(1, 2))
    assert [i.stride for i in net.feature_info] == [4, 8]
    assert sum(p.numel() for p in net.parameters()) < sum(p.numel() for p in full.parameters()) / 10
    assert [m.shape[1] for m in net(torch.randn(1, 3, 64, 64))] == [i.channels for i in net.feature_info]


@pytest.mark.parametrize("name", MODELS)
def test_reparameterize_folds_every_bn(name):
    # float64 so that the comparison checks the algebra, not float32 rounding over 50 layers.
    model = calibrate_bn(leannet.create_model(name, num_classes=10), _input_size(name)).double()
    x = torch.randn(2, *_input_size(name), dtype=torch.float64)
    with torch.no_grad():
        ref = model(x)
        deployed = leannet.reparameterize(model)
        out = deployed(x)
    assert deployed is not model
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()), "original was modified"
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in deployed.modules())
    assert_close_rel(out, ref, rel=1e-10)


def test_reparameterize_float32_tolerance():
    model = calibrate_bn(leannet.create_model("pplcnet_x1_0"))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert_close_rel(leannet.reparameterize(model)(x), model(x), rel=1e-4)


def test_in_chans():
    model = leannet.create_model("pplcnet_x0_25", in_chans=1, num_classes=10).eval()
    assert model(torch.randn(1, 1, 32, 32)).shape == (1, 10)
    with pytest.raises(ShapeError, match=r"expects input of shape \(N, 1, H, W\)"):
        model(torch.randn(1, 3, 32, 32))


def test_unknown_model_names_closest():
    with pytest.raises(UnknownModelError, match="did you mean pplcnet_"):
        leannet.create_model("pp_lcnet")


def test_timm_alias_resolves():
    assert model_info("lcnet_100").name == "pplcnet_x1_0"
    assert "pplcnet_x1_0" in leannet.list_models("lcnet_1*")


def test_unknown_kwarg_is_an_error():
    from leannet.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown argument"):
        leannet.create_model("pplcnet_x1_0", widht=2)


def test_channels_last_matches():
    model = calibrate_bn(leannet.create_model("pplcnet_x0_5"))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        out = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    assert_close_rel(out, ref, 1e-5)


# One family in the default tier: a first compile (cold Inductor cache, as on a fresh CI machine)
# takes 11-32 s each on 2 cores; the other families compile in the slow tier.
@pytest.mark.parametrize("name", ["pplcnet_x0_25", pytest.param("mobilenetv1_x1_0", marks=pytest.mark.slow),
                                  pytest.param("mobilenetv3_small_x1_0", marks=pytest.mark.slow)])
def test_torch_compile(name):
    model = calibrate_bn(leannet.create_model(name, num_classes=10))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        out = torch.compile(model)(x)
    assert_close_rel(out, ref, 1e-4)
