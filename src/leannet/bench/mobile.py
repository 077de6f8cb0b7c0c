"""Sweep cells on the mobile engines (ExecuTorch, ncnn, LiteRT): the artefact each cell runs.

A zoo or checkpoint source is exported once per shape into the sweep's work folder, as the
ONNX cells are: ExecuTorch fp32 / INT8 (.pte, XNNPACK) and ncnn (.param via pnnx, fp32).
LiteRT runs only the .tflite files a user brings (its PyTorch converter, litert-torch, does
not install beside leannet's pins; see docs/mobile.md). The runner opens through
`open_runner`, so each artefact is pre-flown in a child process first: an engine that
crashes costs its cell an error row, not the sweep.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from leannet.errors import LeannetError

MOBILE_RUNTIMES = ("executorch", "ncnn", "litert")
SUFFIX_OF = {"executorch": ".pte", "ncnn": ".param", "litert": ".tflite"}


def mobile_artefact(model, workdir: Path, label: str, runtime: str, precision: str, shape: tuple[int, ...],
                    files: dict[tuple, Path], calib: np.ndarray | None = None) -> Path:
    """The artefact a model cell runs on `runtime` (made once per shape and precision)."""
    key = (runtime, precision, shape)
    if key in files:
        return files[key]
    size = tuple(shape[1:])
    path = workdir / f"{label}_b{shape[0]}_{shape[2]}{'_int8' if precision == 'int8' else ''}{SUFFIX_OF[runtime]}"
    if runtime == "executorch":
        from leannet.deploy.executorch import export_executorch, quantize_executorch

        if precision == "int8":
            quantize_executorch(model, path, calib, size, shape[0])
        else:
            export_executorch(model, path, size, shape[0])
    elif runtime == "ncnn":
        from leannet.deploy.ncnn import export_ncnn

        export_ncnn(model, path, size, shape[0])
        # ncnn's .param holds no input shape: the pre-flight reads it from a sidecar
        from leannet.deploy.artefact import write_sidecar

        write_sidecar(path, {"input_size": list(size)})
    else:
        raise LeannetError("litert runs .tflite files you bring (no PyTorch converter installs beside "
                           "leannet's pins): bench the .tflite itself, see docs/mobile.md")
    files[key] = path
    return path


def mobile_input_dims(path: Path) -> tuple[int | None, ...]:
    """A mobile artefact's input dims, N,C,H,W (None where it does not say): ExecuTorch and
    LiteRT programs fix theirs (LiteRT's NHWC read as NCHW); an ncnn .param records none, so
    its sidecar's input_size gives C,H,W and N is 1 (ncnn's extractor runs one image)."""
    from leannet.runtime.mobile import MOBILE_SUFFIXES, _input_shape

    if path.suffix == ".param":
        from leannet.deploy.artefact import sidecar_fields

        size = sidecar_fields(path).get("input_size")
        return (1, *size) if size else (1, None, None, None)
    b, c, h, w = _input_shape(path, MOBILE_SUFFIXES[path.suffix])
    if path.suffix == ".tflite" and c not in (1, 3) and w in (1, 3):  # NHWC
        b, h, w, c = b, c, h, w
    return b, c, h, w
