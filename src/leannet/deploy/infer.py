"""`infer`: top-k predictions for image files from a model or an exported artefact.

The source is a registry name (with its published weights, or + a checkpoint), a leannet
checkpoint (.safetensors), an .onnx file or an OpenVINO .xml. The weights' provenance is part
of every answer: a model or artefact with random weights (only on `--random-weights`) is said
to be random on stderr and in each JSON line, so nobody mistakes its top-5 for predictions.
PyTorch models run on the `eager` runtime, as bench and select name it. Preprocessing comes
from the checkpoint metadata or the artefact's sidecar and goes through the same
`eval_transform`, so PyTorch and every runtime see identical tensors. Unreadable images are
reported one per line with the reason; the others still run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from leannet.data.images import find_images, image_batches
from leannet.deploy.artefact import (
    ARTEFACT_SUFFIXES,
    Runner,
    load_model,
    open_runner,
    read_sidecar,
    run_all,
    torch_runner,
)
from leannet.errors import LeannetError
from leannet.weights.hub import RANDOM_WEIGHTS


@dataclass
class Prediction:
    path: str
    labels: list[str]
    scores: list[float]  # softmax probabilities, best first
    error: str | None = None  # set when the image could not be read (labels/scores empty)

    def as_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"path": self.path, "error": self.error}
        return {"path": self.path, "labels": self.labels, "scores": [round(s, 6) for s in self.scores]}


class Predictor:
    """Loads a model or artefact once; `predict(paths)` yields one Prediction per path, in order."""

    def __init__(self, source: str | Path, weights: str | Path | None = None,
                 runtime: str | None = None, threads: int | None = None, random_weights: bool = False) -> None:
        path = Path(source)
        if path.suffix in ARTEFACT_SUFFIXES:
            if weights is not None:
                raise LeannetError(f"{path}: an exported artefact holds its weights; drop --weights")
            if not path.is_file():
                raise LeannetError(f"{path}: no such file")
            record = read_sidecar(path)
            if record.get("task") == "detection":
                raise LeannetError(f"{path} is an exported detector; run it with `leannet detect infer`")
            self.runner: Runner = open_runner(path, runtime, threads)
            self.pre = {k: record[k] for k in ("input_size", "mean", "std", "interpolation", "crop_pct", "channel_order") if k in record}
            self.classes = [str(c) for c in record["classes"]]
            # an artefact exported before sidecars recorded weights says nothing: unknown, not random
            self.weights: str = str(record.get("weights") or "unknown (the sidecar does not record it)")
        else:
            if runtime not in (None, "eager"):
                raise LeannetError(f"--runtime {runtime} runs exported artefacts; export first "
                                   f"(`leannet export {source} ...`) or use --runtime eager")
            loaded = load_model(source, weights, random_weights=random_weights)
            self.runner = torch_runner(loaded.model, threads=threads)
            self.pre, self.classes = loaded.preprocessing, loaded.classes
            self.weights = loaded.weights

    @property
    def random(self) -> bool:
        return self.weights == RANDOM_WEIGHTS

    def predict(self, paths: Iterable[Path], topk: int = 5, batch_size: int = 16) -> Iterator[Prediction]:
        failed: list[Prediction] = []
        k = max(1, min(topk, len(self.classes)))
        bs = self.runner.batch or batch_size

        def on_error(p: Path, why: str) -> None:
            failed.append(Prediction(str(p), [], [], why))

        for done, x in image_batches(list(paths), self.pre, bs, on_error):
            yield from failed
            failed.clear()
            probs = _softmax(run_all(self.runner, x))
            for p, row in zip(done, probs, strict=True):
                best = np.argsort(-row, kind="stable")[:k]
                yield Prediction(str(p), [self.classes[i] for i in best], [float(row[i]) for i in best])
        yield from failed


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def infer(source: str | Path, inputs: Iterable[str | Path], weights: str | Path | None = None,
          topk: int = 5, runtime: str | None = None, batch_size: int = 16, threads: int | None = None,
          as_json: bool = False, out: TextIO | None = None, progress: bool = True,
          random_weights: bool = False) -> int:
    """Print predictions for `inputs` (files and folders) to `out`: a table, or JSON lines with
    `--json` (each with the weights' provenance). Random weights are named on stderr first.
    Unreadable files are reported on stderr with the reason. Returns how many failed."""
    from rich.console import Console
    from rich.progress import Progress

    out = out or sys.stdout
    paths = find_images(inputs)
    if not paths:
        raise LeannetError(f"no images found in {', '.join(map(str, inputs))}")
    predictor = Predictor(source, weights, runtime, threads, random_weights)
    if predictor.random:
        print(f"leannet: warning: {source} has random weights ({RANDOM_WEIGHTS}): these predictions "
              "mean nothing", file=sys.stderr)
    rows: list[Prediction] = []
    n_failed = 0
    show = progress and sys.stderr.isatty()  # a redirected stderr gets no bar (nor its blank line)
    with Progress(console=Console(stderr=True), transient=True, disable=not show) as bar:
        task = bar.add_task("infer", total=len(paths))
        for pred in predictor.predict(paths, topk, batch_size):
            bar.advance(task)
            if pred.error is not None:
                n_failed += 1
                print(f"leannet: skipped {pred.error}", file=sys.stderr)
            if as_json:
                print(json.dumps(pred.as_dict() | {"weights": predictor.weights}), file=out)
            elif pred.error is None:
                rows.append(pred)
    if not as_json and rows:
        _print_table(rows, out)
    if n_failed:
        print(f"leannet: {n_failed} of {len(paths)} images could not be read", file=sys.stderr)
    return n_failed


def _print_table(rows: list[Prediction], out: TextIO) -> None:
    width = max(len("path"), *(len(r.path) for r in rows))
    k = len(rows[0].labels)
    print(f"{'path':<{width}}  " + "  ".join(f"top{i + 1:<11}" for i in range(k)).rstrip(), file=out)
    for r in rows:
        cells = "  ".join(f"{lab} {s:.3f}".ljust(14) for lab, s in zip(r.labels, r.scores, strict=True))
        print(f"{r.path:<{width}}  {cells}".rstrip(), file=out)
