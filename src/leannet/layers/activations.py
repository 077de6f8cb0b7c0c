"""Activations by name, as native torch modules so ONNX export emits single ops
(HardSwish/HardSigmoid at opset >= 14), which the PP-LCNet seed reports breaking otherwise."""

from torch import nn

_ACTS = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hard_swish": nn.Hardswish,
    "hard_sigmoid": nn.Hardsigmoid,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "identity": nn.Identity,
}


def get_act(name: str | None, inplace: bool = False, **kwargs) -> nn.Module:
    """Build an activation module. `leaky_relu` takes `negative_slope` (TResNet uses 1e-2)."""
    if name is None or name == "identity":
        return nn.Identity()
    if name == "leaky_relu":
        return nn.LeakyReLU(kwargs.get("negative_slope", 0.01), inplace=inplace)
    if name not in _ACTS:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted([*_ACTS, 'leaky_relu'])}")
    cls = _ACTS[name]
    if cls in (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.SiLU):
        return cls(inplace=inplace)
    return cls()
