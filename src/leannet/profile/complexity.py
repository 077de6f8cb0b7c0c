"""Static cost of a model: params, MACs, memory access cost and activations, per layer.

How a forward pass is counted (`profile_model`):

* MACs come from torch's own FlopCounterMode formulas (`torch.utils.flop_counter`), applied
  to every aten op the forward runs; they cover convolutions (grouped and depthwise included)
  and matrix products, and return FLOPs = 2 x MACs. Nothing else (BN, activations, pooling,
  element-wise) is counted as MACs, which is the papers' and fvcore's convention.
* A *layer* is one call of a leaf module (a module without children: Conv2d, BatchNorm2d,
  Hardswish, AdaptiveAvgPool2d, Linear, ...), plus one row per data-moving aten op that runs
  outside any leaf module (the `x + shortcut`, `cat`, `mul` of an SE gate, the copy of a
  channel shuffle) attributed to the innermost module that ran it. Leaf calls that move no
  data (Identity, Dropout in eval, Flatten) and view ops (reshape, transpose) give no row.
* Memory access cost (ShuffleNetV2, Sec. 2): bytes read and written by the layer = its
  weights (parameters and floating buffers) + its input tensors + its output tensors, each
  at its own dtype's size. A leaf module is charged as one fused layer (its input, weights
  and output), not per internal op; an op outside leaf modules is charged its inputs + outputs.
* Activations (RegNet, Radosavovic et al. 2020, Sec. 3): the number of output elements of
  every conv and linear (matmul) layer; other layers contribute 0. fvcore's
  ActivationCountAnalysis uses the same definition.
* Params of a layer: the parameters of its leaf module, counted on its first call only (a
  module called twice is not counted twice); parameters used directly by a functional op are
  charged to that op's row. `totals` are exact sums of the rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

# Ops whose output is a tensor (an activation) in RegNet's sense: conv and matmul outputs.
_ACTIVATION_OPS = {
    torch.ops.aten.convolution, torch.ops.aten._convolution, torch.ops.aten.mm,
    torch.ops.aten.addmm, torch.ops.aten.bmm, torch.ops.aten.baddbmm,
}

UNITS = {
    "params": "parameters (elements)",
    "macs": "multiply-accumulates of conv and matmul ops",
    "flops": "2 x MACs",
    "memory_access_bytes": "bytes read + written per layer: weights + inputs + outputs (ShuffleNetV2)",
    "activations": "output elements of conv and linear layers (RegNet)",
    "intensity": "FLOPs per byte of memory access",
}


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, input_size: tuple[int, ...] = (3, 224, 224), batch: int = 1) -> int:
    """Multiply-accumulates of one forward pass at `input_size` (per batch of `batch`)."""
    was_training = model.training
    model.eval()
    x = torch.zeros(batch, *input_size)
    with FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() // 2


def _tensors(obj: Any) -> list[torch.Tensor]:
    leaves, _ = tree_flatten(obj)
    seen, out = set(), []
    for t in leaves:
        if isinstance(t, torch.Tensor) and id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


def _nbytes(tensors: list[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _is_view(func) -> bool:
    returns = func._schema.returns
    return bool(returns) and all(r.alias_info is not None and not r.alias_info.is_write for r in returns)


@dataclass
class Layer:
    path: str
    op: str
    output_shape: list[int] = field(default_factory=list)
    params: int = 0
    macs: int = 0
    memory_access_bytes: int = 0
    activations: int = 0
    moved_data: bool = False  # ran at least one op that wrote a tensor

    def as_dict(self) -> dict[str, Any]:
        flops = 2 * self.macs
        return {
            "path": self.path,
            "op": self.op,
            "output_shape": self.output_shape,
            "params": self.params,
            "macs": self.macs,
            "flops": flops,
            "memory_access_bytes": self.memory_access_bytes,
            "activations": self.activations,
            "intensity": flops / self.memory_access_bytes if self.memory_access_bytes else 0.0,
        }


class _Recorder(TorchDispatchMode):
    """Sees every aten op of the forward; module hooks tell it which layer is running."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.registry = FlopCounterMode(display=False).flop_registry
        self.names = {m: n for n, m in model.named_modules()}
        self.param_ids = {id(p): p for p in model.parameters()}
        self.counted_params: set[int] = set()
        self.counted_modules: set[nn.Module] = set()
        self.stack: list[tuple[nn.Module, Layer | None]] = []
        self.layers: list[Layer] = []

    # --- module hooks ----------------------------------------------------------------------
    def pre_hook(self, module: nn.Module, args: tuple) -> None:
        layer = None
        if next(module.children(), None) is None:  # a leaf: charged as one layer
            weights = [*module.parameters(recurse=False),
                       *(b for b in module.buffers(recurse=False) if b.is_floating_point())]
            layer = Layer(self.names.get(module, type(module).__name__), type(module).__name__)
            layer.memory_access_bytes = _nbytes(_tensors(args)) + _nbytes(weights)
            if module not in self.counted_modules:
                self.counted_modules.add(module)
                params = list(module.parameters(recurse=False))
                layer.params = sum(p.numel() for p in params)
                self.counted_params.update(id(p) for p in params)
        self.stack.append((module, layer))

    def post_hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        _, layer = self.stack.pop()
        if layer is None or not layer.moved_data:
            return
        outs = _tensors(output)
        layer.memory_access_bytes += _nbytes(outs)
        layer.output_shape = list(outs[0].shape) if outs else []
        self.layers.append(layer)

    # --- ops -------------------------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        # Same policy as FlopCounterMode: ops without a formula are decomposed if possible,
        # so a matmul hidden in a composite op is still counted.
        if func not in self.registry and func is not torch.ops.prim.device.default:
            with self:
                r = func.decompose(*args, **kwargs)
                if r is not NotImplemented:
                    return r
        out = func(*args, **kwargs)
        self._record(func, args, kwargs, out)
        return out

    def _record(self, func, args, kwargs, out) -> None:
        packet = func._overloadpacket
        outs = _tensors(out)
        if not outs or _is_view(func):
            return
        macs = self.registry[packet](*args, **kwargs, out_val=out) // 2 if packet in self.registry else 0
        acts = sum(t.numel() for t in outs) if packet in _ACTIVATION_OPS else 0
        module, layer = self.stack[-1] if self.stack else (None, None)
        if layer is None:  # an op outside any leaf module gets its own row
            path = self.names.get(module, "") if module is not None else ""
            layer = Layer(path, packet.__name__, output_shape=list(outs[0].shape))
            inputs = _tensors((args, kwargs))
            layer.memory_access_bytes = _nbytes(inputs) + _nbytes(outs)
            fresh = [t for t in inputs if id(t) in self.param_ids and id(t) not in self.counted_params]
            layer.params = sum(t.numel() for t in fresh)
            self.counted_params.update(id(t) for t in fresh)
            self.layers.append(layer)
        layer.moved_data = True
        layer.macs += macs
        layer.activations += acts


@torch.no_grad()
def profile_model(model: nn.Module, input_size: tuple[int, int, int] = (3, 224, 224),
                  batch: int = 1, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """Per-layer and total cost of one eval-mode forward of `model` on a (batch, *input_size) input.

    Returns {"input", "dtype", "units", "totals", "layers"}; see the module docstring for
    what each number means. The model is put in eval mode and left there.
    """
    model.eval()
    rec = _Recorder(model)
    handles = []
    for m in model.modules():
        handles.append(m.register_forward_pre_hook(rec.pre_hook))
        handles.append(m.register_forward_hook(rec.post_hook))
    x = torch.zeros(batch, *input_size, dtype=dtype)
    try:
        with rec:
            model(x)
    finally:
        for h in handles:
            h.remove()
    layers = [layer.as_dict() for layer in rec.layers]
    totals = {key: sum(row[key] for row in layers)
              for key in ("params", "macs", "flops", "memory_access_bytes", "activations")}
    unused = count_params(model) - totals["params"]
    if unused:
        totals["params_unused"] = unused  # parameters the forward never touched
    return {"input": [batch, *input_size], "dtype": str(dtype).removeprefix("torch."),
            "units": UNITS, "totals": totals, "layers": layers}


def complexity(model_or_name: nn.Module | str, img: int = 224, batch: int = 1,
            deployed: bool = False) -> dict[str, Any]:
    """Profile a registered model (by name or timm alias) or a module at `img` x `img`.

    `deployed=True` profiles `leannet.reparameterize(model)`: multi-branch blocks merged and
    every BatchNorm folded, i.e. what an exported artefact computes (MobileOne-S0: 5.29M
    params in train form, 2.08M deployed). The result says which form it describes.
    Returns {"model", "input", "deployed", "dtype", "units", "totals", "layers"}.
    """
    from leannet.deploy.reparam import reparameterize
    from leannet.factory import create_model

    if isinstance(model_or_name, str):
        model = create_model(model_or_name)
        name = model.pretrained_cfg.name
    else:
        model = model_or_name
        cfg = getattr(model, "pretrained_cfg", None)
        name = getattr(cfg, "name", None) or type(model).__name__
    cfg = getattr(model, "pretrained_cfg", None)
    in_chans = cfg.input_size[0] if cfg is not None else 3
    if deployed:
        model = reparameterize(model)
    result = profile_model(model, (in_chans, img, img), batch)
    return {"model": name, "deployed": deployed, **result}
