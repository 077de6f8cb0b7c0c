"""Human-facing output of the profiler and the benchmark: tables, plots, rank correlations.

`write_report(out)` turns OUT/results.jsonl into OUT/report.md plus PNG plots: latency vs
MACs, Spearman's rho of latency against each static cost per runtime (the analysis of the
MobileOne paper, Sec. 3, reproduced on this machine), and the latency / published top-1
Pareto front.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from leannet.fileio import atomic_path, write_text
from leannet.profile.table import human_bytes, si
from leannet.runtime.timing import SLOWED, UNSTEADY

METRICS = {  # static cost -> label
    "macs": "MACs",
    "params": "params",
    "memory_access_bytes": "memory access",
    "activations": "activations",
}
# --- `leannet bench --report` ------------------------------------------------------------


def spearman_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spearman's rho (and p-value) of median latency against each static cost, per runtime."""
    from leannet.extras import require

    spearmanr = require("scipy.stats", "the report's rank correlations").spearmanr

    out = []
    by_rt = defaultdict(list)
    for r in rows:
        by_rt[r["series"]].append(r)
    for rt, rs in by_rt.items():
        entry = {"runtime": rt, "n": len(rs)}
        for key in METRICS:
            if len(rs) >= 3:
                res = spearmanr([r[key] for r in rs], [r["median_ms"] for r in rs])
                entry[key] = (float(res.statistic), float(res.pvalue))
            else:
                entry[key] = (math.nan, math.nan)
        out.append(entry)
    return out


def pareto_front(points: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """(name, latency, top-1) points no other point beats on both, by increasing latency
    (`leannet.bench.select.pareto_front`, the one definition, on tuples)."""
    from leannet.bench.select import pareto_front as front

    return front(points, lambda p: p[1], lambda p: p[2], lambda p: p[0])


def _style():
    from leannet.extras import require

    matplotlib = require("matplotlib", "the report's plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "figure.dpi": 110, "savefig.dpi": 150, "font.size": 9.5, "axes.titlesize": 11,
        "axes.titleweight": "bold", "axes.spines.top": False, "axes.spines.right": False,
        "axes.grid": True, "grid.alpha": 0.25, "grid.linestyle": "-", "legend.frameon": False,
    })
    return plt


_COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]


def _colors(runtimes: list[str]) -> dict[str, str]:
    return {rt: _COLORS[i % len(_COLORS)] for i, rt in enumerate(runtimes)}


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")


def _plain_log_ticks(axis) -> None:
    """Log axis with plain numbers (0.5, 2, 10) instead of 5x10^-1."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


class _Labeller:
    """Put point labels beside their points without piling them on each other: try right,
    then left, then nudged up or down, and keep the first spot that overlaps nothing placed."""

    def __init__(self, ax, points=()):
        self.ax, self.boxes = ax, []
        ax.figure.canvas.draw_idle()
        for x, y in points:  # the markers themselves are obstacles too
            px, py = ax.transData.transform((x, y))
            self.boxes.append((px - 4, py - 4, px + 4, py + 4))

    def add(self, name: str, x: float, y: float, **kw) -> None:
        fig = self.ax.figure
        fig.canvas.draw_idle()
        px, py = self.ax.transData.transform((x, y))
        w, h = 5.2 * len(name) * fig.dpi / 100, 11 * fig.dpi / 100  # ~7.5 pt text, in pixels
        for dy in (0, 1, -1, 2, -2, 3, -3):
            for side in (1, -1):
                x0 = px + 5 if side > 0 else px - 5 - w
                box = (x0, py - h / 2 + dy * h, x0 + w, py + h / 2 + dy * h)
                if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in self.boxes):
                    self.boxes.append(box)
                    self.ax.annotate(name, (x, y), xytext=(5 * side, dy * h * 72 / fig.dpi),
                                     textcoords="offset points", ha="left" if side > 0 else "right",
                                     va="center", fontsize=7.5, **kw)
                    return
        self.ax.annotate(name, (x, y), xytext=(5, 0), textcoords="offset points", fontsize=7.5, **kw)


def plot_latency_vs_macs(rows, path: Path, title: str) -> None:
    plt = _style()
    runtimes = list(dict.fromkeys(r["series"] for r in rows))
    color = _colors(runtimes)
    fig, ax = plt.subplots(figsize=(9, 5.8))
    for rt in runtimes:
        rs = sorted((r for r in rows if r["series"] == rt), key=lambda r: r["macs"])
        ax.scatter([r["macs"] / 1e6 for r in rs], [r["median_ms"] for r in rs], s=38, color=color[rt],
                   label=rt, zorder=3, edgecolor="white", linewidth=0.6)
        contended = [r for r in rs if r.get("contended")]
        if contended:  # ringed in red: measured beside other work, reads slow
            ax.scatter([r["macs"] / 1e6 for r in contended], [r["median_ms"] for r in contended], s=110,
                       facecolor="none", edgecolor="#C44E52", linewidth=1.2, zorder=4)
        # the rounds' inter-quartile range as a whisker: how repeatable the point is
        ax.vlines([r["macs"] / 1e6 for r in rs], [r.get("q25_ms", r["median_ms"]) for r in rs],
                  [r.get("q75_ms", r["p90_ms"]) for r in rs], color=color[rt], alpha=0.6, linewidth=1.5, zorder=2)
    by_model = defaultdict(list)
    for r in rows:
        by_model[r["model"]].append(r)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax.xaxis)
    _plain_log_ticks(ax.yaxis)
    ax.set_xlabel("MACs (millions, log scale)")
    ax.set_ylabel("median latency (ms, log scale; whisker: IQR over rounds)")
    ax.set_title(title)
    ax.legend(title="runtime", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.margins(x=0.12, y=0.1)
    labels = _Labeller(ax, [(r["macs"] / 1e6, r["median_ms"]) for r in rows])
    for model, rs in sorted(by_model.items(), key=lambda kv: kv[1][0]["macs"]):
        top = max(rs, key=lambda r: r["median_ms"])  # one label per model, beside its slowest runtime
        labels.add(model, top["macs"] / 1e6, top["median_ms"], color="#333333")
    _save(fig, path)
    plt.close(fig)


def plot_correlation(table, path: Path, title: str) -> None:
    plt = _style()
    runtimes = [e["runtime"] for e in table]
    color = _colors(runtimes)
    fig, ax = plt.subplots(figsize=(8, 4.2))
    width = 0.8 / max(len(runtimes), 1)
    for i, e in enumerate(table):
        xs = [j + (i - (len(runtimes) - 1) / 2) * width for j in range(len(METRICS))]
        rho = [e[k][0] for k in METRICS]
        bars = ax.bar(xs, rho, width * 0.92, color=color[e["runtime"]], label=e["runtime"], zorder=3)
        for b, v in zip(bars, rho, strict=True):
            if not math.isnan(v):
                ax.annotate(f"{v:.2f}", (b.get_x() + b.get_width() / 2, v), xytext=(0, 2 if v >= 0 else -10),
                            textcoords="offset points", ha="center", fontsize=7.5)
    ax.set_xticks(range(len(METRICS)), list(METRICS.values()))
    ax.set_xlabel("static cost the models are ranked by")
    ax.set_ylim(min([0.0, *(e[k][0] for e in table for k in METRICS if not math.isnan(e[k][0]))]) - 0.1, 1.1)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("Spearman's rho with median latency")
    ax.set_title(title)
    ax.legend(title="runtime", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="x", visible=False)
    _save(fig, path)
    plt.close(fig)


def plot_pareto(rows, path: Path, title: str) -> dict[str, list]:
    plt = _style()
    runtimes = list(dict.fromkeys(r["series"] for r in rows))
    color = _colors(runtimes)
    fronts = {}
    ncols = min(3, len(runtimes))
    nrows = math.ceil(len(runtimes) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.4 * nrows), sharey=True, squeeze=False)
    for ax in axes.flat[len(runtimes):]:
        ax.set_visible(False)
    for ax, rt in zip(axes.flat, runtimes, strict=False):
        pts = [(r["model"], r["median_ms"], r["top1"]) for r in rows
               if r["series"] == rt and r.get("top1") is not None]
        front = pareto_front(pts)
        fronts[rt] = front
        on_front = {p[0] for p in front}
        ax.scatter([p[1] for p in pts], [p[2] for p in pts], s=30, zorder=3, edgecolor="white", linewidth=0.6,
                   color=[color[rt] if p[0] in on_front else "#c4c4c4" for p in pts])
        if front:  # best top-1 reachable within a latency budget: a staircase
            ax.step([p[1] for p in front], [p[2] for p in front], where="post", color=color[rt],
                    linewidth=1.4, alpha=0.8, zorder=2)
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
        ax.set_title(rt, color=color[rt])
        ax.set_xlabel("median latency (ms, log scale)")
        ax.margins(x=0.15, y=0.08)
        labels = _Labeller(ax, [(p[1], p[2]) for p in pts])
        for name, x, y in sorted(pts, key=lambda p: p[0] not in on_front):  # front labels first
            labels.add(name, x, y, color="#222222" if name in on_front else "#9a9a9a")
    for row in axes:
        row[0].set_ylabel("top-1 (%): published, or measured where given")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return fronts


def _fmt_p(p: float) -> str:
    return "n/a" if math.isnan(p) else (f"{p:.1e}" if p < 1e-3 else f"{p:.3f}")


# --- rows from one or more results files -----------------------------------------------------


def normalise(row: dict[str, Any]) -> dict[str, Any]:
    """A row in the current schema (files written before precision and fingerprints existed
    read as fp32 rows of the environment they record)."""
    from leannet.bench.results import fingerprint

    r = dict(row)
    if "precision" not in r:
        rt = r.get("runtime", "")
        r["runtime"], _, prec = rt.partition("_") if rt.startswith(("openvino_", "cuda_")) else (rt, "", "fp32")
        r["precision"] = prec or "fp32"
    if "fingerprint" not in r and "env" in r:
        r["fingerprint"] = fingerprint(r["env"])
    r.setdefault("source", r.get("model"))
    r.setdefault("top1", r.get("published_top1"))
    if r.get("top1") is None:  # timed with random weights: rank it as select does (`shipped_top1`)
        from leannet.bench.select import shipped_top1

        r["top1"], r["top1_source"] = shipped_top1(r) or (None, r.get("top1_source"))
    r["series"] = r["runtime"] if r["precision"] == "fp32" else f"{r['runtime']} {r['precision']}"
    return r


def machine_label(env: dict[str, Any]) -> str:
    v = env.get("versions", {})
    mobile = "".join(f", {name} {v[dist]}" for dist, name in
                     (("executorch", "ExecuTorch"), ("ncnn", "ncnn"), ("ai-edge-litert", "LiteRT")) if dist in v)
    return (f"{env.get('cpu', '?')}, {env.get('threads', '?')} threads "
            f"(torch {v.get('torch', '-')}, ORT {v.get('onnxruntime', '-')}, "
            f"OpenVINO {str(v.get('openvino', '-')).split('-')[0]}{mobile})")


def load_results(paths: list[Path]) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Successful rows grouped by environment fingerprint (a machine), and notes on rows left out.

    Within one file, a host's rows from an older environment (another torch, ONNX Runtime or
    OpenVINO version, other threads) are left out and counted: a report never mixes stale rows
    with fresh ones silently. Rows of the same cell measured twice: the latest wins."""
    from leannet.bench.results import read_rows, row_key

    machines: dict[str, list[dict[str, Any]]] = {}
    notes = []
    for path in paths:
        rows = [normalise(r) for r in read_rows(path) if "error" not in r and "median_ms" in r]
        latest: dict[str, tuple[str, str]] = {}  # host -> (time, fingerprint) of its newest row
        for r in rows:
            host = r.get("env", {}).get("host") or r.get("env", {}).get("cpu", "?")
            if r.get("time", "") >= latest.get(host, ("", ""))[0]:
                latest[host] = (r.get("time", ""), r["fingerprint"])
        keep = {fp for _, fp in latest.values()}
        stale = [r for r in rows if r["fingerprint"] not in keep]
        if stale:
            notes.append(f"{path}: {len(stale)} rows from an older environment left out "
                         f"(fingerprint {', '.join(sorted({r['fingerprint'] for r in stale}))}; re-run to measure them)")
        for r in rows:
            if r["fingerprint"] in keep:
                machines.setdefault(r["fingerprint"], []).append(r)
    for fp, rows in machines.items():
        last = {}
        for r in rows:
            last[row_key(r)] = r
        machines[fp] = list(last.values())
    return machines, notes


def mac_latency_pairs(rows: list[dict[str, Any]], mac_tol: float = 0.2, ratio: float = 2.0) -> list[dict[str, Any]]:
    """Pairs of models, on the same runtime and precision, whose MACs are within +/- `mac_tol`
    of each other but whose latencies differ by `ratio` or more: FLOPs do not predict speed."""
    by_series = defaultdict(list)
    for r in rows:
        if r.get("macs"):
            by_series[r["series"]].append(r)
    pairs = []
    for series, rs in by_series.items():
        for i, a in enumerate(rs):
            for b in rs[i + 1:]:
                if a["model"] == b["model"]:
                    continue
                lo, hi = sorted((a, b), key=lambda r: r["median_ms"])
                if abs(a["macs"] - b["macs"]) <= mac_tol * min(a["macs"], b["macs"]) \
                        and hi["median_ms"] >= ratio * lo["median_ms"]:
                    pairs.append({"series": series, "fast": lo, "slow": hi,
                                  "ratio": hi["median_ms"] / lo["median_ms"],
                                  "mac_ratio": hi["macs"] / lo["macs"]})
    return sorted(pairs, key=lambda p: -p["ratio"])


BUDGET_STEPS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 200, 500, 1000)  # round ms a reader would pick
BUDGETS_SHOWN = 5  # budgets in the "what to pick" table: one screen, spread over the range
BUDGET_HEADROOM = 1.2  # budgets go up to 20% past the slowest cell, so it fits the last one


def budgets_for(rows: list[dict[str, Any]]) -> list[float]:
    """A few round budgets spanning the measured latencies."""
    ms = sorted(r["median_ms"] for r in rows)
    inside = [b for b in BUDGET_STEPS if ms[0] <= b <= ms[-1] * BUDGET_HEADROOM]
    if len(inside) > BUDGETS_SHOWN:
        inside = [inside[round(i * (len(inside) - 1) / (BUDGETS_SHOWN - 1))] for i in range(BUDGETS_SHOWN)]
    return list(dict.fromkeys(inside)) or [BUDGET_STEPS[-1]]


def _speed_line(rows: list[dict[str, Any]]) -> str:
    """What the machine probe saw (a fixed workload timed beside the cells)."""
    speeds = [r["machine_slowdown"] for r in rows if r.get("machine_slowdown")]
    if not speeds:
        return "The machine's own speed was not probed (rows from before leannet's probe)."
    slowed = sum(v > SLOWED for v in speeds)
    line = (f"Machine probe: cells ran at up to {max(speeds):.2f}x the fastest probe time on record here"
            + (f"; {slowed} ran while the machine was > {SLOWED:.2f}x slow (a busy VM host or a lowered clock, "
               "invisible to /proc) and count as contended." if slowed else "."))
    moved = max((r.get("probe_iqr") or 0.0 for r in rows), default=0.0)
    if moved > UNSTEADY:
        line += (f" The machine's own speed moved by up to {100 * moved:.0f}% between rounds (probe IQR): "
                 "these figures are less certain than their IQR says.")
    return line


def read_machines(out: Path, sources: list[str | Path] | None = None) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """`load_results` of OUT/results.jsonl or of the `sources` files; an error if none has a row."""
    from leannet.errors import LeannetError

    paths = [Path(p) for p in sources] if sources else [out / "results.jsonl"]
    for p in paths:
        if not p.is_file():
            raise LeannetError(f"{p}: no such results file")
    machines, notes = load_results(paths)
    if not machines:
        raise LeannetError(f"no successful benchmark rows in {', '.join(map(str, paths))}")
    return machines, notes


def write_report(out: str | Path, sources: list[str | Path] | None = None) -> Path:
    """Write OUT/report.md and PNG plots from OUT/results.jsonl (or from the `sources` files,
    a machine column each); return the report's path. (`leannet.bench.html.write_html_report`
    writes the same as one interactive page, report.html.)"""
    out = Path(out)
    machines, notes = read_machines(out, sources)
    md = ["# leannet latency report", ""]
    if len(machines) > 1:
        md += _comparison(machines)
    for i, (_fp, rows) in enumerate(machines.items()):
        md += _machine_section(rows, out, tag=f"m{i + 1}_" if len(machines) > 1 else "")
    if notes:
        md += ["## Left out", ""] + [f"- {n}" for n in notes] + [""]
    path = out / "report.md"
    write_text(path, "\n".join(md))
    return path


def _comparison(machines: dict[str, list[dict[str, Any]]]) -> list[str]:
    labels = [f"M{i + 1}" for i in range(len(machines))]
    md = ["## Machines", "", "| | machine | fingerprint | rows |", "|---|---|---|---|"]
    for lab, (fp, rows) in zip(labels, machines.items(), strict=True):
        md.append(f"| {lab} | {machine_label(rows[0]['env'])} | {fp} | {len(rows)} |")
    md += ["", "## Median latency per machine (ms; † contended)", "",
           "Each machine's cells were measured in its own run; compare machines by ratio, not by "
           "a shared clock.", "",
           "| model | runtime | precision | batch | " + " | ".join(labels) + " |",
           "|---" * (4 + len(labels)) + "|"]
    cells: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for lab, rows in zip(labels, machines.values(), strict=True):
        for r in rows:
            cells[(r["model"], r["runtime"], r["precision"], r["batch"])][lab] = r
    for key in sorted(cells):
        vals = [cells[key].get(lab) for lab in labels]
        md.append("| " + " | ".join(map(str, key)) + " | " + " | ".join(
            "-" if v is None else f"{v['median_ms']:.2f}{' †' if v.get('contended') else ''}" for v in vals) + " |")
    return [*md, ""]


def _reasons(rows: list[dict[str, Any]]) -> str:
    """How many contended cells each reason marked, e.g. "busy 3, slow machine 1"."""
    n = Counter(why for r in rows if r.get("contended") for why in (r.get("contended_by") or ["unrecorded"]))
    return ", ".join(f"{why} {k}" for why, k in n.most_common())


def machine_facts(rows: list[dict[str, Any]]) -> list[str]:
    """The machine, its environment and how many cells were contended or slowed, as Markdown
    paragraphs: the same words in report.md and report.html."""
    env = rows[-1]["env"]
    v = env["versions"]
    n_cont = sum(bool(r.get("contended")) for r in rows)
    return [
        f"Machine: **{env['cpu']}**, {env['usable_cores']} usable of {env['logical_cores']} logical cores, "
        f"features {', '.join(env['cpu_features']) or '-'}; {env['os']}. "
        f"Environment fingerprint {rows[-1].get('fingerprint')}.\n"
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        f"Models run in their **{rows[0]['form']}** form. Every cell was timed in interleaved rounds "
        "(all cells once per round, shuffled); latency is the median over rounds of each round's "
        "median call, ± the inter-quartile range over rounds. MACs, memory access (bytes: weights + "
        "inputs + outputs per layer) and activations (conv/linear output elements) are leannet's "
        "profiler counts for the same form and input. `rel diff` is the runtime's largest absolute "
        "difference from PyTorch eager fp32 on the same input, over eager's largest |output|.",
        (f"**{n_cont} of {len(rows)} cells stayed contended** (marked †; {_reasons(rows)}): other "
         "processes used the cores while they ran, even after re-measuring, or the machine itself ran "
         "slow (its probe); their times read slow." if n_cont else
         f"No cell was contended: other processes used less than the threshold of the cores during "
         f"all {len(rows)} cells, and the machine ran no slower than its fastest probe on record here.")
        + "\n" + _speed_line(rows),
        _weights_line(rows),
    ]


def _weights_line(rows: list[dict[str, Any]]) -> str:
    """What weights the cells ran with: latency does not depend on them, but a reader must know
    whether the models were the published ones, a user's, or random."""
    random = sorted({r["model"] for r in rows if str(r.get("weights", "")).startswith("random")})
    rest = len({r["model"] for r in rows}) - len(random)
    if not random:
        return f"Weights: every model ran with the weights its rows name ({rest} models; none random)."
    return (f"Weights: **{len(random)} of {len(random) + rest} models ran with random weights** (their "
            "published ones were not cached here; latency does not depend on them): "
            f"{', '.join(random)}. Their top-1 is the figure published for the checkpoint "
            "`select --export` would ship, not measured on what ran.")


def settings_of(rows: list[dict[str, Any]]) -> list[tuple[list[dict[str, Any]], str, str]]:
    """The rows split by what makes latencies comparable (task, batch, image size, threads):
    (rows, a file tag, a heading) per setting."""
    out = []
    # img is a square's side (int) or "HxW" (str): sorted by its text so the two kinds compare
    settings = sorted({(r.get("task") or "", r["batch"], r["img"], r["threads"]) for r in rows},
                      key=lambda k: (k[0], k[1], str(k[2]), k[3]))
    for task, batch, img, threads in settings:
        rs = [r for r in rows if (r.get("task") or "", r["batch"], r["img"], r["threads"]) == (task, batch, img, threads)]
        where = (f"{'detectors, whole pipeline per image, ' if task == 'detect' else ''}batch {batch}, "
                 f"{img if isinstance(img, str) else f'{img}x{img}'}, {threads} thread{'s' if threads != 1 else ''}")
        out.append((rs, f"{task and task + '_'}b{batch}_{img}px_t{threads}", where))
    return out


def _machine_section(rows: list[dict[str, Any]], out: Path, tag: str) -> list[str]:
    from leannet.bench.select import choose

    env = rows[-1]["env"]
    md = [f"## {env['cpu']}, {env.get('threads', '?')} threads", ""]
    for para in machine_facts(rows):
        md += [para, ""]
    # Detector rows (task "detect": a whole per-image pipeline, NMS included) get tables of their
    # own: set beside classifiers, their latency per MAC would compare unlike work.
    for rs, t, where in settings_of(rows):
        t = tag + t
        series = list(dict.fromkeys(r["series"] for r in rs))
        md += [f"### {where}", ""]
        models = sorted({r["model"] for r in rs}, key=lambda m: next(r.get("macs") or 0 for r in rs if r["model"] == m))
        cell = {(r["model"], r["series"]): r for r in rs}
        md.append("| model | MACs | params | memory access | top-1 | "
                  + " | ".join(f"{s} ms ± IQR (rel diff)" for s in series) + " |")
        md.append("|---" * (5 + len(series)) + "|")
        for m in models:
            any_r = next(r for r in rs if r["model"] == m)
            cells = []
            for s in series:
                r = cell.get((m, s))
                if r is None:
                    cells.append("-")
                    continue
                diff = f" ({r['max_rel_diff']:.0e})" if r.get("max_rel_diff") is not None else ""
                iqr = f" ± {r['iqr_ms']:.2f}" if r.get("iqr_ms") is not None else ""
                cells.append(f"{r['median_ms']:.2f}{iqr}{diff}{' †' if r.get('contended') else ''}")
            top1 = any_r.get("top1")
            mem = any_r.get("memory_access_bytes")  # absent on rows with sidecar-only counts
            costs = (f"{si(any_r['macs'])} | {si(any_r['params'])} | {'-' if mem is None else human_bytes(mem)}"
                     if any_r.get("macs") else "- | - | -")
            md.append(f"| {m} | {costs} | {'-' if top1 is None else f'{top1:.1f}'} | " + " | ".join(cells) + " |")
        md.append("")
        with_costs = [r for r in rs if r.get("macs")]
        if len({r["model"] for r in with_costs}) >= 2:
            pairs = mac_latency_pairs(with_costs)
            md += ["#### Same MACs, different speed", "",
                   "Pairs of models whose MACs are within ±20% of each other but whose latency on the "
                   "same runtime and precision differs by 2x or more: counting FLOPs does not tell "
                   "which network is fast here (the seeds' point, in this machine's data).", ""]
            if pairs:
                md += ["| runtime | faster | MACs | ms | slower | MACs | ms | latency ratio |",
                       "|---|---|---|---|---|---|---|---|"]
                for p in pairs:
                    f, s = p["fast"], p["slow"]
                    md.append(f"| {p['series']} | {f['model']} | {si(f['macs'])} | {f['median_ms']:.2f} | "
                              f"{s['model']} | {si(s['macs'])} | {s['median_ms']:.2f} | {p['ratio']:.2f}x |")
            else:
                md.append("No such pair in this sweep.")
            md.append("")
            table = spearman_table(with_costs)
            plot_correlation(table, out / f"spearman_{t}.png", f"What predicts latency here? ({where})")
            plot_latency_vs_macs(with_costs, out / f"latency_vs_macs_{t}.png", f"Latency vs MACs ({where})")
            md += [
                "#### Latency vs MACs", "",
                f"![latency vs MACs](latency_vs_macs_{t}.png)", "",
                "Whiskers: IQR over rounds; a red ring marks a contended cell.", "",
                "#### Which static cost predicts latency? (Spearman's rank correlation)", "",
                "rho = 1 means ranking the models by the cost ranks them exactly by measured latency; "
                "the MobileOne paper (Sec. 3) finds FLOPs and params only moderately correlated with "
                "latency on a phone. The p-value tests rho = 0.", "",
                "| runtime | n | " + " | ".join(f"vs {v} rho (p)" for v in METRICS.values()) + " |",
                "|---" * (2 + len(METRICS)) + "|",
            ]
            for e in table:
                md.append(f"| {e['runtime']} | {e['n']} | "
                          + " | ".join(f"{e[k][0]:.2f} ({_fmt_p(e[k][1])})" for k in METRICS) + " |")
            md += ["", f"![Spearman rho](spearman_{t}.png)", ""]
        from leannet.bench.machine import roofline_section

        md += roofline_section(rs, out, t, where)  # roofline plot + furthest-from-limit table
        fronts = plot_pareto(rs, out / f"pareto_{t}.png", f"Latency / accuracy Pareto front ({where})")
        missing = sorted({r["model"] for r in rs if r.get("top1") is None})
        md += ["#### Latency / top-1 Pareto front, per runtime", "",
               "Top-1 is measured here where `--eval` was given; otherwise it is the figure published for "
               "the checkpoint `select --export` ships (a model whose published weights were not cached was "
               "timed with random ones: latency does not depend on them). `select` ranks by the same "
               "figure. A model is on a runtime's front when no other model is both faster there and "
               "more accurate.", "",
               f"![Pareto front](pareto_{t}.png)", ""]
        for s, front in fronts.items():
            md.append(f"- **{s}**: " + " -> ".join(f"{n} ({x:.2f} ms, {y:.1f}%)" for n, x, y in front))
        if missing:
            md.append(f"- without a known top-1 (left out): {', '.join(missing)}")
        md += ["", "#### What to pick here", "",
               "The most accurate model / runtime / precision whose median + IQR fits each budget "
               "(`leannet select --budget-ms B` makes the same choice and can export it).", "",
               "| budget | pick | median ms | top-1 | fitting candidates |", "|---|---|---|---|---|"]
        for b in budgets_for(rs):
            sel = choose(rs, b)
            if sel.pick is None:
                f = sel.fastest
                md.append(f"| {b:g} ms | nothing fits (fastest: {f.label}, {f.median_ms:.2f} ms) | - | - | 0 |")
            else:
                p = sel.pick
                md.append(f"| {b:g} ms | {p.label}{' †' if p.contended else ''} | {p.median_ms:.2f} | "
                          f"{p.top1:.1f} | {len(sel.fitting)} |")
        md.append("")
    return md
