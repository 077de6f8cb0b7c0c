"""Activations as native torch modules, so ONNX export emits single ops (HardSwish/HardSigmoid
at opset >= 14), which the PP-LCNet seed reports breaking otherwise.

An activation is given as a module class (`nn.ReLU`), a `functools.partial` of one carrying
its options (`partial(nn.LeakyReLU, negative_slope=1e-3)`, as timm's `act_layer`), a name
from `ACTIVATIONS` (config files and CLI strings), or None for no activation. Options travel
inside the partial, so a misspelt one is a TypeError from the module's own constructor rather
than a keyword some layer forwards and another drops.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable

from torch import nn

from leannet.errors import ConfigError

ActLayer = Callable[..., nn.Module]  # a module class, or a partial of one
Act = str | ActLayer | None

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "leaky_relu": nn.LeakyReLU,  # torch's default slope 0.01; other slopes: pass a partial
    "hard_swish": nn.Hardswish,
    "hard_sigmoid": nn.Hardsigmoid,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "identity": nn.Identity,
}


def get_act_layer(act: Act) -> ActLayer:
    """The module class (or partial) that `act` names; an unknown name is a ConfigError."""
    if act is None:
        return nn.Identity
    if not isinstance(act, str):
        if not callable(act):
            raise ConfigError(f"activation must be a name, a module class or a partial, got {act!r}")
        return act
    if act not in ACTIVATIONS:
        close = difflib.get_close_matches(act, ACTIVATIONS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"unknown activation {act!r}; {hint}choose from {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[act]


def _takes_inplace(layer: ActLayer) -> bool:
    bound = layer.keywords if isinstance(layer, functools.partial) else {}
    if "inplace" in bound:  # the caller chose already
        return False
    try:
        return "inplace" in inspect.signature(layer).parameters
    except (TypeError, ValueError):  # no introspectable signature: don't guess
        return False


def get_act(act: Act, inplace: bool = False) -> nn.Module:
    """Build the activation `act` (see the module docstring). `inplace` is passed only to
    activations that take it (ReLU, Hardswish, LeakyReLU, ...; not Sigmoid or GELU)."""
    layer = get_act_layer(act)
    return layer(inplace=inplace) if inplace and _takes_inplace(layer) else layer()
