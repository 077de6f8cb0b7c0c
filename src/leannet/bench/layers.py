"""Per-layer measured latency, per runtime, joined with each layer's static costs.

`layer_latency(model, runtime)` runs the model under the runtime's own profiler and attributes
every timed kernel to the layers of `leannet.profile.complexity.profile_model`:

* eager: `torch.profiler`, with a `record_function("mod::<path>")` range opened around every
  module call (forward pre/post hooks). A leaf module's time runs from the end of the previous
  range to the end of its own (the Python dispatch that leads to a call is its cost); an aten op
  run directly inside a non-leaf module (the `x + shortcut`, the SE gate's `mul`) is matched
  to that module's op row of the same name, in call order.
* onnxruntime: the session's profiling JSON (`SessionOptions.enable_profiling`): one
  `<node>_kernel_time` event per node per run and a `model_run` event per run.
* openvino: the infer request's performance counters (`PERF_COUNT`): real time per executed
  runtime node; the runtime model's `originalLayersNames` (rt_info) lists the ONNX nodes each
  (possibly fused) node computes.

ONNX node names keep the module path: the exporter names a node `/stages/stages.4/stages.4.0/
se/Mul`, read back as the longest module path its scopes spell (`stages.4.0.se`), then the
layer of that path (for a non-leaf module, the op row of the same op). Runtimes fuse: a node
that covers several layers (OpenVINO's conv + hard-swish) makes one *group* of them; a layer
no node names (ONNX Runtime fuses the activation into the conv and keeps only the conv's
name) joins the group of the layer before it, whose output it consumed; a node that names no
layer (a layout `Reorder`, a `Reshape`) joins the group of the node before it. Each output
row is one group and lists what it covers, so every layer of the model is attributed once.

Times are per inference: the mean over the profiled runs (after `warmup`) whose model time is
at most the median (a neighbour's time slice inflates a run as a whole). `model_ms` is the
runtime's own time for the whole inference in the same profiled runs (eager: the root
module's range; ONNX Runtime: `model_run`; OpenVINO: wall time of `infer`), and
`overhead_ms = model_ms - sum of rows` is what no layer accounts for (the runtime's
scheduling, input/output copies, the profiler's own cost). The static costs are of the form
that runs: for ONNX Runtime and OpenVINO the deployed (re-parameterised, BN-folded) model
that is exported; for eager the form asked for.
"""

from __future__ import annotations

import io
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from leannet.bench import machine
from leannet.extras import require

RUNTIMES = ("eager", "onnxruntime", "openvino")
RUNS = 20  # profiled inferences averaged per layer: enough that a 10 us layer reads steadily
WARMUP = 5  # untimed inferences first: allocator, caches, OpenVINO's first-run compilation


# --- mapping names to layers --------------------------------------------------------------------


def module_path(name: str, paths: set[str]) -> str:
    """The longest module path an exported node name spells: scopes `/a/a.0/a.0.1/conv/Conv`
    read as `a`, `a.0`, `a.0.1`, `a.0.1.conv` (a scope is either the full dotted path, as the
    exporter writes children of containers, or the attribute name under the previous one)."""
    cur = ""
    for comp in name.strip("/").split("/"):
        nxt = comp if (not cur or comp.startswith(cur + ".")) and comp in paths else \
            f"{cur}.{comp}" if cur else comp
        if nxt not in paths:
            break
        cur = nxt
    return cur


_ONNX_TO_ATEN = {"mul": "mul", "add": "add", "concat": "cat", "sub": "sub", "div": "div",
                 "split": "split", "slice": "slice", "gather": "index_select", "transpose": "clone"}


class _Index:
    """Profile rows by module path, for matching runtime names and eager ops to layers."""

    def __init__(self, rows: list[dict[str, Any]], leaves: set[str], canon: dict[str, str] | None = None):
        self.rows = rows
        # A module reachable under two names (a stage that calls its blocks' modules through a
        # list of its own) is exported under the name it was called by and profiled under its
        # first name: `canon` maps every name to the profiled one.
        self.canon = canon or {}
        self.by_path: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(rows):
            self.by_path[r["path"]].append(i)
        self.paths = set(self.by_path) | leaves | set(self.canon) | {p.rsplit(".", 1)[0] for p in self.by_path if "." in p}
        # every ancestor too, so module_path can walk down to a layer
        for p in list(self.paths):
            parts = p.split(".")
            self.paths.update(".".join(parts[:k]) for k in range(1, len(parts)))
        self.leaves = leaves
        self.aliases: dict[str, str] = {}  # a tensor name a runtime gave a node -> ONNX node name
        self._answers: dict[str, list[int]] = {}
        self._taken: dict[tuple[str, str], int] = defaultdict(int)

    def for_onnx_node(self, name: str) -> list[int]:
        """Rows an ONNX node (by name) computes: the row of its module path; for a path with
        several rows (a non-leaf module's ops: a stage's `cat`s and `slice`s), the next row
        of the node's op not yet given to another node (nodes are asked in execution order),
        else none (the node then joins its neighbour). OpenVINO names the last node after the
        model's output (`logits`): `aliases` maps it back. The answer per name is fixed."""
        name = self.aliases.get(name, name)
        if name in self._answers:
            return self._answers[name]
        path = module_path(name, self.paths)
        path = self.canon.get(path, path)
        rows = self.by_path.get(path, []) if path else []
        if len(rows) > 1:
            parts = name.rstrip("/").split("/")
            op = parts[-1].split("_")[0].lower()
            if op in ("withoutbiases", "fused") and len(parts) > 1:
                op = parts[-2].split("_")[0].lower()
            want = _ONNX_TO_ATEN.get(op, op)
            same = [i for i in rows if self.rows[i]["op"].lower() in (want, op)]
            k = self._taken[(path, want)]
            self._taken[(path, want)] += 1
            rows = [same[k]] if k < len(same) else []
        self._answers[name] = list(rows)
        return self._answers[name]


def _group(n_layers: int, hits: list[tuple[str, str, float, list[int]]]) -> list[dict[str, Any]]:
    """Union layers covered by one node, give layers no node names to the layer before them,
    nodes that name no layer to the node before them; one group per connected set."""
    parent = list(range(n_layers))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    last: list[int] | None = None
    resolved: list[tuple[str, str, float, list[int], bool]] = []
    pending: list[tuple[str, str, float]] = []
    for name, kind, ms, layers in hits:
        if not layers:
            if last is None:
                pending.append((name, kind, ms))
            else:
                resolved.append((name, kind, ms, last, True))
            continue
        for a in layers[1:]:
            union(layers[0], a)
        last = layers
        for p in pending:  # nodes before the first named one belong to it
            resolved.append((*p, layers, True))
        pending = []
        resolved.append((name, kind, ms, layers, False))
    if pending:  # no node named any layer: all time to the first layer
        resolved.extend((*p, [0], True) for p in pending)
    named = {i for *_, layers, borrowed in resolved if not borrowed for i in layers}
    for i in range(n_layers):
        if i not in named:
            union(i, i - 1 if i > 0 else min(1, n_layers - 1))
    groups: dict[int, dict[str, Any]] = {}
    for i in range(n_layers):
        groups.setdefault(find(i), {"layers": [], "nodes": [], "ms": 0.0, "unnamed_nodes": 0})["layers"].append(i)
    for name, kind, ms, layers, borrowed in resolved:
        g = groups[find(layers[0])]
        g["ms"] += ms
        g["nodes"].append(f"{kind}:{name}" if kind else name)
        g["unnamed_nodes"] += borrowed
    return [groups[k] for k in sorted(groups)]


# --- per runtime --------------------------------------------------------------------------------


Run = tuple[float, list[tuple[str, str, float, list[int]]]]  # model ms, (node, kind, ms, rows) in order


def _quiet(runs: list[Run]) -> tuple[list[tuple[str, str, float, list[int]]], float, int]:
    """Average the runs whose model time is at most the median: a neighbour that takes a
    time slice inflates one run as a whole, so the slower half is set aside."""
    cut = float(np.median([ms for ms, _ in runs]))
    keep = [r for r in runs if r[0] <= cut]
    base = keep[0][1]
    hits = [(name, kind, float(np.mean([r[1][j][2] for r in keep if j < len(r[1])])), rows)
            for j, (name, kind, _, rows) in enumerate(base)]
    return hits, float(np.mean([ms for ms, _ in keep])), len(keep)


def _eager(model: nn.Module, x: torch.Tensor, index: _Index, names: dict[nn.Module, str],
           threads: int, runs: int, warmup: int) -> list[Run]:
    """A `record_function` range around the model and each leaf module (only those: every
    range costs Python time the runtime would not spend); aten ops run between leaves are
    matched in order to the profile's rows outside leaf modules with the same op. A row's time
    runs from the end of the previous range to the end of its own: eager spends the Python
    dispatch between two layers on the way to the second, so that is where it is counted."""
    from torch.profiler import ProfilerActivity, profile

    from leannet.runtime.threads import torch_threads

    stack: list[Any] = []

    def pre(m, args):
        rf = torch.autograd.profiler.record_function(f"mod::{names[m]}")
        rf.__enter__()
        stack.append(rf)

    def post(m, args, out):
        stack.pop().__exit__(None, None, None)

    handles = [h for m in model.modules() if m is model or names[m] in index.leaves
               for h in (m.register_forward_pre_hook(pre), m.register_forward_hook(post))]
    try:
        with torch_threads(threads), torch.inference_mode():
            for _ in range(warmup):
                model(x)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(runs):
                    model(x)
    finally:
        for h in handles:
            h.remove()
    root_name = f"mod::{names[model]}"
    roots = sorted((e for e in prof.events() if e.name == root_name), key=lambda e: e.time_range.start)
    outside: dict[str, list[int]] = defaultdict(list)  # op -> rows outside leaf modules, in order
    for i, r in enumerate(index.rows):
        if r["path"] not in index.leaves:
            outside[r["op"]].append(i)

    def names_below(ev) -> list[str]:
        out, todo = [], [ev]
        while todo:
            e = todo.pop(0)
            out.append(e.name.removeprefix("aten::"))
            todo.extend(sorted(e.cpu_children, key=lambda c: c.time_range.start))
        return out

    result: list[Run] = []
    for root in roots:
        seen: dict[str, int] = defaultdict(int)
        hits: list[tuple[str, str, float, list[int]]] = []
        prev_end = root.time_range.start
        for child in sorted(root.cpu_children, key=lambda e: e.time_range.start):
            # from the end of the previous range to the end of this one: the Python dispatch
            # that leads to a call (hooks, __call__, the module's own glue) is part of its cost
            ms = (child.time_range.end - prev_end) / 1e3
            prev_end = child.time_range.end
            if child.name.startswith("mod::"):
                p = child.name[5:]
                rows = index.by_path.get(p, [])
                k = seen["mod::" + p]
                seen["mod::" + p] += 1
                hits.append((p, "", ms, [rows[k]] if k < len(rows) else []))
                continue
            row: list[int] = []
            for op in names_below(child):  # aten::contiguous runs the aten::clone the profile counted
                if seen[op] < len(outside.get(op, [])):
                    row = [outside[op][seen[op]]]
                    seen[op] += 1
                    break
            hits.append((child.name, "", ms, row))
        result.append((root.cpu_time_total / 1e3, hits))
    return result


def _onnxruntime(path: Path, x: np.ndarray, index: _Index, threads: int, runs: int, warmup: int,
                 tmp: Path) -> list[Run]:
    ort = require("onnxruntime", "per-layer latency on ONNX Runtime")

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_profiling = True
    opts.profile_file_prefix = str(tmp / "ort")
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x}
    for _ in range(warmup + runs):
        sess.run(None, feed)
    events = json.loads(Path(sess.end_profiling()).read_text())
    # The profile holds the warm-up runs too: keep the last `runs` model_run spans.
    spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                   if e.get("cat") == "Session" and e["name"] == "model_run")[-runs:]
    nodes = sorted((e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")),
                   key=lambda e: e["ts"])
    rows_of: dict[str, list[int]] = {}
    result: list[Run] = []
    for start, end in spans:
        hits = []
        for e in nodes:
            if start <= e["ts"] <= end:
                name = e["name"].removesuffix("_kernel_time")
                if name not in rows_of:
                    rows_of[name] = index.for_onnx_node(name)
                hits.append((name, e["args"].get("op_name", ""), e["dur"] / 1e3, rows_of[name]))
        result.append(((end - start) / 1e3, hits))
    return result


def _openvino(path: Path, x: np.ndarray, index: _Index, threads: int, runs: int,
              warmup: int) -> list[Run]:
    ov = require("openvino", "per-layer latency on OpenVINO")

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {
        "PERF_COUNT": True, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": threads})
    rows_of: dict[str, list[int]] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        names = str(rt["originalLayersNames"].astype(str)) if "originalLayersNames" in rt else ""
        rows: list[int] = []
        for orig in [n for n in names.split(",") if n] or [op.get_friendly_name()]:
            rows.extend(i for i in index.for_onnx_node(orig) if i not in rows)
        rows_of[op.get_friendly_name()] = sorted(rows)
    request = compiled.create_infer_request()
    for _ in range(warmup):
        request.infer({0: x})
    result: list[Run] = []
    for _ in range(runs):
        t0 = time.perf_counter()
        request.infer({0: x})
        wall = time.perf_counter() - t0
        hits = [(p.node_name, p.node_type, p.real_time.total_seconds() * 1e3,
                 rows_of.get(p.node_name) or index.for_onnx_node(p.node_name))
                for p in request.get_profiling_info() if p.status == p.Status.EXECUTED]
        result.append((wall * 1e3, hits))
    return result


def _output_aliases(path: Path) -> dict[str, str]:
    """Graph output tensor name -> the ONNX node that writes it."""
    onnx = require("onnx", "per-layer latency of an export")

    graph = onnx.load(str(path), load_external_data=False).graph
    outputs = {o.name for o in graph.output}
    return {t: n.name for n in graph.node for t in n.output if t in outputs}


# --- the join -----------------------------------------------------------------------------------


def layer_latency(model: nn.Module | str, runtime: str = "eager", img: int = 224, batch: int = 1,
                  threads: int | None = None, deployed: bool = False, runs: int = RUNS,
                  warmup: int = WARMUP, limits: dict[str, Any] | None = None) -> dict[str, Any]:
    """Profile `model` statically, run it under `runtime`'s profiler, and join the two per layer
    group (see the module docstring). Returns the static result of `complexity` plus
    {"runtime", "threads", "model_ms", "plain_ms", "layers_ms", "overhead_ms", "limits",
    "groups"}; each group has its layers, the runtime nodes it covers, `ms`, `share`,
    `gflops`, `gbps`, `intensity`, `bound` ('compute' or 'memory' at this machine's ridge) and
    `roofline_share`."""
    from leannet.bench.results import default_threads
    from leannet.errors import UnknownRuntimeError
    from leannet.profile.complexity import complexity
    from leannet.runtime.timing import measure

    if runtime not in RUNTIMES:
        raise UnknownRuntimeError(f"unknown runtime {runtime!r} for per-layer latency; choose one of {', '.join(RUNTIMES)}")
    threads = threads or default_threads()
    deployed = deployed or runtime != "eager"  # exported artefacts are the deployed form
    if isinstance(model, str):
        from leannet.factory import create_model

        model = create_model(model)
    if deployed:
        from leannet.deploy.reparam import reparameterize

        model = reparameterize(model)  # a copy: the caller's model is untouched
    static = complexity(model, img=img, batch=batch) | {"deployed": deployed}  # of the form that runs
    model.eval()
    in_chans = static["input"][1]
    names = {m: n for n, m in model.named_modules()}
    leaves = {n for m, n in names.items() if next(m.children(), None) is None}
    canon = {n: names[m] for n, m in model.named_modules(remove_duplicate=False) if n != names[m]}
    index = _Index(static["layers"], leaves, canon)
    x = torch.randn(batch, in_chans, img, img)
    xn = x.numpy()
    with tempfile.TemporaryDirectory(prefix="leannet-layers-") as tmp:
        tmp = Path(tmp)
        if runtime == "eager":
            from leannet.runtime.runners import torch_runner

            record = _eager(model, x, index, names, threads, runs, warmup)
            runner = torch_runner(model, threads=threads)
        else:
            from leannet.deploy.onnx import export_onnx
            from leannet.runtime.runners import onnxruntime_runner, openvino_runner

            path = export_onnx(model, tmp / "model.onnx", (in_chans, img, img), batch)
            index.aliases = _output_aliases(path)
            if runtime == "onnxruntime":
                record = _onnxruntime(path, xn, index, threads, runs, warmup, tmp)
                runner = onnxruntime_runner(path, threads)
            else:
                record = _openvino(path, xn, index, threads, runs, warmup)
                runner = openvino_runner(path, threads)
        plain = measure(runner.bind(xn), batch, min_time=0.5, rounds=3, threads=threads)
    lim = limits if limits is not None else machine.limits(threads)
    hits, model_ms, kept = _quiet(record)
    groups = _group(len(static["layers"]), hits)
    layers_ms = sum(g["ms"] for g in groups)
    rows = []
    for g in groups:
        members = [static["layers"][i] for i in g["layers"]]
        macs = sum(m["macs"] for m in members)
        mem = sum(m["memory_access_bytes"] for m in members)
        flops = 2 * macs
        sec = g["ms"] / 1e3
        intensity = flops / mem if mem else 0.0
        gflops = flops / sec / 1e9 if sec > 0 else None
        roof = machine.roof_gflops(intensity, lim) if lim else None
        rows.append({
            "layers": [m["path"] or "(root)" for m in members],
            "ops": [m["op"] for m in members],
            "output_shape": members[-1]["output_shape"],
            "fused": len(members) > 1,
            "nodes": g["nodes"],
            "unnamed_nodes": g["unnamed_nodes"],
            "params": sum(m["params"] for m in members),
            "macs": macs,
            "memory_access_bytes": mem,
            "activations": sum(m["activations"] for m in members),
            "ms": g["ms"],
            "share": g["ms"] / layers_ms if layers_ms else 0.0,
            "gflops": gflops,
            "gbps": mem / sec / 1e9 if sec > 0 else None,
            "intensity": intensity,
            "bound": machine.bound(intensity, lim) if lim else None,
            "roofline_share": gflops / roof if gflops is not None and roof else None,
        })
    return static | {
        "runtime": runtime, "threads": threads, "runs": runs, "runs_kept": kept, "model_ms": model_ms,
        "plain_ms": plain["median_ms"], "plain_contended": plain["contended"],
        "layers_ms": layers_ms, "overhead_ms": model_ms - layers_ms,
        "limits": lim and {k: lim[k] for k in ("peak_gflops", "bandwidth_gbps", "ridge_flop_per_byte")},
        "groups": rows,
    }


def latency_table(result: dict[str, Any], sort: str = "order", top: int | None = None) -> str:
    """The per-layer-group latency table with its header: model time, sum of rows, overhead.
    `sort`: "order" (execution order), "ms", or a static cost of `leannet profile --sort`."""
    from rich.console import Console
    from rich.table import Table

    from leannet.profile.table import human_bytes, si

    lim = result.get("limits") or {}
    peak = (lim.get("peak_gflops") or {}).get("fp32")
    form = "deployed (re-parameterised, BN folded)" if result["deployed"] else "train-time form (eval mode)"
    over = result["overhead_ms"]
    lines = [
        f"{result['model']}  input {'x'.join(map(str, result['input']))}  {form}",
        f"  runtime {result['runtime']}, {result['threads']} threads, {result['runs']} profiled runs"
        f" (the {result['runs_kept']} at or below the median model time averaged)",
        f"  model (profiled, same runs)  {result['model_ms']:.3f} ms;  sum of rows {result['layers_ms']:.3f} ms;"
        f"  not in any row (runtime overhead) {over:.3f} ms = {100 * over / result['model_ms']:.1f}%",
        f"  model (plain, no profiler)   {result['plain_ms']:.3f} ms"
        + ("  [contended: timed on a busy machine]" if result.get("plain_contended") else ""),
        f"  machine: peak fp32 {peak} GFLOP/s, bandwidth {lim.get('bandwidth_gbps')} GB/s, "
        f"ridge {lim.get('ridge_flop_per_byte')} FLOP/B (leannet.bench.machine)" if lim else "  machine: limits unknown",
    ]
    rows = list(enumerate(result["groups"]))
    if sort != "order":
        key = {"mac_bytes": "memory_access_bytes"}.get(sort, sort)
        rows.sort(key=lambda r: r[1].get(key) or 0, reverse=True)
    shown = rows[:top] if top else rows
    fused = sum(1 for g in result["groups"] if g["fused"])
    table = Table(box=None, pad_edge=False, header_style="bold",
                  title=f"{len(shown)} of {len(rows)} rows ({len(result['layers'])} layers, {fused} rows fused)"
                  + ("" if sort == "order" else f", by {sort}"))
    for col in ("#", "layer(s)", "op(s)", "ms", "%", "MACs", "mem. access", "FLOP/B", "GFLOP/s", "GB/s",
                "bound", "roof %"):
        table.add_column(col, justify="left" if col in ("layer(s)", "op(s)", "bound") else "right")
    for i, g in shown:
        name = g["layers"][0] + (f" +{len(g['layers']) - 1}" if g["fused"] else "")
        ops = "+".join(dict.fromkeys(g["ops"]))
        table.add_row(str(i), name, ops, f"{g['ms']:.3f}", f"{100 * g['share']:.1f}", si(g["macs"]),
                      human_bytes(g["memory_access_bytes"]), f"{g['intensity']:.1f}",
                      "-" if g["gflops"] is None else f"{g['gflops']:.1f}",
                      "-" if g["gbps"] is None else f"{g['gbps']:.1f}", g["bound"] or "-",
                      "-" if g["roofline_share"] is None else f"{100 * g['roofline_share']:.0f}")
    buf = io.StringIO()
    Console(file=buf, width=170, no_color=True).print(table)
    note = ("  a row 'x +N' covers N more layers the runtime ran fused with x (see --json: "
            "'layers', 'nodes'); roof % = achieved GFLOP/s over min(peak, intensity x bandwidth)")
    return "\n".join(lines) + "\n\n" + buf.getvalue() + note
