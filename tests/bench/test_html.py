"""report.html in a real browser: headless Chromium opens the file from disk with the network
blocked, and the page is held to what it claims: no console error and no request leaving the
page, one point per row, a hover that shows the row's numbers, a budget slider that picks what
`select.choose` picks on the same rows, toggles that hide what they name, tables that sort.

Each check is also run against a deliberately broken copy of the page (the HTML post-processed
below) and must fail there: a check that cannot fail proves nothing."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from leannet.bench.html import write_html
from leannet.bench.report import load_results
from leannet.bench.select import choose
from tests.bench.fake_rows import merged_rows, write_results
from tests.conftest import CHROMIUM

VIEWPORT = {"width": 1280, "height": 800}
SLIDER_POSITIONS = range(0, 1001, 40)  # 26 budgets per machine, log-spaced over its candidates


# --- the page and the browser, once per module ------------------------------------------------------


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, dict[str, list[dict]]]:
    """A 3-machine merge (150 cells) written by the report's own loader and writer."""
    tmp = tmp_path_factory.mktemp("html")
    rows = merged_rows(3)
    files = [write_results(tmp / f"{host}.jsonl", [r for r in rows if r["env"]["host"] == host])
             for host in dict.fromkeys(r["env"]["host"] for r in rows)]
    machines, notes = load_results(files)
    return write_html(machines, tmp / "report.html", notes), machines


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium refuses its sandbox as root
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield b
        b.close()


class Log:
    def __init__(self):
        self.errors: list[str] = []
        self.requests: list[str] = []


def open_page(browser, path: Path):
    """The page from disk in a fresh offline context where every non-file request is recorded
    and aborted; returns (page, log) once the page's script has drawn everything."""
    log = Log()
    ctx = browser.new_context(viewport=VIEWPORT, offline=True, service_workers="block")

    def route(r):
        log.requests.append(r.request.url)
        r.abort()

    ctx.route(re.compile(r"^(?!file:).*"), route)
    page = ctx.new_page()
    page.on("console", lambda m: log.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: log.errors.append(f"page error: {e}"))
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:", "blob:", "about:")) else log.requests.append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    from playwright.sync_api import TimeoutError as PageTimeout

    with contextlib.suppress(PageTimeout):  # a broken page never gets ready: the checks say what is wrong
        page.wait_for_function("document.body.dataset.ready === '1'", timeout=10_000)
    return page, log


# --- the checks ---------------------------------------------------------------------------------


def all_rows(machines) -> list[dict]:
    return [r for rs in machines.values() for r in rs]


def check_offline(page, log, machines):
    assert not log.requests, f"requests left the page: {log.requests}"
    assert not log.errors, f"errors on the page: {log.errors}"


def _points(page, fig: str) -> int:
    return page.locator(f"#{fig} .scatterlayer .trace .points path.point").count()


def check_points(page, log, machines):
    rows = all_rows(machines)
    assert _points(page, "fig0") == sum(bool(r.get("macs")) for r in rows), "latency vs MACs: not one point per row"
    assert _points(page, "fig1") == sum(r.get("top1") is not None for r in rows), "latency vs top-1: not one point per row"


def _hover_text(page, fig: str, which: str) -> tuple[str, dict]:
    """Hover the point of `fig` highest (or lowest) on screen with the mouse; the hover label's
    text and the point's data coordinates."""
    box, xy = page.evaluate(f"""() => {{
        const pts = [...document.querySelectorAll('#{fig} .scatterlayer .trace .points path.point')];
        const b = pts.map(p => p.getBoundingClientRect());
        let k = 0;
        b.forEach((r, i) => {{ if ({'r.top < b[k].top' if which == 'top' else 'r.top > b[k].top'}) k = i; }});
        pts[k].scrollIntoView({{block: 'center'}});
        const r = pts[k].getBoundingClientRect();
        return [[r.left + r.width / 2, r.top + r.height / 2], [pts[k].__data__.x, pts[k].__data__.y]];
    }}""")
    page.mouse.move(0, 0)
    page.mouse.move(*box)
    page.wait_for_selector(f"#{fig} .hoverlayer .hovertext", timeout=3000)
    return page.locator(f"#{fig} .hoverlayer").text_content(), {"x": xy[0], "y": xy[1]}


def check_hover(page, log, machines):
    labels = {fp: f"M{i + 1}" for i, fp in enumerate(machines)}
    rows = [dict(r, machine=labels[r["fingerprint"]]) for r in all_rows(machines)]
    for fig, x, y in (("fig0", lambda r: r["macs"] / 1e6, "median_ms"), ("fig1", lambda r: r["median_ms"], "top1")):
        for which in ("top", "bottom"):
            text, pt = _hover_text(page, fig, which)
            [r] = [r for r in rows if r.get(y) is not None and (r.get("macs") or fig == "fig1")
                   and x(r) == pytest.approx(pt["x"]) and r[y] == pytest.approx(pt["y"])
                   and (fig == "fig0" or r.get("top1") is not None)][:1] or [None]
            assert r is not None, f"{fig}: the hovered point ({pt}) is no row's"
            for want in (r["model"], r["machine"], f"{r['runtime']} {r['precision']}", f"batch {r['batch']}",
                         f"median {r['median_ms']:.2f} ms", f"IQR {r['iqr_ms']:.2f} ms",
                         "contended: " if r.get("contended") else "not contended"):
                assert want in text, f"{fig}: hovering {r['model']} shows {text!r}, without {want!r}"


def check_slider(page, log, machines):
    groups = page.locator("#group option").evaluate_all("os => os.map(o => o.value)")
    assert len(groups) == len(machines)  # one setting per machine in these rows
    for value, rows in zip(groups, machines.values(), strict=True):
        page.select_option("#group", value)
        page.locator("#slider").fill("500")  # once as a person would; then many positions in one call each
        for pos in SLIDER_POSITIONS:
            got = page.evaluate("""(pos) => { const s = document.getElementById('slider');
                s.value = String(pos); s.dispatchEvent(new Event('input', {bubbles: true}));
                const p = document.getElementById('pick').dataset;
                return [Number(document.getElementById('budget-value').dataset.budget), p.model, p.runtime, p.precision]; }""",
                                pos)
            budget, shown = got[0], tuple(got[1:])
            sel = choose(rows, budget)
            want = ("", "", "") if sel.pick is None else (sel.pick.model, sel.pick.runtime, sel.pick.precision)
            assert shown == want, f"{value} at {budget:.4f} ms: the page picks {shown}, select picks {want}"
            if sel.pick is not None:  # the pick is ringed on the figures and marked in the table
                ring = page.locator("#fig0 ~ .ring")
                assert ring.is_visible() and ring.get_attribute("data-row") == page.get_attribute("#pick", "data-pick")
                gap = page.evaluate("""() => {  // the ring sits on a drawn point
                    const c = r => [r.left + r.width / 2, r.top + r.height / 2];
                    const [x, y] = c(document.querySelector('#fig0 ~ .ring').getBoundingClientRect());
                    return Math.min(...[...document.querySelectorAll('#fig0 path.point')].map(p => {
                        const [px, py] = c(p.getBoundingClientRect()); return Math.hypot(px - x, py - y); })); }""")
                assert gap < 2, f"the ring is {gap:.1f} px from the nearest point"
                assert page.locator("#cells tr.pick td:nth-child(2)").inner_text() == sel.pick.model


def check_toggles(page, log, machines):
    rows = all_rows(machines)
    labels = {fp: f"M{i + 1}" for i, fp in enumerate(machines)}
    for name, value, field in (("runtime", "eager", "runtime"), ("precision", "bf16", "precision"),
                               ("machine", "M2", "fingerprint")):
        box = page.locator(f'input[data-toggle="{name}"][value="{value}"]')
        box.uncheck()
        left = [r for r in rows if (labels[r[field]] if field == "fingerprint" else r[field]) != value]
        assert len(left) < len(rows)
        assert _points(page, "fig0") == len(left), f"hiding {name} {value} left {_points(page, 'fig0')} points"
        assert page.locator("#cells tbody tr:not(.hidden)").count() == len(left)
        box.check()
        assert _points(page, "fig0") == len(rows)


def check_sort(page, log, machines):
    head = page.locator("#cells th", has_text=re.compile(r"^median ms$"))
    col = page.locator("#cells th").evaluate_all("hs => hs.map(h => h.textContent)").index("median ms") + 1
    ms = sorted(r["median_ms"] for r in all_rows(machines))
    for clicks, want in ((1, ms[0]), (1, ms[-1])):
        for _ in range(clicks):
            head.click()
        first = float(page.locator(f"#cells tbody tr:first-child td:nth-child({col})").inner_text())
        assert first == pytest.approx(want, abs=0.006), f"sorted by median ms, the first row reads {first}"


CHECKS: dict[str, Callable] = {"offline": check_offline, "points": check_points, "hover": check_hover,
                               "slider": check_slider, "toggles": check_toggles, "sort": check_sort}


@pytest.mark.browser
@pytest.mark.parametrize("check", CHECKS)
def test_the_page_holds(check, browser, report):
    path, machines = report
    page, log = open_page(browser, path)
    CHECKS[check](page, log, machines)
    check_offline(page, log, machines)  # nothing the check did raised an error or went out
    page.context.close()


# --- broken pages: each check must catch its breakage ---------------------------------------------


def _data(text: str, edit: Callable[[dict], None]) -> str:
    """The page with its data blob edited."""
    m = re.search(r'(<script type="application/json" id="leannet-data">)(.*?)(</script>)', text, re.S)
    data = json.loads(m.group(2))
    edit(data)
    return text[:m.start(2)] + json.dumps(data).replace("</", "<\\/") + text[m.end(2):]


def _drop_point(d):
    t = d["figures"][0]["figure"]["data"][0]
    t["x"], t["y"] = t["x"][:-1], t["y"][:-1]


def _off_by_one(d):
    for g in d["groups"]:
        picks = [s["pick"] for s in g["steps"]]
        for s, p in zip(g["steps"][1:], picks, strict=False):
            s["pick"] = p


def _hover_without_numbers(d):
    for f in d["figures"]:
        for t in f["figure"]["data"]:
            if "hovertemplate" in t:
                t["hovertemplate"] = "%{x}, %{y}<extra></extra>"


def _mislabel(d):
    t = next(t for t in d["figures"][0]["figure"]["data"] if t["meta"].get("runtime") == "eager")
    t["meta"]["runtime"] = "onnxruntime"


BROKEN = {  # breakage: (the check that must catch it, what it must say, how to break the page)
    "cdn_script": ("offline", "requests left the page", lambda s: s.replace(
        "</head>", '<script src="https://cdn.plot.ly/plotly-3.0.1.min.js"></script></head>', 1)),
    "script_error": ("offline", "errors on the page",
                     lambda s: s.replace("</body>", "<script>window.noSuchFunction();</script></body>")),
    "missing_point": ("points", "not one point per row", lambda s: _data(s, _drop_point)),
    "hover_without_numbers": ("hover", "shows", lambda s: _data(s, _hover_without_numbers)),
    "slider_off_by_one": ("slider", "select picks", lambda s: _data(s, _off_by_one)),
    "toggle_mislabelled": ("toggles", "hiding runtime eager left", lambda s: _data(s, _mislabel)),
    "sort_as_text": ("sort", "the first row reads", lambda s: s.replace('data-type="num"', 'data-type="text"')),
}


@pytest.mark.browser
@pytest.mark.parametrize("breakage", BROKEN)
def test_each_check_catches_a_broken_page(breakage, browser, report, tmp_path):
    path, machines = report
    check, says, breaking = BROKEN[breakage]
    broken = tmp_path / "broken.html"
    text = path.read_text()
    broken.write_text(breaking(text))
    assert broken.read_text() != text
    page, log = open_page(browser, broken)
    with pytest.raises(AssertionError, match=says):
        CHECKS[check](page, log, machines)
    page.context.close()


@pytest.mark.browser
def test_screenshot_for_a_person(browser, report, tmp_path):
    """A 1280x800 screenshot of the page's top to look at (benchmarks/bench_html.py --screenshot
    regenerates docs/latency/report.png from real results)."""
    path, _ = report
    page, log = open_page(browser, path)
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:4] == b"\x89PNG"
    pdf = tmp_path / "report.pdf"  # and it prints (print CSS): headless Chromium writes the PDF
    page.emulate_media(media="print")
    page.pdf(path=str(pdf), format="A4", landscape=True)
    assert pdf.read_bytes()[:4] == b"%PDF"
    check_offline(page, log, None)
    page.context.close()


def test_more_figures_have_a_place(monkeypatch, tmp_path):
    """The hook the roofline will use: a builder in EXTRA_FIGURES gets the rows (with their
    machine labels) and its figures are drawn in "More figures", under the same toggles."""
    import plotly.graph_objects as go

    from leannet.bench import html

    rows = merged_rows(1)
    machines, _ = load_results([write_results(tmp_path / "a.jsonl", rows)])
    assert "None yet (the roofline will go here" in html.build_html(machines)
    seen = []

    def roofline(rs):
        seen.extend(rs)
        return [html.Figure("Roofline", "MACs per byte against attained MACs/s.", go.Figure(
            go.Scatter(x=[1], y=[2], meta={"machine": "M1", "runtime": "eager", "precision": "fp32"})))]

    monkeypatch.setattr(html, "EXTRA_FIGURES", [roofline])
    page = html.build_html(machines)
    assert len(seen) == len(rows) and {r["machine"] for r in seen} == {"M1"}
    more = page[page.index('<section id="more-figures">'):page.index('<section id="cells-section">')]
    assert "<b>Roofline</b>" in more and 'id="fig2"' in more and "None yet" not in more
