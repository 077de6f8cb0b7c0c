"""ExecuTorch export (.pte) of a leannet model in its deployed form, lowered to XNNPACK.

fp32: `torch.export` -> `to_edge_transform_and_lower(partitioner=[XnnpackPartitioner()])` ->
`.to_executorch()`. Every op XNNPACK takes runs in its delegate; the rest (none on this
project's classifiers) would run on ExecuTorch's portable kernels.

INT8: PT2E post-training quantisation with `XNNPACKQuantizer` (symmetric, per-channel int8
weights, int8 activations): `prepare_pt2e` -> the calibration images -> `convert_pt2e`, then
lowered as above. The quantizer has no rule for hard-swish / hard-sigmoid, so they stay float
between dequantise and quantise nodes (PP-LCNet and MobileNetV3 gain less than ReLU nets).

The shape is fixed (ExecuTorch plans its memory ahead of time): batch and input size are
those of the export. ExecuTorch's binary links torch's libraries: the `mobile` extra pins
executorch with the torch it was built for.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from leannet.errors import ExportError, reason
from leannet.extras import require
from leannet.fileio import atomic_path

CALIBRATION_BATCH = 8  # images per calibration forward: observers see the same data either way


def _lower(program: torch.export.ExportedProgram, path: Path) -> Path:
    from leannet.runtime.mobile import quiet_engine

    with quiet_engine():
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

    try:
        et = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
    except Exception as e:  # exir raises assorted errors for ops it cannot take
        raise ExportError(f"ExecuTorch lowering failed: {reason(e)}") from None
    with atomic_path(path) as tmp:
        tmp.write_bytes(et.buffer)
    return path


def export_executorch(model: nn.Module, path: str | Path, input_size: tuple[int, int, int] = (3, 224, 224),
                      batch: int = 1) -> Path:
    """Export `model` (used as given: reparameterise/fold first) to an XNNPACK-lowered .pte."""
    require("executorch", "ExecuTorch export")
    path = Path(path)
    x = torch.randn(batch, *input_size)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(model.eval(), (x,))
    except Exception as e:  # torch.export raises UserError/Unsupported/RuntimeError
        raise ExportError(f"torch.export of {type(model).__name__} failed: {reason(e)}") from None
    return _lower(program, path)


def quantize_executorch(model: nn.Module, path: str | Path, calib: np.ndarray,
                        input_size: tuple[int, int, int] = (3, 224, 224), batch: int = 1) -> Path:
    """INT8 .pte by PT2E with XNNPACKQuantizer (per-channel), calibrated on `calib` (N, C, H, W)."""
    require("executorch", "ExecuTorch INT8 export")
    from leannet.runtime.mobile import quiet_engine

    with quiet_engine():
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    path = Path(path)
    x = torch.randn(batch, *input_size)
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = torch.export.export(model.eval(), (x,)).module()
            prepared = prepare_pt2e(graph, quantizer)
            with torch.no_grad():
                # calibrate at the export's batch size (the graph's shapes are fixed)
                for i in range(0, len(calib), batch):
                    chunk = calib[i:i + batch]
                    if len(chunk) < batch:
                        chunk = np.concatenate([chunk, calib[: batch - len(chunk)]])
                    prepared(torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32)))
            quantized = convert_pt2e(prepared)
            program = torch.export.export(quantized, (x,))
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(f"ExecuTorch INT8 quantisation of {type(model).__name__} failed: {reason(e)}") from None
    return _lower(program, path)
