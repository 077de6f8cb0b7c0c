"""How heavy is report.html? The 48-cell sweep's page (and the 150-cell 3-machine merge's):
file size (target < ~5 MB: plotly.js inlined is ~4.8 MB of it) and the time headless
Chromium takes to open it from disk and draw every figure (target < 2 s), median of REPEATS
fresh pages. Needs Debian's chromium (`apt-get install -y chromium`) and playwright.

The rows are tests/bench/fake_rows.py's, shaped like the seeds sweep; with `--results FILE`
(repeatable) the page is built from real results files instead.

`--screenshot PATH` also saves a 1280x800 screenshot of the page, e.g. to regenerate
docs/latency/report.png from the `make run` results:

    python benchmarks/bench_html.py --results runs/bench/results.jsonl --screenshot docs/latency/report.png
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from tests.bench.fake_rows import merged_rows, seeds_rows, write_results  # noqa: E402

from leannet.bench.html import write_html  # noqa: E402
from leannet.bench.report import load_results  # noqa: E402

CHROMIUM = os.environ.get("LEANNET_CHROMIUM", "/usr/bin/chromium")
REPEATS = 5  # fresh pages per file: the median of five steadies a shared machine's figure
VIEWPORT = {"width": 1280, "height": 800}


def open_seconds(browser, path: Path) -> float:
    """From navigation to every figure drawn (the page's script sets body[data-ready])."""
    ctx = browser.new_context(viewport=VIEWPORT, offline=True)
    page = ctx.new_page()
    t0 = time.perf_counter()
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_function("document.body.dataset.ready === '1'", timeout=30_000)
    dt = time.perf_counter() - t0
    ctx.close()
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", action="append", type=Path, help="real results files (default: fake rows)")
    ap.add_argument("--screenshot", type=Path, help="also save a 1280x800 screenshot of the (first) page here")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="bench_html_"))
    if args.results:
        pages = {"results": args.results}
    else:
        rows = merged_rows(3)
        pages = {"48 cells, 1 machine": [write_results(tmp / "one.jsonl", seeds_rows(0, contended=2))],
                 "150 cells, 3 machines": [write_results(tmp / f"{h}.jsonl", [r for r in rows if r["env"]["host"] == h])
                                           for h in dict.fromkeys(r["env"]["host"] for r in rows)]}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"] if os.geteuid() == 0 else [])
        print(f"{'page':24} {'cells':>6} {'size MB':>8} {'write s':>8} {'open s (median of ' + str(REPEATS) + ')':>24}")
        for i, (name, files) in enumerate(pages.items()):
            machines, notes = load_results(files)
            t0 = time.perf_counter()
            path = write_html(machines, tmp / f"page{i}" / "report.html", notes)
            written = time.perf_counter() - t0
            times = [open_seconds(browser, path) for _ in range(REPEATS)]
            print(f"{name:24} {sum(map(len, machines.values())):6d} {path.stat().st_size / 1e6:8.2f} {written:8.2f} "
                  f"{statistics.median(times):10.2f} (min {min(times):.2f}, max {max(times):.2f})")
            if args.screenshot and i == 0:
                ctx = browser.new_context(viewport=VIEWPORT, offline=True)
                page = ctx.new_page()
                page.goto(path.as_uri())
                page.wait_for_function("document.body.dataset.ready === '1'", timeout=30_000)
                args.screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.screenshot))
                ctx.close()
                print(f"wrote {args.screenshot}")
        browser.close()
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
