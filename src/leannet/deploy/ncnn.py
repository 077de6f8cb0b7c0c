"""ncnn export (.param + .bin) of a leannet model in its deployed form, through pnnx.

pnnx converts the verified ONNX export (the same graph ONNX Runtime runs) with `fp16=0`, so
the .bin keeps fp32 weights and fp32 parity with PyTorch can be checked. pnnx runs as its own
process (the `pnnx` wheel ships the converter binary), so a converter crash is an error line
here, not the end of the caller.

Shuffle stages: the deployed `UnshuffledStage` reorders its pass-through channels with one
index_select; pnnx maps that Gather to Crop + Squeeze over axis 0, on which ncnn 1.0.20261020
crashed (SIGSEGV). For ncnn the reorder is written in ops it maps natively: none at all for
SNet (its order is the identity), nested Slice/Concat/ShuffleChannel for torchvision's unit.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from torch import nn

from leannet.errors import ExportError
from leannet.extras import require

PNNX_TIMEOUT = 600  # seconds; pnnx takes under 2 s on this project's models


def ncnn_ready(model: nn.Module) -> nn.Module:
    """A copy of `model` whose shuffle stages use no channel gather (see the module docstring)."""
    from leannet.layers.shuffle import UnshuffledStage

    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, UnshuffledStage):
            m.gather_as_shuffles = True
    return model


def export_ncnn(model: nn.Module, path: str | Path, input_size: tuple[int, int, int] = (3, 224, 224),
                batch: int = 1, opset: int = 18) -> Path:
    """Write `path` (.param) and its .bin: ONNX export of `ncnn_ready(model)`, then pnnx."""
    from leannet.deploy.onnx import export_onnx

    path = Path(path)
    if path.suffix != ".param":
        raise ExportError(f"{path}: an ncnn model path must end in .param")
    if batch != 1:
        raise ExportError("ncnn runs one image at a time: export with batch 1")
    work = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", dir=path.parent))
    try:
        onnx_path = work / "model.onnx"
        export_onnx(ncnn_ready(model), onnx_path, input_size, batch, opset=opset)
        convert_onnx(onnx_path, work / "model.param", (batch, *input_size))
        os.replace(work / "model.bin", path.with_suffix(".bin"))
        os.replace(work / "model.param", path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path


def convert_onnx(onnx_path: Path, param: Path, shape: tuple[int, ...]) -> Path:
    """pnnx on an .onnx file: `param` and its .bin (fp32 weights), in `param`'s folder."""
    pnnx = require("pnnx", "ncnn export")
    onnx_path, param = onnx_path.resolve(), param.resolve()  # pnnx runs in param's folder
    d = param.parent
    stem = param.stem
    cmd = [pnnx.EXEC_PATH, str(onnx_path), f"inputshape=[{','.join(map(str, shape))}]f32", "fp16=0",
           f"pnnxparam={d / (stem + '.pnnx.param')}", f"pnnxbin={d / (stem + '.pnnx.bin')}",
           f"pnnxpy={d / (stem + '_pnnx.py')}", f"pnnxonnx={d / (stem + '.pnnx.onnx')}",
           f"ncnnparam={param}", f"ncnnbin={param.with_suffix('.bin')}", f"ncnnpy={d / (stem + '_ncnn.py')}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PNNX_TIMEOUT, cwd=d)
    except subprocess.TimeoutExpired:
        raise ExportError(f"pnnx did not finish converting {onnx_path.name} within {PNNX_TIMEOUT} s") from None
    if proc.returncode != 0 or not param.is_file():
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit code {proc.returncode}"
        raise ExportError(f"pnnx could not convert {onnx_path.name} to ncnn: {why}")
    return param
