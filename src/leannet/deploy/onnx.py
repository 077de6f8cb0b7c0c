"""ONNX export of a leannet model in its deployed form."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from leannet.fileio import atomic_path


def export_onnx(
    model: nn.Module,
    path: str | Path,
    input_size: tuple[int, int, int] = (3, 224, 224),
    batch: int = 1,
    dynamic_batch: bool = False,
    opset: int = 18,
) -> Path:
    """Export `model` (used as given: reparameterise/fold first) to one self-contained .onnx file.

    The TorchScript-based exporter is used because it maps nn.Hardswish/nn.Hardsigmoid to
    the native ONNX ops and writes a single file; the graph is checked with onnx.checker.
    """
    import onnx

    path = Path(path)
    model = model.eval()
    x = torch.randn(batch, *input_size)
    dynamic_axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    with atomic_path(path) as tmp, torch.no_grad():
        torch.onnx.export(model, (x,), str(tmp), input_names=["input"], output_names=["logits"],
                          dynamic_axes=dynamic_axes, opset_version=opset, dynamo=False)
        onnx.checker.check_model(onnx.load(str(tmp)))
    return path
