"""report.html: the benchmark report as one interactive page that needs no network.

Every script and style is inside the file (plotly.js inlined, as `include_plotlyjs=True`
does), so the page opens from disk, from an e-mail or offline. It holds: latency vs MACs and
latency vs top-1 (each runtime's Pareto front drawn), every point hoverable with its row's
numbers; runtime / precision / machine toggles; sortable tables; a budget slider whose pick is
`leannet.bench.select.choose`'s, precomputed here at every budget where it changes (the page
only looks the budget up, it never re-implements the rule); the "same MACs, 2x latency"
pairs; and the machine, environment and contended cells in report.md's words.

The figures and the page's data travel as one JSON blob (`<script id="leannet-data">`); the
page's own script draws the figures from it with Plotly and wires the controls.

Extra figures (a roofline, say) plug in through `EXTRA_FIGURES`: a function of the report's
rows that returns `Figure`s, drawn in the "More figures" section with the same toggles.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leannet.bench.report import (
    mac_latency_pairs,
    machine_facts,
    machine_label,
    read_machines,
    settings_of,
)
from leannet.bench.select import candidates_from_rows, choose, pareto_front
from leannet.fileio import write_text
from leannet.profile.table import human_bytes, si

# Runtime colours, the PNG plots' palette; machines differ by marker symbol.
COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]
SYMBOLS = ["circle", "diamond", "square", "triangle-up", "cross", "x", "star", "hexagon"]
# The slider spans the candidates' median + IQR with this margin either side (log scale).
SLIDER_MARGIN = 1.25
SLIDER_STEPS = 1000  # positions of the range input: fine enough for budgets 0.1% apart


@dataclass
class Figure:
    """One plotly figure on the page: its heading, a sentence on how to read it, and the
    figure (plotly.graph_objects.Figure). Traces that carry `meta={"machine", "runtime",
    "precision"}` follow the page's toggles."""

    title: str
    caption: str
    figure: Any
    x: str = ""  # the row fields on the axes, where the budget's pick is ringed ("" for none)
    y: str = ""


# Hook for more figures (the roofline): each is called with the report's rows (every machine,
# each row with "machine" set to its label M1, M2, ...) and returns the figures to add.
EXTRA_FIGURES: list[Callable[[list[dict[str, Any]]], list[Figure]]] = []


def _md(text: str) -> str:
    """The few Markdown marks report.md's prose uses (**bold**, `code`, line breaks) as HTML."""
    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    t = re.sub(r"`(.+?)`", r"<code>\1</code>", t)
    return t.replace("\n", "<br>")


def _hover(r: dict[str, Any]) -> str:
    e = html.escape
    cont = f"contended: {e(', '.join(r.get('contended_by') or ['unrecorded']))}" if r.get("contended") else "not contended"
    top1 = "-" if r.get("top1") is None else f"{r['top1']:.1f}% ({e(str(r.get('top1_source', '?')))})"
    macs = f"MACs {si(r['macs'])}, params {si(r['params'])}" if r.get("macs") else "MACs -"
    return (f"<b>{e(r['model'])}</b> · {e(r['machine'])}<br>"
            f"{e(r['runtime'])} {e(r['precision'])}, batch {r['batch']}, {r.get('img', '?')} px, "
            f"{r.get('threads', '?')} threads<br>"
            f"median {r['median_ms']:.2f} ms ± IQR {(r.get('iqr_ms') or 0.0):.2f} ms<br>"
            f"{macs}; top-1 {top1}<br>{cont}<br>{e(r['machine_label'])}")


def _traces(rows, x_key: str, colors, symbols, with_front: bool) -> list:
    """Points per (machine, runtime, precision), one per row; with `with_front`, each group's
    latency/top-1 Pareto front (per setting) as a staircase."""
    import plotly.graph_objects as go

    traces = []
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r["machine"], r["runtime"], r["precision"]), []).append(r)
    for (m, rt, prec), rs in groups.items():
        meta = {"machine": m, "runtime": rt, "precision": prec, "kind": "points"}
        series = rs[0]["series"]
        xs = [r[x_key] / 1e6 if x_key == "macs" else r[x_key] for r in rs]
        traces.append(go.Scatter(
            x=xs, y=[r["median_ms"] if x_key == "macs" else r["top1"] for r in rs], mode="markers",
            name=f"{series} · {m}", legendgroup=f"{series} · {m}", meta=meta,
            customdata=[r["id"] for r in rs], text=[r["hover"] for r in rs], hovertemplate="%{text}<extra></extra>",
            marker={"color": colors[series], "symbol": symbols[m], "size": 9,
                    "line": {"width": [2.5 if r.get("contended") else 0.6 for r in rs],
                             "color": ["#C44E52" if r.get("contended") else "white" for r in rs]}},
            error_y=({"type": "data", "symmetric": False, "array": [r["q75"] - r["median_ms"] for r in rs],
                      "arrayminus": [r["median_ms"] - r["q25"] for r in rs], "thickness": 1, "width": 0,
                      "color": colors[series]} if x_key == "macs" else None),
            error_x=({"type": "data", "symmetric": False, "array": [r["q75"] - r["median_ms"] for r in rs],
                      "arrayminus": [r["median_ms"] - r["q25"] for r in rs], "thickness": 1, "width": 0,
                      "color": colors[series]} if x_key == "median_ms" else None)))
        if with_front:
            for setting in dict.fromkeys(r["setting"] for r in rs):
                front = pareto_front([r for r in rs if r["setting"] == setting], lambda r: r["median_ms"],
                                     lambda r: r["top1"], lambda r: r["model"])
                traces.append(go.Scatter(
                    x=[r["median_ms"] for r in front], y=[r["top1"] for r in front], mode="lines",
                    line={"shape": "hv", "color": colors[series], "width": 1.5}, opacity=0.7,
                    name=f"front {series} · {m}", legendgroup=f"{series} · {m}", showlegend=False,
                    hoverinfo="skip", meta={**meta, "kind": "front"}))
    return traces


# Log axes labelled 1-2-5 in full ("50", not plotly's "D2" digit "5" beside 10 and 100).
LOG_TICKS = [m * 10.0**e for e in range(-2, 13) for m in (1, 2, 5)]
_LOG_AXIS = {"type": "log", "tickvals": LOG_TICKS, "tickformat": "~s"}


def _layout(title: str, xtitle: str, ytitle: str, xlog: bool, ylog: bool) -> dict[str, Any]:
    axis = {"showline": True, "linecolor": "#888", "gridcolor": "#e6e6e6", "zeroline": False}
    return {"title": {"text": title, "x": 0.01}, "height": 520, "margin": {"l": 70, "r": 10, "t": 50, "b": 60},
            "hovermode": "closest", "template": "plotly_white", "font": {"size": 12},
            "xaxis": {**axis, "title": {"text": xtitle}, **(_LOG_AXIS if xlog else {})},
            "yaxis": {**axis, "title": {"text": ytitle}, **(_LOG_AXIS if ylog else {})},
            "legend": {"title": {"text": "runtime · machine"}, "font": {"size": 11}}}


def _figures(rows: list[dict[str, Any]]) -> list[Figure]:
    import plotly.graph_objects as go

    series = list(dict.fromkeys(r["series"] for r in rows))
    colors = {s: COLORS[i % len(COLORS)] for i, s in enumerate(series)}
    symbols = {m: SYMBOLS[i % len(SYMBOLS)] for i, m in enumerate(dict.fromkeys(r["machine"] for r in rows))}
    with_macs = [r for r in rows if r.get("macs")]
    with_top1 = [r for r in rows if r.get("top1") is not None]
    figs = []
    if with_macs:
        fig = go.Figure(_traces(with_macs, "macs", colors, symbols, False),
                        _layout("Latency vs MACs", "MACs (millions, log scale)",
                                "median latency (ms, log scale; whisker: IQR)", True, True))
        figs.append(Figure("Latency vs MACs", "One point per measured cell; whiskers: the inter-quartile range "
                           "over rounds; a red ring marks a contended cell. Hover a point for its row.", fig,
                           "macs", "median_ms"))
    if with_top1:
        fig = go.Figure(_traces(with_top1, "median_ms", colors, symbols, True),
                        _layout("Latency vs top-1", "median latency (ms, log scale; whisker: IQR)",
                                "top-1 (%): published, or measured where given", True, False))
        figs.append(Figure("Latency vs top-1, with each runtime's Pareto front",
                           "A line joins the models on a runtime's front on one machine: none other there is "
                           "both faster and more accurate. Cells without a known top-1 are left out.", fig,
                           "median_ms", "top1"))
    return figs


def _steps(rs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pick at every budget where it changes: `choose` at each candidate's median + IQR
    (between two of them the fitting set, and so the pick, stays the same)."""
    ids = {(r["model"], r["runtime"], r["precision"], r["batch"]): r["id"] for r in rs}
    steps = []
    for budget in sorted({c.upper_ms for c in candidates_from_rows(rs) if c.excluded is None}):
        sel = choose(rs, budget)
        p = sel.pick
        steps.append({"budget": budget, "pick": ids[(p.model, p.runtime, p.precision, p.batch)],
                      "fitting": len(sel.fitting), "candidates": len(sel.candidates)})
    return steps


def page_data(machines: dict[str, list[dict[str, Any]]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every row with an id, its machine (M1, M2, ...) and hover text; and the slider's groups
    (one per machine and setting), each with its budget steps."""
    rows, groups = [], []
    for i, mrows in enumerate(machines.values()):
        m = f"M{i + 1}"
        for rs, tag, where in settings_of(mrows):
            gid = f"{m}_{tag}"
            excluded = {(c.model, c.runtime, c.precision, c.batch): c.excluded for c in candidates_from_rows(rs)}
            group = []
            for r in rs:
                r = dict(r, id=len(rows), machine=m, machine_label=machine_label(r["env"]), setting=gid)
                iqr = r.get("iqr_ms") or 0.0
                q25, q75 = r.get("q25_ms"), r.get("q75_ms")  # absent on rows older than the quartiles
                r["q25"] = r["median_ms"] - iqr / 2 if q25 is None else q25
                r["q75"] = r["median_ms"] + iqr / 2 if q75 is None else q75
                r["upper_ms"] = r["median_ms"] + iqr
                r["excluded"] = excluded.get((r["model"], r["runtime"], r["precision"], r["batch"]))
                r["hover"] = _hover(r)
                rows.append(r)
                group.append(r)
            cands = candidates_from_rows(group)
            fastest = cands[0] if cands else None
            groups.append({"id": gid, "label": f"{m}: {machine_label(rs[0]['env'])}; {where}", "steps": _steps(group),
                           "fastest": None if fastest is None else {"label": fastest.label,
                                                                    "upper_ms": fastest.upper_ms},
                           "lo": min((c.upper_ms for c in cands), default=1.0) / SLIDER_MARGIN,
                           "hi": max((c.upper_ms for c in cands), default=1.0) * SLIDER_MARGIN})
    return rows, groups


def _td(text: str, sort: Any = None) -> str:
    key = "" if sort is None else f' data-sort="{html.escape(str(sort))}"'
    return f"<td{key}>{text}</td>"


def _cells_table(rows: list[dict[str, Any]]) -> str:
    head = ["machine", "model", "runtime", "precision", "batch", "MACs", "params", "memory access", "top-1 %",
            "median ms", "IQR ms", "median + IQR", "contended", "select"]
    num = {"batch", "MACs", "params", "memory access", "top-1 %", "median ms", "IQR ms", "median + IQR"}
    out = ['<table class="sortable" id="cells"><thead><tr>'
           + "".join(f'<th data-type="{"num" if h in num else "text"}">{h}</th>' for h in head) + "</tr></thead><tbody>"]
    e = html.escape
    for r in rows:
        mem = r.get("memory_access_bytes")
        cont = ", ".join(r.get("contended_by") or ["unrecorded"]) if r.get("contended") else ""
        out.append(
            f'<tr data-row="{r["id"]}" data-machine="{e(r["machine"])}" data-runtime="{e(r["runtime"])}" '
            f'data-precision="{e(r["precision"])}" data-setting="{e(r["setting"])}">'
            + _td(e(r["machine"])) + _td(e(r["model"])) + _td(e(r["runtime"])) + _td(e(r["precision"]))
            + _td(str(r["batch"]), r["batch"])
            + _td(si(r["macs"]) if r.get("macs") else "-", r.get("macs") or -1)
            + _td(si(r["params"]) if r.get("params") else "-", r.get("params") or -1)
            + _td("-" if mem is None else human_bytes(mem), -1 if mem is None else mem)
            + _td("-" if r.get("top1") is None else f"{r['top1']:.1f}", -1 if r.get("top1") is None else r["top1"])
            + _td(f"{r['median_ms']:.2f}", r["median_ms"]) + _td(f"{r.get('iqr_ms') or 0.0:.2f}", r.get("iqr_ms") or 0.0)
            + _td(f"{r['upper_ms']:.2f}", r["upper_ms"]) + _td(("† " + e(cont)) if cont else "")
            + _td(e(r["excluded"] or "")) + "</tr>")
    return "\n".join(out) + "</tbody></table>"


def _pairs_table(rows: list[dict[str, Any]]) -> str:
    out = []
    for setting in dict.fromkeys(r["setting"] for r in rows):
        rs = [r for r in rows if r["setting"] == setting and r.get("macs")]
        for p in mac_latency_pairs(rs):
            f, s = p["fast"], p["slow"]
            out.append(f'<tr data-machine="{html.escape(f["machine"])}" data-runtime="{html.escape(f["runtime"])}" '
                       f'data-precision="{html.escape(f["precision"])}">'
                       + _td(html.escape(f["machine"])) + _td(html.escape(p["series"])) + _td(html.escape(f["model"]))
                       + _td(si(f["macs"]), f["macs"]) + _td(f"{f['median_ms']:.2f}", f["median_ms"])
                       + _td(html.escape(s["model"])) + _td(si(s["macs"]), s["macs"])
                       + _td(f"{s['median_ms']:.2f}", s["median_ms"]) + _td(f"{p['ratio']:.2f}x", p["ratio"]) + "</tr>")
    if not out:
        return "<p>No such pair in these rows.</p>"
    head = ["machine", "runtime", "faster", "MACs", "ms", "slower", "MACs", "ms", "latency ratio"]
    types = ["text", "text", "text", "num", "num", "text", "num", "num", "num"]
    return ('<table class="sortable" id="pairs"><thead><tr>'
            + "".join(f'<th data-type="{t}">{h}</th>' for h, t in zip(head, types, strict=True))
            + "</tr></thead><tbody>" + "\n".join(out) + "</tbody></table>")


def _machines_html(machines: dict[str, list[dict[str, Any]]], notes: list[str]) -> str:
    out = []
    for i, mrows in enumerate(machines.values()):
        env = mrows[-1]["env"]
        out.append(f'<section class="machine"><h3>M{i + 1}: {html.escape(env["cpu"])}, '
                   f'{html.escape(str(env.get("threads", "?")))} threads ({len(mrows)} cells)</h3>')
        out += [f"<p>{_md(p)}</p>" for p in machine_facts(mrows)]
        contended = [r for r in mrows if r.get("contended")]
        if contended:
            out.append('<table class="contended"><thead><tr><th>model</th><th>runtime</th><th>precision</th>'
                       "<th>batch</th><th>median ms</th><th>why</th><th>machine probe</th></tr></thead><tbody>")
            for r in contended:
                slow = r.get("machine_slowdown")
                out.append("<tr>" + "".join(_td(html.escape(str(v))) for v in (
                    r["model"], r["runtime"], r["precision"], r["batch"], f"{r['median_ms']:.2f}",
                    ", ".join(r.get("contended_by") or ["unrecorded"]), "-" if slow is None else f"{slow:.2f}x")) + "</tr>")
            out.append("</tbody></table>")
        out.append("</section>")
    if notes:
        out.append("<h3>Left out</h3><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    return "\n".join(out)


def _checkboxes(name: str, values: list[str]) -> str:
    return (f'<fieldset class="toggle"><legend>{name}</legend>'
            + "".join(f'<label><input type="checkbox" data-toggle="{name}" value="{html.escape(v)}" checked> '
                      f"{html.escape(v)}</label>" for v in values) + "</fieldset>")


def build_html(machines: dict[str, list[dict[str, Any]]], notes: list[str] | None = None) -> str:
    """The page for these machines' rows (as `report.load_results` groups them)."""
    from leannet.extras import require

    plotly_offline = require("plotly.offline", "the HTML report")
    rows, groups = page_data(machines)
    figures = _figures(rows)
    extra = [f for make in EXTRA_FIGURES for f in make(rows)]
    data = {"rows": [{k: r[k] for k in ("id", "model", "runtime", "precision", "machine", "batch", "median_ms",
                                        "upper_ms", "top1", "macs", "setting")} | {"label": f"{r['model']} / {r['runtime']} / {r['precision']}"}
                     for r in rows],
            "groups": groups, "slider_steps": SLIDER_STEPS,
            "figures": [{"id": f"fig{i}", "figure": f.figure.to_plotly_json(), "x": f.x, "y": f.y}
                        for i, f in enumerate(figures + extra)]}

    def section(i: int, f: Figure) -> str:
        return (f'<figure class="plot"><figcaption><b>{html.escape(f.title)}</b> {html.escape(f.caption)}'
                f'</figcaption><div id="fig{i}" class="fig"></div>'
                + ('<div class="ring" hidden title="the pick at the budget"></div>' if f.x else "") + "</figure>")

    n_cont = sum(bool(r.get("contended")) for r in rows)
    body = [
        "<header><h1>leannet latency report</h1>",
        f"<p>{len(rows)} cells on {len(machines)} machine{'s' if len(machines) != 1 else ''}"
        f"{f'; {n_cont} contended (†, red ring)' if n_cont else ''}. Machines: "
        + "; ".join(f"<b>M{i + 1}</b> {html.escape(machine_label(rs[0]['env']))}" for i, rs in enumerate(machines.values()))
        + ". Hover a point for its row; click a column heading to sort.</p></header>",
        '<nav class="controls" id="toggles">' + _checkboxes("runtime", sorted({r["runtime"] for r in rows}))
        + _checkboxes("precision", sorted({r["precision"] for r in rows}))
        + _checkboxes("machine", sorted({r["machine"] for r in rows})) + "</nav>",
        '<section id="budget"><h2>What to pick within a budget</h2>',
        "<p>The most accurate model / runtime / precision whose median + IQR fits the budget, ties to the faster "
        "(<code>leannet select --budget-ms B</code> makes the same choice: the picks below were computed by it "
        "for every budget where the pick changes). It chooses among all of a machine's cells in one setting, "
        "whatever the toggles show.</p>",
        '<div class="controls"><label>machine and setting <select id="group">'
        + "".join(f'<option value="{html.escape(g["id"])}">{html.escape(g["label"])}</option>' for g in groups)
        + f'</select></label> <label>budget <input type="range" id="slider" min="0" max="{SLIDER_STEPS}" '
        f'value="{SLIDER_STEPS // 2}" step="1"></label> <output id="budget-value"></output></div>',
        '<p id="pick" class="pick" aria-live="polite"></p></section>',
        '<section id="figures"><h2>Figures</h2>'
        + "".join(section(i, f) for i, f in enumerate(figures)) + "</section>",
        '<section id="more-figures"><h2>More figures</h2>'
        + ("".join(section(len(figures) + i, f) for i, f in enumerate(extra)) if extra else
           "<p class='empty'>None yet (the roofline will go here: <code>leannet.bench.html.EXTRA_FIGURES</code>).</p>")
        + "</section>",
        '<section id="cells-section"><h2>Every cell</h2>' + _cells_table(rows) + "</section>",
        '<section id="pairs-section"><h2>Same MACs, different speed</h2><p>Pairs of models whose MACs are within '
        "±20% of each other but whose latency on the same machine, runtime and precision differs by 2x or more: "
        "counting FLOPs does not tell which network is fast here.</p>" + _pairs_table(rows) + "</section>",
        '<section id="machines"><h2>Machines and environment</h2>' + _machines_html(machines, notes or []) + "</section>",
    ]
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>leannet latency report</title>"
            f"<style>{_CSS}</style><script>{plotly_offline.get_plotlyjs()}</script></head><body>"
            + "\n".join(body)
            + f'<script type="application/json" id="leannet-data">{_json(data)}</script>'
            + f"<script>{_JS}</script></body></html>\n")


def _json(obj: Any) -> str:
    """JSON safe inside a <script> element (no "</" to end it early); NaN and infinities as null."""
    return json.dumps(_plain(obj), allow_nan=False).replace("</", "<\\/")


def _plain(v: Any) -> Any:
    import numpy as np

    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple | np.ndarray):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def write_html_report(out: str | Path, sources: list[str | Path] | None = None) -> Path:
    """OUT/report.html from the rows `report.write_report` reads (OUT/results.jsonl or the
    `sources` files, a machine each); return its path."""
    machines, notes = read_machines(Path(out), sources)
    return write_html(machines, Path(out) / "report.html", notes)


def write_html(machines: dict[str, list[dict[str, Any]]], path: str | Path, notes: list[str] | None = None) -> Path:
    """The page for `machines` (as `report.load_results` groups rows) at `path`."""
    path = Path(path)
    write_text(path, build_html(machines, notes))
    return path


_CSS = """
:root { --fg: #222; --muted: #666; --line: #ddd; --pick: #fff3b0; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); margin: 0 auto;
       max-width: 1400px; padding: 0 16px 40px; }
h1 { font-size: 1.5em; margin: 16px 0 4px; } h2 { font-size: 1.2em; margin-top: 28px; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05em; }
.controls { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: center; margin: 8px 0; }
nav.controls { position: sticky; top: 0; background: #fff; z-index: 10; padding: 6px 0; border-bottom: 1px solid var(--line); }
fieldset.toggle { border: 1px solid var(--line); border-radius: 4px; padding: 2px 8px; margin: 0; }
fieldset.toggle legend { font-size: 0.85em; color: var(--muted); }
fieldset.toggle label { margin-right: 10px; white-space: nowrap; }
#slider { width: min(520px, 60vw); vertical-align: middle; }
#group { max-width: 70vw; }
.pick { background: var(--pick); padding: 6px 10px; border-radius: 4px; }
figure.plot { margin: 12px 0; break-inside: avoid; position: relative; }
.ring { position: absolute; box-sizing: border-box; width: 26px; height: 26px; margin: -13px 0 0 -13px; border: 3px solid #111;
        border-radius: 50%; pointer-events: none; box-shadow: 0 0 0 3px #fff3b0; }
figure.plot figcaption { color: var(--muted); margin-bottom: 4px; }
.fig { width: 100%; min-height: 520px; }
table { border-collapse: collapse; font-size: 12.5px; margin: 8px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 8px; text-align: left; white-space: nowrap; }
td[data-sort] { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f6f6f6; position: sticky; top: 0; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; }
tr.pick td { background: var(--pick); font-weight: 600; }
tr.hidden { display: none; }
#cells-section { overflow-x: auto; }
section.machine p { max-width: 110ch; }
code { font-size: 0.95em; background: #f3f3f3; padding: 0 3px; }
@media print {
  @page { size: A4 landscape; margin: 12mm; }
  body { max-width: none; padding: 0; font-size: 10.5px; }
  nav.controls, #budget .controls input, #group, .modebar-container, .empty { display: none !important; }
  #budget .controls { display: block; }
  h2 { break-after: avoid; }
  figure.plot, tr, section.machine { break-inside: avoid; }
  table { font-size: 9px; } th { position: static; }
  .fig { min-height: 0; height: 520px; }
}
"""

_JS = r"""
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("leannet-data").textContent);
  const rows = data.rows;
  const divs = [];
  for (const f of data.figures) {
    const div = document.getElementById(f.id);
    if (!div) continue;
    Plotly.newPlot(div, f.figure.data, f.figure.layout, {responsive: true, displaylogo: false});
    divs.push(div);
  }

  // --- toggles: a trace (and a table row) shows when its machine, runtime and precision are all ticked
  function ticked(name) {
    return new Set([...document.querySelectorAll(`input[data-toggle="${name}"]`)].filter(i => i.checked).map(i => i.value));
  }
  function applyToggles() {
    const on = {machine: ticked("machine"), runtime: ticked("runtime"), precision: ticked("precision")};
    const shows = m => ["machine", "runtime", "precision"].every(k => m[k] === undefined || on[k].has(m[k]));
    for (const div of divs) {
      const idx = [], vis = [];
      div.data.forEach((t, i) => { idx.push(i); vis.push(shows(t.meta || {})); });
      if (idx.length) Plotly.restyle(div, {visible: vis}, idx);
    }
    for (const tr of document.querySelectorAll("tr[data-runtime]")) {
      tr.classList.toggle("hidden", !shows(tr.dataset));
    }
  }
  document.querySelectorAll("input[data-toggle]").forEach(i => i.addEventListener("change", applyToggles));

  // --- the budget slider: looks up the pick select's rule gave (data.groups[].steps), never re-decides it
  const slider = document.getElementById("slider"), groupSel = document.getElementById("group");
  const out = document.getElementById("budget-value"), pickP = document.getElementById("pick");
  function group() { return data.groups.find(g => g.id === groupSel.value) || data.groups[0]; }
  function budgetAt(pos, g) {
    return Math.exp(Math.log(g.lo) + (pos / data.slider_steps) * (Math.log(g.hi) - Math.log(g.lo)));
  }
  function stepAt(g, budget) {
    let s = null;
    for (const st of g.steps) { if (st.budget <= budget) s = st; else break; }
    return s;
  }
  function fmt(v) { return v >= 10 ? v.toFixed(1) : v.toFixed(2); }
  function showBudget() {
    const g = group(), budget = budgetAt(Number(slider.value), g), st = stepAt(g, budget);
    out.textContent = fmt(budget) + " ms";
    out.dataset.budget = String(budget);
    document.querySelectorAll("tr.pick").forEach(tr => tr.classList.remove("pick"));
    let pick = null;
    if (st === null) {
      pickP.textContent = `${g.label}: nothing fits ${fmt(budget)} ms` +
        (g.fastest ? `; the fastest candidate is ${g.fastest.label} at ${g.fastest.upper_ms.toFixed(2)} ms (median + IQR)` : "");
      pickP.dataset.pick = "";
    } else {
      pick = rows[st.pick];
      pickP.innerHTML = "";
      pickP.append(`${g.label}, budget ${fmt(budget)} ms: pick `);
      const b = document.createElement("b"); b.textContent = pick.label; pickP.append(b);
      pickP.append(` at batch ${pick.batch}: ${pick.median_ms.toFixed(2)} ms (median + IQR ${pick.upper_ms.toFixed(2)} ms), ` +
        `top-1 ${pick.top1.toFixed(1)}%; ${st.fitting} of ${st.candidates} candidates fit.`);
      pickP.dataset.pick = String(pick.id);
      const tr = document.querySelector(`#cells tr[data-row="${pick.id}"]`);
      if (tr) tr.classList.add("pick");
    }
    pickP.dataset.model = pick ? pick.model : "";
    pickP.dataset.runtime = pick ? pick.runtime : "";
    pickP.dataset.precision = pick ? pick.precision : "";
    for (const div of divs) placeRing(div, pick);
  }
  // The pick ringed on the figures: a positioned element over the plot, not a trace or an
  // annotation, whose edits make plotly recompute the axes and redraw (~100 ms a move).
  function placeRing(div, pick) {
    const f = data.figures.find(f => f.id === div.id), ring = div.parentNode.querySelector(".ring");
    if (!f || !f.x || !ring) return;
    ring.dataset.row = pick ? String(pick.id) : "";
    const fl = div._fullLayout;
    if (!pick || pick[f.x] == null || pick[f.y] == null || !fl) { ring.hidden = true; return; }
    const px = fl.xaxis._offset + fl.xaxis.d2p(pick[f.x] / (f.x === "macs" ? 1e6 : 1));
    const py = fl.yaxis._offset + fl.yaxis.d2p(pick[f.y]);
    const inside = px >= fl.xaxis._offset && px <= fl.xaxis._offset + fl.xaxis._length &&
                   py >= fl.yaxis._offset && py <= fl.yaxis._offset + fl.yaxis._length;
    ring.hidden = !inside;
    ring.style.left = (div.offsetLeft + px) + "px";
    ring.style.top = (div.offsetTop + py) + "px";
  }
  for (const div of divs) div.on("plotly_afterplot", () => placeRing(div, currentPick()));
  function currentPick() {
    const id = pickP.dataset.pick;
    return id ? rows[Number(id)] : null;
  }
  slider.addEventListener("input", showBudget);
  slider.addEventListener("change", showBudget);
  groupSel.addEventListener("change", showBudget);
  showBudget();

  // --- sortable tables: click a heading; again to reverse
  for (const table of document.querySelectorAll("table.sortable")) {
    table.querySelectorAll("th").forEach((th, col) => th.addEventListener("click", () => {
      const asc = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(h => h.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      const num = th.dataset.type === "num", body = table.tBodies[0];
      const key = tr => { const td = tr.children[col]; return num ? Number(td.dataset.sort) : td.textContent; };
      const sorted = [...body.rows].sort((a, b) => {
        const ka = key(a), kb = key(b);
        return (num ? ka - kb : String(ka).localeCompare(String(kb))) * (asc ? 1 : -1);
      });
      body.append(...sorted);
    }));
  }

  // --- print: figures redrawn at the page's width
  window.addEventListener("beforeprint", () => divs.forEach(d => Plotly.Plots.resize(d)));
  window.addEventListener("afterprint", () => divs.forEach(d => Plotly.Plots.resize(d)));
  document.body.dataset.ready = "1";
})();
"""
