"""`select`: which model, runtime and precision to ship on this machine under a latency budget.

The candidates are measured here by the benchmark sweep (`leannet.bench.sweep.bench`,
reusing valid cached rows). A registry name stands for the model with its published weights:
its accuracy is the ImageNet top-1 published for those weights (`leannet weights`), in fp32
and bf16 at their input size; a checkpoint or an artefact not exported from them has no
accuracy until measured on an evaluation set (`eval_set`, which measures every cell, INT8
included). A candidate without an accuracy is not picked.

Weights do not change latency, so a zoo model whose published weights are not on this machine
is still timed (random init) and ranked by the top-1 published for the weights it would ship;
the selection says they are not here. Exporting the pick fetches them; where they can't be had
(no public checkpoint, offline with nothing cached) the export is refused with one line saying
how to get them, unless `random_weights` asks for a latency-only artefact, which its sidecar
then states. The summary always names the pick's weights.

A candidate fits when its latency with its spread, median + IQR over the interleaved rounds,
is within the budget. The pick is the most accurate fitting candidate; ties go to the faster
one, then to the name. An INT8 candidate that loses more than `max_int8_drop` top-1 points
against the same model in fp32 on the same runtime is left out. When nothing fits, the
selection says so and names the fastest candidate.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from leannet.errors import LeannetError

LABEL_WIDTH = 44  # characters of the label column: the seeds preset's longest label + precision fits

T = TypeVar("T")


def pareto_front(items: Sequence[T], latency: Callable[[T], float], accuracy: Callable[[T], float],
                 name: Callable[[T], str] = str) -> list[T]:
    """The items no other item beats on both latency and accuracy, by increasing latency: the
    one definition of the front, shared by `choose` and the report. Of items equal on both, the
    first by `name` stands for them."""
    front, best = [], float("-inf")
    for it in sorted(items, key=lambda it: (latency(it), -accuracy(it), name(it))):
        if accuracy(it) > best:
            front.append(it)
            best = accuracy(it)
    return front


@dataclass
class Candidate:
    model: str
    runtime: str
    precision: str
    batch: int
    median_ms: float
    upper_ms: float  # median + IQR: the latency the budget is held against
    top1: float | None
    top1_source: str
    contended: bool
    weights: str = "unknown"  # provenance of the weights it was timed with (the row's)
    row: dict[str, Any] = field(repr=False, default_factory=dict)
    excluded: str | None = None  # why it cannot be picked, when it cannot

    @property
    def label(self) -> str:
        return f"{self.model} / {self.runtime} / {self.precision}"


@dataclass
class Selection:
    budget_ms: float
    candidates: list[Candidate]  # every measured cell, fastest first
    fitting: list[Candidate]  # eligible and within budget, best first
    front: list[Candidate]  # latency/accuracy Pareto front of the eligible candidates
    pick: Candidate | None
    fastest: Candidate | None
    artefact: Path | None = None
    notes: list[str] = field(default_factory=list)
    weights: str | None = None  # the pick's weights, as shipped when exported

    def summary(self) -> str:
        lines = [f"budget {self.budget_ms:g} ms (median + IQR must fit): "
                 f"{len(self.fitting)} of {len(self.candidates)} candidates fit"]
        w = LABEL_WIDTH
        lines.append(f"{'':2}{'model / runtime / precision':{w}} {'median':>8} {'+IQR':>8} {'top-1':>7}  note")
        for c in self.candidates:
            mark = "*" if c is self.pick else ("+" if c in self.front else " ")
            note = c.excluded or ("over budget" if c not in self.fitting else "")
            if c.contended:
                note = (note + "; " if note else "") + "contended"
            top1 = "-" if c.top1 is None else f"{c.top1:.2f}"
            lines.append(f"{mark} {c.label:{w}} {c.median_ms:8.3f} {c.upper_ms:8.3f} {top1:>7}  {note}")
        lines.append("(* pick, + Pareto front)")
        if self.pick is not None:
            p = self.pick
            lines.append(f"pick: {p.label} at batch {p.batch}: {p.median_ms:.3f} ms (+IQR {p.upper_ms:.3f} ms), "
                         f"top-1 {p.top1:.2f}% ({p.top1_source})")
            lines.append(f"  weights: {self.weights or p.weights}")
            if p.contended:
                lines.append("  warning: its timing ran beside other work; re-run on a quiet machine to confirm")
        else:
            f = self.fastest
            lines.append(f"nothing fits {self.budget_ms:g} ms" + (
                f"; the fastest candidate is {f.label} at {f.median_ms:.3f} ms (+IQR {f.upper_ms:.3f} ms)"
                if f is not None else ""))
        if self.artefact is not None:
            lines.append(f"wrote {self.artefact}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def candidates_from_rows(rows: Sequence[dict[str, Any]], max_int8_drop: float | None = 1.0) -> list[Candidate]:
    """One candidate per successful row, with why it is excluded where it is."""
    cands = []
    for r in rows:
        if "error" in r or r.get("median_ms") is None:
            continue
        top1, top1_source = r.get("top1"), r.get("top1_source", "unknown")
        if top1 is None:
            top1, top1_source = shipped_top1(r) or (None, top1_source)
        cands.append(Candidate(r["model"], r["runtime"], r["precision"], r["batch"], float(r["median_ms"]),
                               float(r["median_ms"]) + float(r.get("iqr_ms") or 0.0), top1, top1_source,
                               bool(r.get("contended")), str(r.get("weights") or "unknown"), dict(r)))
    fp32 = {(c.model, c.runtime, c.batch): c.top1 for c in cands if c.precision == "fp32"}
    for c in cands:
        if c.top1 is None:
            c.excluded = ("INT8 accuracy unknown: give --eval" if c.precision == "int8"
                          else "no accuracy known: give --eval")
        elif c.precision == "int8" and max_int8_drop is not None:
            ref = fp32.get((c.model, c.runtime, c.batch))
            if ref is not None and ref - c.top1 > max_int8_drop:
                c.excluded = f"INT8 loses {ref - c.top1:.2f} points (limit {max_int8_drop:g})"
    return sorted(cands, key=lambda c: (c.median_ms, c.label))


def shipped_top1(row: dict[str, Any]) -> tuple[float, str] | None:
    """For a zoo row timed with random weights because its published ones are not here: the
    top-1 published for the weights an export of it would fetch (fp32/bf16, at their input
    size). None for everything else: only those weights have that figure."""
    from leannet.registry import model_info
    from leannet.weights.hub import RANDOM_WEIGHTS
    from leannet.weights.sources import weight_source

    if row.get("source_kind") != "zoo" or row.get("weights") != RANDOM_WEIGHTS or row.get("precision") == "int8":
        return None
    source = weight_source(row["model"])
    size = model_info(row["model"]).preprocessing()["input_size"][1:]
    if source.top1 is None or list(row.get("input_shape", [])[2:]) != list(size):
        return None
    return source.top1, f"published for {source.label} ({source.top1_source}); timed without them"


def choose(rows: Sequence[dict[str, Any]], budget_ms: float, max_int8_drop: float | None = 1.0) -> Selection:
    """The selection over measured rows (no measuring: see `select`)."""
    if not budget_ms > 0:
        raise LeannetError(f"the budget must be a positive number of milliseconds, got {budget_ms}")
    cands = candidates_from_rows(rows, max_int8_drop)
    eligible = [c for c in cands if c.excluded is None]
    fitting = sorted((c for c in eligible if c.upper_ms <= budget_ms),
                     key=lambda c: (-c.top1, c.median_ms, c.label))
    front = pareto_front(eligible, lambda c: c.median_ms, lambda c: c.top1, lambda c: c.label)
    return Selection(budget_ms, cands, fitting, front, fitting[0] if fitting else None,
                     cands[0] if cands else None)


def select(
    budget_ms: float,
    models: Sequence[str] = (),
    preset: str | None = None,
    batch: int = 1,
    threads: int | None = None,
    runtimes: Sequence[str] | None = None,
    precisions: Sequence[str] = ("fp32",),
    eval_set: str | Path | None = None,
    calib: str | Path | None = None,
    max_int8_drop: float | None = 1.0,
    export: str | Path | None = None,
    out: str | Path = "runs/bench",
    force: bool = False,
    min_time: float = 3.0,
    rounds: int = 10,
    progress: bool = True,
    random_weights: bool = False,
) -> Selection:
    """Measure the candidates here (cached rows reused), choose, and optionally export the pick
    with its published weights to `export` (a folder) as a verified artefact with its sidecar;
    without weights the export is refused unless `random_weights` (see the module doc)."""
    from leannet.bench.sweep import bench

    if not budget_ms > 0:
        raise LeannetError(f"the budget must be a positive number of milliseconds, got {budget_ms}")
    sweep = bench(models, preset=preset, runtimes=runtimes, precisions=precisions, batches=(batch,),
                  threads=threads, min_time=min_time, rounds=rounds, out=out, force=force,
                  calib=calib if calib is not None else eval_set, eval_set=eval_set, progress=progress)
    sel = choose(sweep.rows, budget_ms, max_int8_drop)
    sel.notes += sweep.notes
    if sel.pick is not None:
        sel.weights = _weights_line(sel.pick)
        if export is not None:
            sel.artefact, sel.weights = export_pick(sel.pick, Path(export), calib if calib is not None else eval_set,
                                                    random_weights=random_weights)
    return sel


def _weights_line(pick: Candidate) -> str:
    """The pick's weights as the summary states them before any export: the row's, or, for a
    zoo pick timed with random weights, whether its published ones are here now."""
    from leannet.weights.hub import RANDOM_WEIGHTS, published_weights
    from leannet.weights.sources import weight_source

    if pick.weights != RANDOM_WEIGHTS or pick.row.get("source_kind") != "zoo":
        return pick.weights
    with contextlib.suppress(LeannetError):  # fetched since the row was timed
        return f"{published_weights(pick.model, download=False).provenance} (cached here)"
    source = weight_source(pick.model)
    if source.kind == "none":
        return f"none published ({source.note}); timed with random weights"
    return (f"{source.label}, not on this machine (timed with random weights: latency is the same); "
            "--export fetches them")


def export_pick(pick: Candidate, folder: Path, calib: str | Path | None = None,
                random_weights: bool = False) -> tuple[Path, str]:
    """Write the pick where it runs, with the weights it was chosen for: an ONNX or OpenVINO
    artefact verified against PyTorch (leannet.deploy.export), or, for a PyTorch runtime, the
    checkpoint in leannet's format. A zoo pick gets its published weights (fetched if need
    be); without them nothing is written and the error says how to get them, unless
    `random_weights`. Returns the path and the weights' provenance."""
    from leannet.deploy.artefact import FORMAT_OF, FORMATS
    from leannet.deploy.export import export

    row = pick.row
    if row.get("source_kind") == "artefact":
        import shutil

        src = Path(row["path"])
        folder.mkdir(parents=True, exist_ok=True)
        for f in (src, src.with_suffix(".json"), src.with_suffix(".bin")):
            if f.is_file():
                shutil.copy2(f, folder / f.name)
        return folder / src.name, pick.weights
    spec = row.get("path") or row["model"]
    if pick.runtime in ("eager", "channels_last", "compile", "cuda"):
        from leannet.deploy.artefact import load_model, provenance_record
        from leannet.weights import save_weights

        loaded = load_model(spec, random_weights=random_weights)
        path = folder / f"{pick.model}.safetensors"
        save_weights(loaded.model, path, meta={"arch": loaded.arch, "num_classes": len(loaded.classes),
                                               "classes": loaded.classes, "preprocessing": loaded.preprocessing,
                                               **provenance_record(loaded),
                                               "selected": {k: row[k] for k in ("runtime", "precision", "batch")}})
        return path, loaded.weights
    fmt = FORMAT_OF[pick.runtime]
    suffix = FORMATS[fmt]
    tag = "" if pick.precision == "fp32" else f"-{pick.precision}"
    result = export(spec, format=fmt, out=folder / f"{pick.model}{tag}{suffix}", batch=pick.batch,
                    img=row.get("img"), precision="bf16" if pick.precision == "bf16" else "fp32",
                    int8=pick.precision == "int8", calib=calib, random_weights=random_weights)
    return result.path, result.record["weights"]
