"""Weight-decay groups, the warm-up + cosine schedule, annealed weight decay, progressive
resizing and AMP dtype selection, each against its closed form."""

import math

import pytest
import torch
from torch import nn

import leannet
from leannet.errors import ConfigError
from leannet.train.config import AmpConfig, DataConfig, OptimConfig, ScheduleConfig
from leannet.train.engine import autocast_dtype
from leannet.train.loop import train_size
from leannet.train.optim import build_optimizer, build_scheduler, param_groups, set_weight_decay


def test_norms_and_biases_are_exempt_from_weight_decay():
    model = leannet.create_model("pplcnet_x0_25", num_classes=3)
    decay, no_decay = param_groups(model, 1e-4)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in no_decay["params"]} == {
        n for n, p in model.named_parameters() if p.ndim == 1}  # every BN weight/bias and bias
    assert all(names[id(p)].endswith("weight") and p.ndim > 1 for p in decay["params"])
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_warmup_then_cosine_matches_closed_form():
    model = nn.Linear(2, 2)
    opt = build_optimizer(model, OptimConfig(lr=0.4))
    cfg = ScheduleConfig(epochs=5, warmup_epochs=1, warmup_start_factor=0.1, min_lr_ratio=0.05)
    sched = build_scheduler(opt, cfg, steps_per_epoch=10)
    lrs = []
    for _ in range(50):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    warm = [0.4 * (0.1 + 0.9 * i / 10) for i in range(10)]
    cos = [0.02 + 0.5 * (0.4 - 0.02) * (1 + math.cos(math.pi * i / 40)) for i in range(40)]
    torch.testing.assert_close(torch.tensor(lrs), torch.tensor(warm + cos), rtol=1e-6, atol=1e-9)


def test_annealed_weight_decay_and_constant_default():
    model = leannet.create_model("pplcnet_x0_25", num_classes=3)
    cfg = OptimConfig(weight_decay=1e-4, weight_decay_end=1e-5)
    opt = build_optimizer(model, cfg)
    assert set_weight_decay(opt, cfg, 0.0) == pytest.approx(1e-4)
    assert set_weight_decay(opt, cfg, 0.5) == pytest.approx(5.5e-5)
    assert set_weight_decay(opt, cfg, 1.0) == pytest.approx(1e-5)
    assert [g["weight_decay"] for g in opt.param_groups] == [pytest.approx(1e-5), 0.0]  # exempt stays 0
    assert set_weight_decay(opt, OptimConfig(weight_decay=3e-5), 0.7) == 3e-5


def test_progressive_resizing_grows_to_input_size():
    d = DataConfig(input_size=224, progressive_start=160, progressive_epochs=4)
    assert [train_size(d, e) for e in range(6)] == [160, 176, 192, 208, 224, 224]
    assert train_size(DataConfig(input_size=32), 0) == 32


def test_amp_dtype():
    cpu = torch.device("cpu")
    assert autocast_dtype(AmpConfig(dtype="off"), cpu) is None
    assert autocast_dtype(AmpConfig(dtype="bf16"), cpu) is torch.bfloat16
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        autocast_dtype(AmpConfig(dtype="fp16"), cpu)


def test_amp_off_survives_yaml():
    # YAML 1.1 reads a bare `off` as false: `-o amp.dtype=off` once failed validation
    from leannet.config import apply_overrides

    data = apply_overrides({}, ["amp.dtype=off"])
    assert data["amp"]["dtype"] is False
    assert AmpConfig(**data["amp"]).dtype == "off"
    with pytest.raises(ValueError, match="dtype"):
        AmpConfig(dtype=True)


def test_ema_follows_the_exponential_average_of_weights_and_bn_buffers():
    from leannet.train.config import EmaConfig
    from leannet.train.ema import build_ema

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    ema = build_ema(model, EmaConfig(enabled=True, decay=0.8))
    expect = {k: v.clone().float() for k, v in model.state_dict().items()}
    ema.update_parameters(model)  # first update copies
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        model(torch.randn(2, 3, 8, 8)).square().mean().backward()
        opt.step()
        ema.update_parameters(model)
        expect = {k: 0.8 * expect[k] + 0.2 * v.float() for k, v in model.state_dict().items()}
    got = ema.module.state_dict()
    for k in ("0.weight", "1.weight", "1.running_mean", "1.running_var"):
        torch.testing.assert_close(got[k], expect[k], rtol=1e-5, atol=1e-6)
    assert build_ema(model, EmaConfig(enabled=False)) is None
