"""OpenVINO IR export (model.xml + model.bin) of a leannet model in its deployed form.

The IR keeps fp32 weights (`compress_to_fp16=False`). The precision the CPU computes in is a
compile-time hint, not part of the IR, and OpenVINO's default on CPUs with AVX-512 BF16 is
bf16: leannet records the chosen precision in the sidecar and `open_runner` pins it when it
compiles, so nothing is inherited silently.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from leannet.errors import ExportError, reason
from leannet.extras import require


def export_openvino(
    model: nn.Module,
    path: str | Path,
    input_size: tuple[int, int, int] = (3, 224, 224),
    batch: int = 1,
    dynamic_batch: bool = False,
    dynamic_size: bool = False,
    output_names: tuple[str, ...] = ("logits",),
) -> Path:
    """Convert `model` (used as given: reparameterise/fold first) with openvino.convert_model
    and write `path` (.xml) and its .bin; both appear only once both are complete."""
    ov = require("openvino", "OpenVINO")

    path = Path(path)
    if path.suffix != ".xml":
        raise ExportError(f"{path}: an OpenVINO IR path must end in .xml")
    model = model.eval()
    c, h, w = input_size
    shape = [-1 if dynamic_batch else batch, c, -1 if dynamic_size else h, -1 if dynamic_size else w]
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # OpenVINO's PyTorch frontend traces with torch.jit, which warns it is deprecated.
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
            ov_model = ov.convert_model(model, example_input=torch.randn(batch, *input_size),
                                        input=[ov.PartialShape(shape)])
    except Exception as e:  # OpenVINO's frontends raise assorted RuntimeError subclasses
        raise ExportError(f"OpenVINO conversion of {type(model).__name__} failed: {reason(e)}") from None
    ov_model.inputs[0].get_tensor().set_names({"input"})
    for out, name in zip(ov_model.outputs, output_names, strict=True):
        out.get_tensor().set_names({name})
    save_ir(ov_model, path)
    return path


def save_ir(ov_model, path: Path) -> None:
    """Write an IR pair atomically: into a temporary folder beside `path`, then renamed (.bin
    first, so a reader who finds the new .xml also finds its weights)."""
    ov = require("openvino", "OpenVINO")

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", dir=path.parent))
    try:
        ov.save_model(ov_model, str(tmp / path.name), compress_to_fp16=False)
        os.replace(tmp / path.with_suffix(".bin").name, path.with_suffix(".bin"))
        os.replace(tmp / path.name, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
