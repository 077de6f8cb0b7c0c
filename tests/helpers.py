"""Shared test helpers."""

import importlib.util

import numpy as np
import pytest
import torch
from torch import nn


@torch.no_grad()
def calibrate_bn(model: nn.Module, input_size=(3, 64, 64), steps: int = 3, batch: int = 4) -> nn.Module:
    """Give every BatchNorm realistic running statistics (a fresh model's are 0/1, which makes
    eval outputs of deep nets explode) and perturb affine params so folding errors can't hide."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # cumulative average over the calibration batches
            m.reset_running_stats()
            if m.affine:
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    model.train()
    for _ in range(steps):
        model(torch.randn(batch, *input_size))
    return model.eval()


def assert_close_rel(actual: torch.Tensor, expected: torch.Tensor, rel: float = 1e-5) -> None:
    """Max |difference| within `rel` of the reference's magnitude (a tolerance that means something
    for outputs of any scale)."""
    scale = expected.abs().max().clamp_min(1e-12)
    err = (actual - expected).abs().max() / scale
    assert err <= rel, f"max relative error {err.item():.3g} > {rel:g}"


def fvcore_macs(model: nn.Module, input_size=(3, 224, 224)) -> int:
    """Multiply-accumulates of convolutions and linear layers as fvcore counts them: the
    independent reference for `leannet.profile.count_macs`. fvcore's defaults also count BN and
    pooling elements, and `set_op_handle(op, None)` does not drop a default handle, so the
    handles are replaced wholesale."""
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import (
        addmm_flop_jit,
        conv_flop_jit,
        linear_flop_jit,
        matmul_flop_jit,
    )

    fa = FlopCountAnalysis(model.eval(), torch.zeros(1, *input_size))
    fa.clear_op_handles().set_op_handle(**{
        "aten::_convolution": conv_flop_jit, "aten::addmm": addmm_flop_jit,
        "aten::linear": linear_flop_jit, "aten::matmul": matmul_flop_jit, "aten::mm": matmul_flop_jit,
    })
    fa.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return int(fa.total())


def write_tflite(path, weight: np.ndarray, bias: np.ndarray) -> None:
    """A real .tflite: conv (`weight` OIHW, SAME padding, stride 1) + ReLU -> mean over H, W,
    written with LiteRT's own flatbuffer schema as TensorFlow's converter lays it out (NHWC
    input, OHWI filters); input 1x8x8x3. leannet has no PyTorch converter to LiteRT
    (litert-torch does not install beside its pins), so tests build one this way."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    def buffer(a=None):
        b = s.BufferT()
        b.data = None if a is None else np.frombuffer(np.ascontiguousarray(a).tobytes(), np.uint8)
        return b

    def tensor(name, shape, buf, kind=s.TensorType.FLOAT32):
        t = s.TensorT()
        t.name, t.shape, t.buffer, t.type = name.encode(), list(shape), buf, kind
        return t

    def opcode(code):
        c = s.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = code, code, 1
        return c

    ohwi = weight.transpose(0, 2, 3, 1).astype(np.float32)
    model = s.ModelT()
    model.version, model.description = 3, b"leannet test"
    model.buffers = [buffer(), buffer(), buffer(ohwi), buffer(bias.astype(np.float32)), buffer(),
                     buffer(np.array([1, 2], np.int32)), buffer()]
    model.operatorCodes = [opcode(s.BuiltinOperator.CONV_2D), opcode(s.BuiltinOperator.MEAN)]
    g = s.SubGraphT()
    g.tensors = [tensor("input", (1, 8, 8, 3), 1), tensor("filter", ohwi.shape, 2),
                 tensor("bias", bias.shape, 3), tensor("conv", (1, 8, 8, len(bias)), 4),
                 tensor("axes", (2,), 5, s.TensorType.INT32), tensor("logits", (1, len(bias)), 6)]
    conv = s.OperatorT()
    conv.opcodeIndex, conv.inputs, conv.outputs = 0, [0, 1, 2], [3]
    conv.builtinOptionsType = s.BuiltinOptions.Conv2DOptions
    conv.builtinOptions = s.Conv2DOptionsT()
    conv.builtinOptions.padding, conv.builtinOptions.strideH, conv.builtinOptions.strideW = s.Padding.SAME, 1, 1
    conv.builtinOptions.fusedActivationFunction = s.ActivationFunctionType.RELU
    mean = s.OperatorT()
    mean.opcodeIndex, mean.inputs, mean.outputs = 1, [3, 4], [5]
    mean.builtinOptionsType, mean.builtinOptions = s.BuiltinOptions.ReducerOptions, s.ReducerOptionsT()
    g.operators, g.inputs, g.outputs, g.name = [conv, mean], [0], [5], b"main"
    model.subgraphs = [g]
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    path.write_bytes(bytes(b.Output()))


def needs(*modules: str):
    """Skip unless every module is importable (the mobile engines come with `leannet[mobile]`)."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not installed (pip install 'leannet[mobile]')")
