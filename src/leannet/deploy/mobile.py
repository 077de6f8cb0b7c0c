"""What `export` does for the mobile formats (ExecuTorch .pte, ncnn .param + .bin), kept here so
the shared exporter only dispatches: write the fp32 artefact, pre-flight it in a child process
(an engine crash fails the export with one line), quantise (ExecuTorch INT8), and the options
and versions each format records in its sidecar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from leannet.errors import ConfigError

MOBILE_FORMATS = {"executorch": ".pte", "ncnn": ".param"}
ENGINE_OF = {"executorch": "executorch", "ncnn": "ncnn"}  # format -> the runtime that runs it
INT8_FORMATS = ("executorch",)


def check_mobile_options(format: str, int8: bool, batch: int, dynamic_batch: bool, dynamic_size: bool) -> None:
    if format not in (*MOBILE_FORMATS, "coreml"):
        return
    if dynamic_batch or dynamic_size:
        raise ConfigError(f"{format} artefacts have a fixed shape; drop --dynamic-batch/--dynamic-size")
    if int8 and format not in INT8_FORMATS:
        raise ConfigError(f"--int8 is not supported for {format}; use --format executorch, onnx or openvino")
    if format == "ncnn" and batch != 1:
        raise ConfigError("ncnn runs one image at a time: export with --batch 1")


def export_mobile(format: str, model: nn.Module, path: Path, input_size: tuple[int, int, int], batch: int,
                  opset: int = 18) -> Path:
    """Write the fp32 artefact and pre-flight it (load + one inference) in a child process."""
    from leannet.runtime.mobile import preflight

    if format == "executorch":
        from leannet.deploy.executorch import export_executorch

        export_executorch(model, path, input_size, batch)
    else:
        from leannet.deploy.ncnn import export_ncnn

        export_ncnn(model, path, input_size, batch, opset=opset)
    preflight(path, ENGINE_OF[format], shape=(batch, *input_size))
    return path


def quantize_mobile(format: str, model: nn.Module, path: Path, calib: np.ndarray,
                    input_size: tuple[int, int, int], batch: int) -> Path:
    from leannet.deploy.executorch import quantize_executorch
    from leannet.runtime.mobile import preflight

    quantize_executorch(model, path, calib, input_size, batch)
    preflight(path, "executorch", shape=(batch, *input_size))
    return path


def mobile_record(format: str, opset: int) -> dict[str, Any]:
    """Sidecar fields of a mobile artefact: versions, and how it was made."""
    from importlib.metadata import version

    if format == "executorch":
        return {"backend": "xnnpack", "versions": {"executorch": version("executorch")}}
    if format == "coreml":
        return {"converter": "coremltools (torch.export, ML Program, fp32)", "versions": {}}
    return {"converter": "pnnx (from the ONNX export, fp16=0)", "opset": opset,
            "versions": {"pnnx": version("pnnx"), "ncnn": version("ncnn")}}
