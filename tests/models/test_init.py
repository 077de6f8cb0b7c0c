"""Initialisation as each family's official code does it (issue 15), checked statistically.

Only tensors with at least MIN_N elements are judged, so a sample standard deviation is within
a few percent of the true one (relative standard error ~ 1/sqrt(2n) < 1% at n = 4096); the
tolerance, 6 standard errors, can't be hit by chance over a model's layers, while a wrong fan
mode or distribution is off by tens of percent or more in at least one layer (checked: each
rule below fails against the other families' rules).
"""

import math

import pytest
import torch
from torch import nn

import leannet

MIN_N = 4096


def fans(w: torch.Tensor) -> tuple[int, int]:
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(w)
    return fan_in, fan_out


def assert_std(w: torch.Tensor, expected: float, what: str) -> None:
    n = w.numel()
    rel = w.std().item() / expected - 1
    assert abs(rel) < 6 / math.sqrt(2 * n), f"{what}: std {w.std().item():.4g}, rule says {expected:.4g}"
    assert abs(w.mean().item()) < 6 * expected / math.sqrt(n), f"{what}: mean {w.mean().item():.3g}"


def assert_normal(w: torch.Tensor, std: float, what: str) -> None:
    """N(0, std^2): the std, and tails past sqrt(3) std (a uniform of that std has none)."""
    assert_std(w, std, what)
    assert w.abs().max().item() > 2.5 * std, f"{what}: no tails, not a normal"


def assert_uniform(w: torch.Tensor, bound: float, what: str) -> None:
    """U(-bound, bound): never past the bound, std bound/sqrt(3)."""
    assert w.abs().max().item() <= bound, f"{what}: past the bound {bound:.4g}"
    assert_std(w, bound / math.sqrt(3), what)


def big(model: nn.Module, kind: type) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, kind) and m.weight.numel() >= MIN_N]


def assert_bn_identity(model: nn.Module) -> None:
    for name, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.equal(m.weight, torch.ones_like(m.weight)), name
            assert torch.equal(m.bias, torch.zeros_like(m.bias)), name


def test_pplcnet_init_is_paddleclas():
    """ppcls pp_lcnet.py: KaimingNormal() convs (Paddle's is fan-in: std sqrt(2/fan_in)), the
    other convs at Paddle's Conv2D default (the same rule without groups), zero conv biases,
    the Linear at Paddle's default, Xavier-uniform, with a zero bias."""
    torch.manual_seed(0)
    model = leannet.create_model("pplcnet_x1_0", head_bias=True)
    convs = big(model, nn.Conv2d)
    # the layers where fan-in and fan-out disagree are there to judge (5x5 depthwise, head)
    assert any(fans(m.weight)[0] != fans(m.weight)[1] for _, m in convs) and len(convs) > 10
    for name, m in convs:
        assert_normal(m.weight, math.sqrt(2 / fans(m.weight)[0]), name)
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and m.bias is not None:
            assert not m.bias.any(), name
    fc = model.head.fc
    assert_uniform(fc.weight, math.sqrt(6 / sum(fans(fc.weight))), "head.fc")
    assert not fc.bias.any()
    assert_bn_identity(model)


@pytest.mark.parametrize("name", ["ghostnet_x1_0", "ghostnet_x1_3"])
def test_ghostnet_init_is_torch_default(name):
    """huawei-noah ghostnet.py sets no init: PyTorch's defaults, weights and biases
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for convs and the Linear, BN 1 and 0."""
    torch.manual_seed(0)
    model = leannet.create_model(name)
    layers = big(model, nn.Conv2d) + big(model, nn.Linear)
    assert len(layers) > 10
    for lname, m in layers:
        bound = 1 / math.sqrt(fans(m.weight)[0])
        assert_uniform(m.weight, bound, lname)
    biased = [(n, m) for n, m in model.named_modules()
              if isinstance(m, nn.Conv2d | nn.Linear) and m.bias is not None]
    assert biased  # SE convs, head conv, classifier
    for lname, m in biased:
        bound = 1 / math.sqrt(fans(m.weight)[0])
        assert m.bias.abs().max().item() <= bound and m.bias.any(), lname
    assert_bn_identity(model)


def test_g_ghostnet_init_is_official():
    """g_ghost_regnet.py: Kaiming-normal fan-out convs, BN 1 and 0, and its fc left at
    nn.Linear's default (U(-1/sqrt(in), 1/sqrt(in)) for weight and bias)."""
    torch.manual_seed(0)
    model = leannet.create_model("g_ghost_regnetx_032")
    convs = big(model, nn.Conv2d)
    assert any(fans(m.weight)[0] != fans(m.weight)[1] for _, m in convs)  # grouped 3x3 convs
    for name, m in convs:
        assert_normal(m.weight, math.sqrt(2 / fans(m.weight)[1]), name)
    fc = model.head.fc
    bound = 1 / math.sqrt(fc.in_features)
    assert_uniform(fc.weight, bound, "head.fc.weight")
    assert fc.bias.abs().max().item() <= bound and fc.bias.std().item() > bound / 3
    assert_bn_identity(model)
