"""Human-facing output of the profiler and the benchmark: tables, plots, rank correlations.

`write_report(out)` turns OUT/results.jsonl into OUT/report.md plus PNG plots: latency vs
MACs, Spearman's rho of latency against each static cost per runtime (the analysis of the
MobileOne paper, Sec. 3, reproduced on this machine), and the latency / published top-1
Pareto front.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from leannet.fileio import atomic_path, write_text

METRICS = {  # static cost -> label
    "macs": "MACs",
    "params": "params",
    "memory_access_bytes": "memory access",
    "activations": "activations",
}
SORT_KEYS = ("order", "macs", "params", "mac_bytes", "activations", "intensity")
_SORT_FIELD = {"mac_bytes": "memory_access_bytes"}


def _si(v: float, unit: str = "") -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.2f}{suffix}{unit}"
    return f"{v:.0f}{unit}"


def _bytes(v: float) -> str:
    for div, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(v) >= div:
            return f"{v / div:.2f} {suffix}"
    return f"{v:.0f} B"


# --- `leannet profile` -------------------------------------------------------------------


def profile_table(result: dict[str, Any], sort: str = "order", top: int | None = None) -> str:
    """Totals, then the per-layer table (largest first by `sort`, or execution order)."""
    from rich.console import Console
    from rich.table import Table

    t = result["totals"]
    form = "deployed (re-parameterised, BN folded)" if result["deployed"] else "train-time form (eval mode)"
    lines = [
        f"{result['model']}  input {'x'.join(map(str, result['input']))}  {result['dtype']}  {form}",
        f"  params       {t['params']:>15,}  ({_si(t['params'])})",
        f"  MACs         {t['macs']:>15,}  ({_si(t['macs'])}; FLOPs = 2 x MACs = {_si(t['flops'])})",
        f"  memory acc.  {t['memory_access_bytes']:>15,}  bytes ({_bytes(t['memory_access_bytes'])})",
        f"  activations  {t['activations']:>15,}  ({_si(t['activations'])}; conv/linear outputs)",
    ]
    if t.get("params_unused"):
        lines.append(f"  ({t['params_unused']:,} parameters are never used by the forward)")
    rows = list(enumerate(result["layers"]))
    if sort != "order":
        field = _SORT_FIELD.get(sort, sort)
        rows.sort(key=lambda r: r[1][field], reverse=True)
    shown = rows[:top] if top else rows
    table = Table(box=None, pad_edge=False, header_style="bold",
                  title=f"{len(shown)} of {len(rows)} layers" + ("" if sort == "order" else f", by {sort}"))
    for col in ("#", "layer", "op", "output", "params", "%", "MACs", "%", "mem. access", "%", "acts", "FLOP/B"):
        table.add_column(col, justify="left" if col in ("layer", "op", "output") else "right")

    def pct(v, total):
        return f"{100 * v / total:.1f}" if total else "-"

    for i, row in shown:
        table.add_row(str(i), row["path"] or "(root)", row["op"], "x".join(map(str, row["output_shape"][1:])),
                      _si(row["params"]), pct(row["params"], t["params"]),
                      _si(row["macs"]), pct(row["macs"], t["macs"]),
                      _bytes(row["memory_access_bytes"]), pct(row["memory_access_bytes"], t["memory_access_bytes"]),
                      _si(row["activations"]), f"{row['intensity']:.1f}")
    buf = io.StringIO()
    Console(file=buf, width=160, no_color=True).print(table)
    return "\n".join(lines) + "\n\n" + buf.getvalue()


# --- `leannet bench --report` ------------------------------------------------------------


def latest_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last successful row for each key (a re-measured row replaces the older one)."""
    from leannet.profile.latency import row_key

    last = {}
    for r in rows:
        if "error" not in r:
            last[row_key(r)] = r
    return list(last.values())


def spearman_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spearman's rho (and p-value) of median latency against each static cost, per runtime."""
    from scipy.stats import spearmanr

    out = []
    by_rt = defaultdict(list)
    for r in rows:
        by_rt[r["runtime"]].append(r)
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
    """(name, latency, top-1) points no other point beats on both, by increasing latency."""
    front, best = [], -math.inf
    for p in sorted(points, key=lambda p: (p[1], -p[2])):
        if p[2] > best:
            front.append(p)
            best = p[2]
    return front


def _style():
    import matplotlib

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
    runtimes = list(dict.fromkeys(r["runtime"] for r in rows))
    color = _colors(runtimes)
    fig, ax = plt.subplots(figsize=(9, 5.8))
    for rt in runtimes:
        rs = sorted((r for r in rows if r["runtime"] == rt), key=lambda r: r["macs"])
        ax.scatter([r["macs"] / 1e6 for r in rs], [r["median_ms"] for r in rs], s=38, color=color[rt],
                   label=rt, zorder=3, edgecolor="white", linewidth=0.6)
        # p90 as a thin whisker above each median: how noisy the point is
        ax.vlines([r["macs"] / 1e6 for r in rs], [r["median_ms"] for r in rs], [r["p90_ms"] for r in rs],
                  color=color[rt], alpha=0.5, linewidth=1, zorder=2)
    by_model = defaultdict(list)
    for r in rows:
        by_model[r["model"]].append(r)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax.xaxis)
    _plain_log_ticks(ax.yaxis)
    ax.set_xlabel("MACs (millions, log scale)")
    ax.set_ylabel("median latency (ms, log scale; whisker to p90)")
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
    runtimes = list(dict.fromkeys(r["runtime"] for r in rows))
    color = _colors(runtimes)
    fronts = {}
    ncols = min(3, len(runtimes))
    nrows = math.ceil(len(runtimes) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.4 * nrows), sharey=True, squeeze=False)
    for ax in axes.flat[len(runtimes):]:
        ax.set_visible(False)
    for ax, rt in zip(axes.flat, runtimes, strict=False):
        pts = [(r["model"], r["median_ms"], r["published_top1"]) for r in rows
               if r["runtime"] == rt and r.get("published_top1") is not None]
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
        row[0].set_ylabel("published ImageNet top-1 (%)")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return fronts


def _fmt_p(p: float) -> str:
    return "n/a" if math.isnan(p) else (f"{p:.1e}" if p < 1e-3 else f"{p:.3f}")


def write_report(out: str | Path) -> Path:
    """Write OUT/report.md and PNG plots from OUT/results.jsonl; return the report's path."""
    from leannet.errors import LeannetError
    from leannet.profile.latency import read_rows

    out = Path(out)
    rows = latest_rows(read_rows(out / "results.jsonl"))
    if not rows:
        raise LeannetError(f"no successful benchmark rows in {out / 'results.jsonl'}")
    env = rows[-1]["env"]
    v = env["versions"]
    md = [
        "# leannet latency report",
        "",
        f"Machine: **{env['cpu']}**, {env['usable_cores']} usable of {env['logical_cores']} logical cores, "
        f"features {', '.join(env['cpu_features']) or '-'}; {env['os']}.",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        f"Load average at start: {env['load_avg_1m']:.2f} (a loaded machine makes every number noisy)."
        if env.get("load_avg_1m") is not None else "",
        "",
        f"Models run in their **{rows[0]['form']}** form. Latency is the median of repeated "
        "single calls after warm-up (p90 beside it); MACs, memory access (bytes: weights + inputs "
        "+ outputs per layer) and activations (conv/linear output elements) are leannet's profiler "
        "counts for the same form and input. `max rel diff` is the runtime's largest absolute "
        "difference from PyTorch eager on the same input, over eager's largest |output| (untrained "
        "weights give outputs of any scale; the absolute figure is in results.jsonl).",
        "",
    ]
    settings = sorted({(r["batch"], r["img"], r["threads"]) for r in rows})
    for batch, img, threads in settings:
        rs = [r for r in rows if (r["batch"], r["img"], r["threads"]) == (batch, img, threads)]
        tag = f"b{batch}_{img}px_t{threads}"
        where = f"batch {batch}, {img}x{img}, {threads} thread{'s' if threads != 1 else ''}"
        runtimes = list(dict.fromkeys(r["runtime"] for r in rs))
        md += [f"## {where}", ""]
        # results table
        models = sorted({r["model"] for r in rs}, key=lambda m: next(r["macs"] for r in rs if r["model"] == m))
        cell = {(r["model"], r["runtime"]): r for r in rs}
        md.append("| model | MACs | params | memory access | activations | top-1 (paper) | "
                  + " | ".join(f"{rt} median / p90 ms (max rel diff)" for rt in runtimes) + " |")
        md.append("|---" * (6 + len(runtimes)) + "|")
        for m in models:
            any_r = next(r for r in rs if r["model"] == m)
            cells = []
            for rt in runtimes:
                r = cell.get((m, rt))
                cells.append("-" if r is None else
                             f"{r['median_ms']:.2f} / {r['p90_ms']:.2f} ({r['max_rel_diff']:.0e})")
            top1 = any_r.get("published_top1")
            md.append(f"| {m} | {_si(any_r['macs'])} | {_si(any_r['params'])} | {_bytes(any_r['memory_access_bytes'])} "
                      f"| {_si(any_r['activations'])} | {'-' if top1 is None else f'{top1:.1f}'} | " + " | ".join(cells) + " |")
        md.append("")
        # correlation
        table = spearman_table(rs)
        plot_correlation(table, out / f"spearman_{tag}.png", f"What predicts latency here? ({where})")
        plot_latency_vs_macs(rs, out / f"latency_vs_macs_{tag}.png", f"Latency vs MACs ({where})")
        md += [
            "### Latency vs MACs", "",
            f"![latency vs MACs](latency_vs_macs_{tag}.png)", "",
            "### Which static cost predicts latency? (Spearman's rank correlation)", "",
            "rho = 1 means ranking the models by the cost ranks them exactly by measured latency; "
            "the MobileOne paper (Sec. 3) finds FLOPs and params only moderately correlated with "
            "latency on a phone. The p-value tests rho = 0.", "",
            "| runtime | n | " + " | ".join(f"vs {v} rho (p)" for v in METRICS.values()) + " |",
            "|---" * (2 + len(METRICS)) + "|",
        ]
        for e in table:
            md.append(f"| {e['runtime']} | {e['n']} | "
                      + " | ".join(f"{e[k][0]:.2f} ({_fmt_p(e[k][1])})" for k in METRICS) + " |")
        md += ["", f"![Spearman rho](spearman_{tag}.png)", ""]
        # Pareto
        fronts = plot_pareto(rs, out / f"pareto_{tag}.png", f"Latency / accuracy Pareto front ({where})")
        missing = sorted({r["model"] for r in rs if r.get("published_top1") is None})
        md += ["### Latency / published top-1 Pareto front", "",
               "Top-1 is the paper's ImageNet figure (not measured here); a model is on the front "
               "when no other model is both faster on this machine and more accurate.", "",
               f"![Pareto front](pareto_{tag}.png)", ""]
        for rt, front in fronts.items():
            md.append(f"- **{rt}**: " + " -> ".join(f"{n} ({x:.2f} ms, {y:.1f}%)" for n, x, y in front))
        if missing:
            md.append(f"- without a published top-1 (left out): {', '.join(missing)}")
        md.append("")
    path = out / "report.md"
    write_text(path, "\n".join(md))
    return path
