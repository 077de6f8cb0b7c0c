"""What a sweep times and what a cell preparer is given: shared by the sweep
(`leannet.bench.sweep`) and the preparers of each source kind it calls (classifiers in the
sweep itself, detectors in `leannet.bench.detectors`), so the preparers never import the sweep
and the sweep imports each preparer only when a source of its kind is asked for.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch

from leannet.fileio import sha256


@dataclass(frozen=True)
class Source:
    """Something to time: a zoo model, a checkpoint, an exported artefact, or a detector file."""

    spec: str  # as given: a registry name, or a file path
    kind: str  # "zoo" | "checkpoint" | "artefact" (a detector is a checkpoint or an artefact)
    label: str  # the model name a table shows
    digest: str | None = None  # sha256 prefix of a file source (part of the cache key)
    task: str = "classify"  # "detect": prepared by leannet.bench.detectors

    @property
    def id(self) -> str:
        return self.label if self.kind == "zoo" else f"{self.kind}:{self.digest}"


class CellId(NamedTuple):
    """One cell of the plan. `hw` is the spatial size it runs at (a detector's own image size);
    `shape` the whole input shape when known before loading (an artefact's), else None."""

    source: Source
    runtime: str
    precision: str
    batch: int
    hw: tuple[int, int]
    shape: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class Context:
    """What every cell preparer of one sweep shares."""

    env: dict[str, Any]
    threads: int
    deployed: bool
    workdir: Path  # a temporary folder for exported files, removed after the sweep
    console: Any  # rich Console (stderr) for one-line errors
    channels: int | None = None  # the C of `--shape`, when given
    calib: str | Path | None = None
    eval_set: str | Path | None = None


def img_label(hw: tuple[int, int]) -> int | str:
    """A row's `img`: the side of a square input (as rows always recorded it), else "HxW"."""
    h, w = hw
    return h if h == w else f"{h}x{w}"


def file_digest(path: Path) -> str:
    """A file source's identity: its sha256 (an OpenVINO .xml's with its .bin's), 16 hex digits."""
    digest = sha256(path)
    if path.suffix == ".xml" and path.with_suffix(".bin").is_file():
        digest = hashlib.sha256((digest + sha256(path.with_suffix(".bin"))).encode()).hexdigest()
    return digest[:16]


def readers(spec: str) -> list[str]:
    """The runtimes that read an artefact file: ONNX Runtime .onnx; OpenVINO .onnx and .xml;
    ExecuTorch .pte, ncnn .param, LiteRT .tflite."""
    from leannet.bench.mobile import SUFFIX_OF

    reads = {"onnxruntime": (".onnx",), "openvino": (".onnx", ".xml"),
             **{rt: (suffix,) for rt, suffix in SUFFIX_OF.items()}}
    return [rt for rt, suffixes in reads.items() if spec.endswith(suffixes)]


def artefact_runs(source: Source, runtime: str, precision: str) -> bool:
    """An exported artefact runs on the runtimes that read it (`readers`), in the one precision
    it was exported at (its sidecar's, else fp32)."""
    from leannet.deploy.artefact import sidecar_fields

    return runtime in readers(source.spec) and precision == sidecar_fields(source.spec).get("precision", "fp32")


def static_costs(model: torch.nn.Module, shape: tuple[int, ...]) -> dict[str, int]:
    """The row's static counts (leannet.profile) of `model` on an input of `shape`."""
    from leannet.profile.complexity import profile_model

    totals = profile_model(model, tuple(shape[1:]), shape[0])["totals"]
    return {k: totals[k] for k in ("params", "macs", "memory_access_bytes", "activations")}


def error_text(e: BaseException) -> str:
    from leannet.errors import reason

    return f"{type(e).__name__}: {reason(e)}"
