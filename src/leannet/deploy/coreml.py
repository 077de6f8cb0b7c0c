"""Core ML export (.mlpackage, ML Program) of a leannet model in its deployed form.

coremltools converts on Linux but Core ML runs only on macOS: here the export is checked
structurally (the spec loads; one input of the exported shape named `input`; one output);
on a Mac the package is also run and held to the fp32 parity gate. The sidecar says which
check ran (`verification_kind`: "numeric" or "structural"). Weights and compute stay fp32
(`compute_precision=FLOAT32`) so parity can be asked of it.
"""

from __future__ import annotations

import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from leannet.errors import ExportError, reason
from leannet.extras import require

MIN_TARGET = "iOS17"  # ML Program with fp32 compute; iOS 17 / macOS 14 and later


def export_coreml(model: nn.Module, path: str | Path, input_size: tuple[int, int, int] = (3, 224, 224),
                  batch: int = 1) -> Path:
    """Convert `model` (used as given: reparameterise/fold first) and write `path` (.mlpackage)."""
    ct = require("coremltools", "Core ML export")
    path = Path(path)
    if path.suffix != ".mlpackage":
        raise ExportError(f"{path}: a Core ML package path must end in .mlpackage")
    shape = (batch, *input_size)
    try:
        program = torch.export.export(model.eval(), (torch.randn(shape),)).run_decompositions({})
        ml = ct.convert(program, inputs=[ct.TensorType(name="input", shape=shape)], convert_to="mlprogram",
                        minimum_deployment_target=getattr(ct.target, MIN_TARGET),
                        compute_precision=ct.precision.FLOAT32)
    except Exception as e:  # coremltools raises assorted errors for ops it cannot map
        raise ExportError(f"Core ML conversion of {type(model).__name__} failed: {reason(e)}") from None
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", dir=path.parent))
    try:
        ml.save(str(tmp / path.name))
        if path.exists():
            shutil.rmtree(path)
        (tmp / path.name).rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def check_coreml(path: Path, model: nn.Module, inputs: np.ndarray, input_shape: tuple[int, ...],
                 tol: float = 1e-4) -> dict[str, Any]:
    """Structural check everywhere; numeric parity (fails the export beyond `tol`) on macOS."""
    ct = require("coremltools", "Core ML export")
    spec = ct.utils.load_spec(str(path))
    ins, outs = list(spec.description.input), list(spec.description.output)
    dims = tuple(ins[0].type.multiArrayType.shape) if ins else ()
    if len(ins) != 1 or ins[0].name != "input" or dims != tuple(input_shape) or len(outs) != 1:
        raise ExportError(f"{path}: Core ML spec has inputs {[(i.name, tuple(i.type.multiArrayType.shape)) for i in ins]} "
                          f"and {len(outs)} outputs; expected one input {tuple(input_shape)} and one output")
    rec: dict[str, Any] = {"verification_kind": "structural", "spec_type": spec.WhichOneof("Type"),
                           "input": {"name": "input", "shape": list(dims)}, "output": outs[0].name}
    if platform.system() != "Darwin":
        rec["note"] = "Core ML runs only on macOS: spec loaded and inputs/outputs checked; no numeric parity here"
        return rec
    ml = ct.models.MLModel(str(path))
    with torch.no_grad():
        ref = model(torch.from_numpy(inputs[: input_shape[0]])).numpy()
    got = np.asarray(ml.predict({"input": inputs[: input_shape[0]]})[outs[0].name])
    diff = float(np.abs(got - ref).max())
    limit = tol * max(1.0, float(np.abs(ref).max()))
    if not diff <= limit:
        raise ExportError(f"Core ML package does not match PyTorch: max |logit difference| {diff:.3g} > {limit:.3g}")
    rec.update(verification_kind="numeric", max_abs_diff=diff)
    return rec


def publish_coreml(model: nn.Module, out: Path, input_size: tuple[int, int, int], batch: int,
                   record: dict[str, Any], log=lambda _m: None) -> Path:
    """Convert into a work folder beside `out`, check, move into place, write the sidecar
    (`record` + the check); returns the sidecar's path."""
    import importlib.metadata
    import os

    from leannet.deploy.artefact import write_sidecar

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.stem}.", dir=out.parent))
    try:
        built = export_coreml(model, work / out.name, input_size, batch)
        probe = np.random.default_rng(0).standard_normal((batch, *input_size), dtype=np.float32)
        check = check_coreml(built, model, probe, (batch, *input_size))
        log(f"  Core ML check: {check['verification_kind']}" + (f" ({check['note']})" if "note" in check else ""))
        if out.exists():
            shutil.rmtree(out)
        os.replace(built, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record = {**record, "verification": [], "coreml_check": check, "minimum_deployment_target": MIN_TARGET}
    record["versions"]["coremltools"] = importlib.metadata.version("coremltools")
    return write_sidecar(out, record)
