"""What every deploy tool shares: loading a model to deploy, the preprocessing sidecar written
beside each artefact, and one way to run any artefact (`open_runner`).

A sidecar is `<artefact stem>.json` (model.onnx -> model.json): size, crop, mean, std,
interpolation, class names, precision and source, so inference needs nothing else; and the
weights' provenance (`provenance_record`: published source and commit, a checkpoint's path and
sha256, or "random (latency only)"), so no later tool presents random outputs as predictions.
Two artefacts of one stem would share it, so an export never takes a name whose sidecar is
another file's (`artefact_out`). Runtimes are imported inside the functions that need them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from leannet.errors import ConfigError, LeannetError, WeightsError
from leannet.fileio import sha256, write_text
from leannet.runtime.runners import (
    ARTEFACT_SUFFIXES,
    Runner,
    onnxruntime_runner,
    open_runner,
    openvino_runner,
    run_all,
    torch_runner,
)
from leannet.weights.hub import RANDOM_WEIGHTS

FORMATS = {"onnx": ".onnx", "openvino": ".xml", "executorch": ".pte", "ncnn": ".param",
           "coreml": ".mlpackage"}  # format -> suffix
FORMAT_OF = {"onnxruntime": "onnx", "openvino": "openvino", "executorch": "executorch",
             "ncnn": "ncnn"}  # runtime -> the export format it runs


@dataclass
class LoadedModel:
    """A PyTorch model ready to deploy, with what inference needs to know about it.

    `weights` is the provenance every record carries: a pinned published source
    (`hf-hub:timm/lcnet_100.ra2_in1k@<commit>`, a URL), a checkpoint path (its sha256 in
    `weights_sha256`), or `RANDOM_WEIGHTS`. `top1` is the ImageNet-1k top-1 published for
    exactly these weights, set only when they are the published ones."""

    model: nn.Module
    arch: str
    preprocessing: dict[str, Any]
    classes: list[str]
    weights: str
    weights_sha256: str | None = None
    top1: float | None = None
    top1_source: str = ""

    @property
    def random(self) -> bool:
        return self.weights == RANDOM_WEIGHTS


RANDOM_HINT = "or pass --random-weights for a latency-only model with random weights"


def load_model(spec: str | Path, weights: str | Path | None = None, num_classes: int | None = None, *,
               random_weights: bool = False, download: bool = True) -> LoadedModel:
    """A registry name (+ optional weights) or a leannet checkpoint (.safetensors whose metadata
    names the architecture), in eval mode.

    A registry name alone means the model with its published weights (`pretrained=True`: the
    caches, or the hub when `download`). Where there are none (no public checkpoint, offline
    with nothing cached) it is a one-line WeightsError saying why and how to get them, unless
    `random_weights`: then the model keeps its random initialisation and says so
    (`LoadedModel.weights == RANDOM_WEIGHTS`).

    The model's arguments come from the checkpoint: num_classes as the metadata records it,
    else from the classifier tensor's shape (a plain state_dict), and what the weights imply
    (e.g. head_bias); an explicit `num_classes` the metadata contradicts is an error.
    Preprocessing and class names come from the metadata when it has them, else from the
    registry."""
    from leannet.factory import create_model
    from leannet.registry import model_info
    from leannet.weights import load_into, load_state_dict, read_metadata
    from leannet.weights.hub import published_weights
    from leannet.weights.io import classifier_classes, model_args, recorded_classes

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
    published = None
    if weights is None:
        try:
            published = published_weights(info.name, download)
            weights = published.path
        except LeannetError as e:
            if not random_weights:
                raise WeightsError(f"{e}; {RANDOM_HINT}") from None
    args: dict[str, Any] = {"num_classes": num_classes or 1000}
    state = None
    if weights is not None:
        if not meta and Path(weights).suffix == ".safetensors":
            meta = read_metadata(weights)
        state = load_state_dict(weights)
        from_tensors = None
        if num_classes is None and recorded_classes(meta) is None:
            from_tensors = classifier_classes(create_model(info.name, **meta.get("model_args", {})), state)
        args = model_args(meta, str(weights), num_classes, from_tensors)
    model = create_model(info.name, **args)
    if state is not None:
        load_into(model, state, source=str(weights))
    n = args["num_classes"]
    pre = {**info.preprocessing(), **meta.get("preprocessing", {})}
    classes = meta.get("classes") or meta.get("class_names") or [str(i) for i in range(n)]
    if len(classes) != n:
        raise WeightsError(f"{weights}: metadata lists {len(classes)} class names for {n} outputs")
    if published is not None:
        provenance = dict(weights=published.provenance, weights_sha256=published.sha256, top1=published.top1,
                          top1_source=published.top1_source)
    elif meta.get("weights") == RANDOM_WEIGHTS:  # saved from a random model (select --random-weights)
        provenance = dict(weights=RANDOM_WEIGHTS)
    elif weights is not None:
        provenance = dict(weights=str(weights), weights_sha256=sha256(Path(weights)))
    else:
        provenance = dict(weights=RANDOM_WEIGHTS)
    return LoadedModel(model.eval(), info.name, pre, [str(c) for c in classes], **provenance)


def provenance_record(loaded: LoadedModel, input_size: list[int] | None = None) -> dict[str, Any]:
    """What an artefact's sidecar says of its weights: provenance, sha256 and, for published
    weights exported at the input size they were published for, the top-1 published for them
    (an export verified against them carries that figure; anything else must measure its own)."""
    rec: dict[str, Any] = {"weights": loaded.weights}
    if loaded.weights_sha256:
        rec["weights_sha256"] = loaded.weights_sha256
    same_size = input_size is None or list(input_size) == list(loaded.preprocessing["input_size"])
    if loaded.top1 is not None and same_size:
        rec |= {"weights_top1": loaded.top1, "weights_top1_source": loaded.top1_source}
    return rec


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


def sidecar_fields(artefact: str | Path) -> dict[str, Any]:
    """The sidecar's record as it is, or {} when there is none or it is not a JSON object:
    for callers that only look up optional fields (precision, task, source model) and must
    not fail on a third-party artefact; `read_sidecar` is the checked reader."""
    path = sidecar_path(artefact)
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return record if isinstance(record, dict) else {}


# --- running artefacts: one runner type for every tool (leannet.runtime.runners) ------------------

__all__ = [
    "ARTEFACT_SUFFIXES",
    "FORMATS",
    "FORMAT_OF",
    "RANDOM_WEIGHTS",
    "LoadedModel",
    "Runner",
    "artefact_out",
    "check_sidecar_free",
    "load_model",
    "onnxruntime_runner",
    "open_runner",
    "openvino_runner",
    "provenance_record",
    "read_sidecar",
    "run_all",
    "sidecar_fields",
    "sidecar_path",
    "torch_runner",
    "write_sidecar",
]
