"""Activations by name, class or partial: unknown names and options raise, options are kept."""

from functools import partial

import pytest
import torch
from torch import nn

from leannet.errors import ConfigError
from leannet.layers import ConvBnAct, SqueezeExcite, get_act


def test_unknown_activation_name_raises_with_a_hint():
    with pytest.raises(ConfigError, match="unknown activation 'hardswish'; did you mean 'hard_swish'"):
        get_act("hardswish")
    with pytest.raises(ConfigError, match="unknown activation 'hard_sigmod'"):
        SqueezeExcite(8, 2, gate="hard_sigmod")


def test_misspelt_activation_option_raises():
    with pytest.raises(TypeError, match="negtive_slope"):
        ConvBnAct(3, 8, act=partial(nn.LeakyReLU, negtive_slope=0.1))
    # options no longer travel as loose keywords that a layer may drop
    with pytest.raises(TypeError, match="negative_slope"):
        ConvBnAct(3, 8, act="leaky_relu", negative_slope=0.1)


def test_activation_options_are_kept():
    block = ConvBnAct(3, 8, act=partial(nn.LeakyReLU, negative_slope=0.2))
    assert block.act.inplace  # ConvBnAct asks for in-place where the activation takes it
    x = torch.tensor([-1.0, 2.0])
    torch.testing.assert_close(block.act(x.clone()), torch.nn.functional.leaky_relu(x, 0.2))


@pytest.mark.parametrize("act, cls, inplace", [
    ("relu", nn.ReLU, True),
    ("leaky_relu", nn.LeakyReLU, True),
    ("hard_swish", nn.Hardswish, True),
    ("sigmoid", nn.Sigmoid, None),  # takes no inplace: not passed
    ("gelu", nn.GELU, None),
    (None, nn.Identity, None),
    (nn.ReLU6, nn.ReLU6, True),
    (partial(nn.ReLU, inplace=False), nn.ReLU, False),  # the caller's choice wins
])
def test_get_act_builds_the_class_and_passes_inplace_only_where_taken(act, cls, inplace):
    m = get_act(act, inplace=True)
    assert type(m) is cls
    assert getattr(m, "inplace", None) is inplace
