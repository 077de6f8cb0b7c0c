"""Shared test helpers."""

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
