"""What every deploy tool shares: loading a model to deploy, the preprocessing sidecar written
beside each artefact, and one way to run any artefact (`open_runner`).

A sidecar is `<artefact stem>.json` (model.onnx -> model.json): size, crop, mean, std,
interpolation, class names, precision and source, so inference needs nothing else. Two artefacts
of one stem would share it, so an export never takes a name whose sidecar is another file's
(`artefact_out`). Runtimes are imported inside the functions that need them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from leannet.errors import ConfigError, LeannetError, WeightsError
from leannet.fileio import write_text
from leannet.runtime.runners import (
    ARTEFACT_SUFFIXES,
    Runner,
    onnxruntime_runner,
    open_runner,
    openvino_runner,
    run_all,
    torch_runner,
)

FORMATS = {"onnx": ".onnx", "openvino": ".xml", "executorch": ".pte", "ncnn": ".param",
           "coreml": ".mlpackage"}  # format -> suffix
FORMAT_OF = {"onnxruntime": "onnx", "openvino": "openvino", "executorch": "executorch",
             "ncnn": "ncnn"}  # runtime -> the export format it runs


@dataclass
class LoadedModel:
    """A PyTorch model ready to deploy, with what inference needs to know about it."""

    model: nn.Module
    arch: str
    preprocessing: dict[str, Any]
    classes: list[str]
    weights: str | None


def load_model(spec: str | Path, weights: str | Path | None = None, num_classes: int | None = None) -> LoadedModel:
    """A registry name (+ optional weights) or a leannet checkpoint (.safetensors whose metadata
    names the architecture), in eval mode.

    The model's arguments (num_classes, and what the weights imply, e.g. head_bias) come from
    the checkpoint's metadata; a weights file without a recorded num_classes needs an explicit
    `num_classes` (never guessed from tensor shapes), and one that disagrees with it is an
    error. Preprocessing and class names come from the metadata when it has them, else from
    the registry."""
    from leannet.factory import create_model
    from leannet.registry import model_info
    from leannet.weights import load_into, load_state_dict, read_metadata
    from leannet.weights.io import model_args

    spec_path = Path(spec)
    meta: dict[str, Any] = {}
    if spec_path.suffix == ".safetensors":
        if weights is not None:
            raise WeightsError(f"{spec}: a checkpoint already holds the weights; drop --weights")
        weights = spec_path
        meta = read_metadata(weights)
        if "arch" not in meta:
            raise WeightsError(f"{spec}: the checkpoint's metadata names no architecture ('arch'); "
                               "pass the model name and --weights instead")
        arch = meta["arch"]
    else:
        arch = str(spec)
    info = model_info(arch)
    args: dict[str, Any] = {"num_classes": num_classes or 1000}
    state = None
    if weights is not None:
        if not meta and Path(weights).suffix == ".safetensors":
            meta = read_metadata(weights)
        args = model_args(meta, str(weights), num_classes)
        state = load_state_dict(weights)
    model = create_model(info.name, **args)
    if state is not None:
        load_into(model, state, source=str(weights))
    n = args["num_classes"]
    pre = {**info.preprocessing(), **meta.get("preprocessing", {})}
    classes = meta.get("classes") or meta.get("class_names") or [str(i) for i in range(n)]
    if len(classes) != n:
        raise WeightsError(f"{weights}: metadata lists {len(classes)} class names for {n} outputs")
    return LoadedModel(model.eval(), info.name, pre, [str(c) for c in classes],
                       str(weights) if weights is not None else None)


# --- sidecar -------------------------------------------------------------------------------------


def sidecar_path(artefact: str | Path) -> Path:
    return Path(artefact).with_suffix(".json")


def write_sidecar(artefact: str | Path, record: dict[str, Any]) -> Path:
    path = sidecar_path(artefact)
    write_text(path, json.dumps(record, indent=2) + "\n")
    return path


def publish(built: Path, out: Path, record: dict[str, Any]) -> Path:
    """Move an artefact built in a work folder into place (an OpenVINO .xml with its .bin, the
    .bin first so the .xml never points at a missing file) and write its sidecar; returns the
    sidecar's path."""
    if built.suffix in (".xml", ".param"):  # OpenVINO IR and ncnn keep weights in a .bin
        os.replace(built.with_suffix(".bin"), out.with_suffix(".bin"))
    os.replace(built, out)
    return write_sidecar(out, record)


def artefact_out(out: str | Path | None, default: Path, format: str, task: str = "classification") -> Path:
    """Where an export goes: `out` as given (checked), else `default` + the format's suffix, or,
    when that name's sidecar is taken (a sibling artefact's, w.onnx exported before w.xml, or
    another file's), `default-xml.xml`."""
    suffix = FORMATS[format]
    if out is not None:
        out = Path(out)
        if out.suffix != suffix:
            raise ConfigError(f"--out {out}: a {format} artefact must end in {suffix}")
        check_sidecar_free(out, task)
        return out
    first = default.with_name(default.name + suffix)
    try:
        check_sidecar_free(first, task)
        return first
    except ConfigError:
        second = default.with_name(f"{default.name}-{suffix[1:]}{suffix}")
        check_sidecar_free(second, task)
        return second


def check_sidecar_free(out: str | Path, task: str = "classification") -> None:
    """Refuse an export whose sidecar would overwrite a JSON that is not an earlier export of this
    very artefact: `leannet convert`'s metadata of a checkpoint with the same stem, a user's file,
    or the sidecar of a sibling artefact (w.onnx and w.xml would share w.json)."""
    out = Path(out)
    side = sidecar_path(out)
    if not side.exists():
        return
    kind = "detector" if task == "detection" else "classifier"
    try:
        record = json.loads(side.read_text())
        ours = (isinstance(record, dict) and "input_size" in record
                and record.get("task", "classification") == task)
    except (json.JSONDecodeError, UnicodeDecodeError):
        ours = False
    if not ours:
        raise ConfigError(f"{side} exists and is not a {kind} export's sidecar; the export would "
                          f"overwrite it: choose another --out")
    sibling = record.get("artefact")
    if sibling and sibling != out.name and (out.parent / sibling).exists():
        raise ConfigError(f"{side} is the sidecar of {sibling}; exporting {out.name} would overwrite it: "
                          f"give the artefact another name (e.g. {out.stem}-{out.suffix[1:]}{out.suffix})")


def read_sidecar(artefact: str | Path) -> dict[str, Any]:
    path = sidecar_path(artefact)
    if not path.is_file():
        raise LeannetError(f"{path}: no preprocessing sidecar beside {Path(artefact).name}; "
                           "export it with `leannet export` (or write the JSON by hand)")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise LeannetError(f"{path}: not valid JSON ({e})") from None
    missing = [k for k in ("input_size", "mean", "std", "classes") if k not in record]
    if missing:
        raise LeannetError(f"{path}: sidecar lacks {', '.join(missing)}")
    return record


# --- running artefacts: one runner type for every tool (leannet.runtime.runners) ------------------

__all__ = ["ARTEFACT_SUFFIXES", "FORMATS", "FORMAT_OF", "LoadedModel", "Runner", "artefact_out", "check_sidecar_free", "load_model", "onnxruntime_runner", "open_runner",
           "openvino_runner", "read_sidecar", "run_all", "sidecar_path", "torch_runner", "write_sidecar"]
