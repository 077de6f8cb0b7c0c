"""`select`: the choice on fixed rows (budget, spread, ties, nothing fits, INT8 drop), the
report sections built on it, and one end-to-end run that exports the pick."""

import re

import pytest

from leannet.bench.report import (
    budgets_for,
    load_results,
    mac_latency_pairs,
    normalise,
    write_report,
)
from leannet.bench.select import choose
from leannet.cli import main
from leannet.errors import LeannetError


def row(model, runtime="onnxruntime", precision="fp32", ms=1.0, iqr=0.0, top1=70.0, macs=100e6,
        contended=False, batch=1, source="published (paper, ImageNet-1k)"):
    return {"model": model, "runtime": runtime, "precision": precision, "batch": batch, "median_ms": ms,
            "iqr_ms": iqr, "q25_ms": ms - iqr / 2, "q75_ms": ms + iqr / 2, "p90_ms": ms + iqr, "top1": top1,
            "top1_source": source, "contended": contended, "macs": macs, "params": 1e6,
            "memory_access_bytes": 1e7, "activations": 1e6}


def test_the_most_accurate_that_fits_wins():
    rows = [row("a", ms=2.0, top1=70.0), row("b", ms=4.0, top1=75.0), row("c", ms=8.0, top1=80.0)]
    sel = choose(rows, budget_ms=5)
    assert sel.pick.model == "b" and [c.model for c in sel.fitting] == ["b", "a"]
    assert [c.model for c in sel.front] == ["a", "b", "c"]
    assert choose(rows, budget_ms=100).pick.model == "c"
    assert "pick: b / onnxruntime / fp32" in sel.summary()


def test_the_spread_counts_against_the_budget():
    rows = [row("a", ms=2.0, top1=70.0), row("b", ms=4.5, iqr=1.0, top1=75.0)]
    sel = choose(rows, budget_ms=5)  # b's median fits, its median + IQR (5.5) does not
    assert sel.pick.model == "a"
    assert choose(rows, budget_ms=5.5).pick.model == "b"


def test_one_pareto_front_for_select_and_the_report():
    from leannet.bench.report import pareto_front

    rows = [row("a", ms=2.0, top1=70.0), row("b", ms=3.0, top1=69.0), row("c", ms=4.0, top1=75.0),
            row("d", ms=4.0, top1=75.0), row("e", ms=1.0, top1=60.0)]
    front = [c.model for c in choose(rows, budget_ms=5).front]
    assert front == ["e", "a", "c"]  # b is beaten by a; d ties c and loses on the name
    assert [p[0] for p in pareto_front([(r["model"], r["median_ms"], r["top1"]) for r in rows])] == front


def test_ties_go_to_the_faster_then_the_name():
    rows = [row("b", ms=3.0, top1=75.0), row("a", runtime="openvino", ms=2.0, top1=75.0),
            row("c", ms=2.0, top1=75.0)]
    sel = choose(rows, budget_ms=5)
    assert (sel.pick.model, sel.pick.runtime) == ("a", "openvino")  # 2.0 ms; 'a ...' < 'c ...'


def test_nothing_fits_names_the_fastest():
    rows = [row("a", ms=6.0), row("b", runtime="openvino", ms=5.5, top1=60.0)]
    sel = choose(rows, budget_ms=5)
    assert sel.pick is None and sel.fastest.model == "b"
    assert "nothing fits 5 ms; the fastest candidate is b / openvino / fp32 at 5.500 ms" in sel.summary()


def test_int8_needs_a_measured_accuracy_and_a_small_drop():
    rows = [row("a", ms=4.0, top1=76.0, source="measured on val"),
            row("a", precision="int8", ms=2.0, top1=74.5, source="measured on val"),
            row("b", precision="int8", ms=1.0, top1=None, source="not measured (give --eval)")]
    sel = choose(rows, budget_ms=3, max_int8_drop=1.0)  # a/int8 loses 1.5 points: out
    assert sel.pick is None
    excluded = {(c.model, c.precision): c.excluded for c in sel.candidates}
    assert "INT8 loses 1.50 points" in excluded[("a", "int8")]
    assert "INT8 accuracy unknown" in excluded[("b", "int8")]
    assert choose(rows, budget_ms=3, max_int8_drop=2.0).pick.label == "a / onnxruntime / int8"


def test_errors_and_contention_are_visible():
    rows = [row("a", ms=2.0, contended=True), {"model": "x", "runtime": "eager", "precision": "fp32",
                                                "batch": 1, "error": "RuntimeError: boom"}]
    sel = choose(rows, budget_ms=3)
    assert [c.model for c in sel.candidates] == ["a"]  # an error row is no candidate
    assert "contended" in sel.summary() and "warning" in sel.summary()
    with pytest.raises(LeannetError, match="positive"):
        choose(rows, budget_ms=0)


def test_mac_pairs_state_the_seeds_point():
    rows = [normalise(r) for r in (row("fast", ms=1.0, macs=100e6), row("slow", ms=2.5, macs=115e6),
                                   row("near", ms=1.5, macs=95e6), row("big", ms=9.0, macs=400e6))]
    pairs = mac_latency_pairs(rows)
    assert [(p["fast"]["model"], p["slow"]["model"]) for p in pairs] == [("fast", "slow")]
    assert pairs[0]["ratio"] == pytest.approx(2.5)
    # another runtime is another comparison
    assert mac_latency_pairs([normalise(rows[0]), normalise(row("slow", runtime="eager", ms=9, macs=100e6))]) == []
    assert budgets_for(rows)[0] >= 1.0 and budgets_for(rows)[-1] <= 9.0 * 1.2


def _env(cpu, ort="1.0"):
    return {"cpu": cpu, "cpu_features": ["avx2"], "usable_cores": 2, "logical_cores": 2, "threads": 2,
            "host": cpu, "os": "Linux", "gpu": None, "versions": {"torch": "2", "onnxruntime": ort}}


def _file(path, rows):
    import json

    from leannet.bench.sweep import fingerprint

    lines = []
    for r in rows:
        r = dict(r)
        r.update(img=224, threads=2, deployed=True, form="deployed", source=r["model"])
        r["fingerprint"] = fingerprint(r["env"])
        lines.append(json.dumps(r))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_report_merges_machines_and_leaves_out_stale_rows(tmp_path):
    a = [dict(row(m, ms=ms, macs=mac), env=_env("laptop"), time="2026-12-01T00:00:00")
         for m, ms, mac in (("fast", 1.0, 100e6), ("slow", 2.5, 110e6), ("big", 5, 400e6))]
    stale = [dict(row("fast", ms=9.0), env=_env("laptop", ort="0.9"), time="2026-11-01T00:00:00")]
    b = [dict(row(m, ms=ms, macs=mac, contended=m == "big"), env=_env("server"), time="2026-12-01T00:00:00",
              contended_by=["busy", "slow machine"] if m == "big" else [])
         for m, ms, mac in (("fast", 0.5, 100e6), ("slow", 0.6, 110e6), ("big", 1.0, 400e6))]
    fa, fb = _file(tmp_path / "a.jsonl", stale + a), _file(tmp_path / "b.jsonl", b)
    machines, notes = load_results([fa, fb])
    assert len(machines) == 2 and sorted(len(v) for v in machines.values()) == [3, 3]
    assert len(notes) == 1 and "1 rows from an older environment" in notes[0]
    text = write_report(tmp_path / "r", sources=[fa, fb]).read_text()
    assert "| fast | onnxruntime | fp32 | 1 | 1.00 | 0.50 |" in text  # a column per machine
    assert "| big | onnxruntime | fp32 | 1 | 5.00 | 1.00 † |" in text  # contended marked
    assert "9.00" not in text  # the stale row is not in any table
    assert "| onnxruntime | fast | 100.00M | 1.00 | slow | 110.00M | 2.50 | 2.50x |" in text
    assert "1 of 3 cells stayed contended** (marked †; busy 1, slow machine 1)" in text and "#### What to pick here" in text
    assert "was not probed" in text  # these rows carry no machine probe
    for png in ("latency_vs_macs", "spearman", "pareto"):
        assert (tmp_path / "r" / f"{png}_m1_b1_224px_t2.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["report", str(fa), str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "r")]) == 2
    # and report.html, one file with every script inline (tests/bench/test_html.py opens it in Chromium)
    assert main(["report", str(fa), str(fb), "--out", str(tmp_path / "cli")]) == 0
    page = (tmp_path / "cli" / "report.html").read_text()
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page) and "Plotly.newPlot" in page
    assert "1 of 3 cells stayed contended</b> (marked †; busy 1, slow machine 1)" in page


def test_report_says_what_the_machine_probe_saw():
    from leannet.bench.report import _speed_line

    rows = [dict(row("a"), machine_slowdown=1.0), dict(row("b"), machine_slowdown=1.32)]
    assert _speed_line(rows) == ("Machine probe: cells ran at up to 1.32x the fastest probe time on record here; "
                                 "1 ran while the machine was > 1.10x slow (a busy VM host or a lowered clock, "
                                 "invisible to /proc) and count as contended.")
    assert _speed_line(rows[:1]).endswith("up to 1.00x the fastest probe time on record here.")
    assert _speed_line([dict(rows[0], probe_iqr=0.21)]).endswith(
        "The machine's own speed moved by up to 21% between rounds (probe IQR): these figures are less certain "
        "than their IQR says.")
    assert "moved" not in _speed_line([dict(rows[0], probe_iqr=0.05)])
    rows = [dict(row("a"), runtime="onnxruntime", machine_slowdown=1.0, runtime_slowdown=1.26)]
    assert _speed_line(rows).endswith("record here.")  # an old row's sentinel field is not reported


@pytest.mark.skipif(__import__("importlib.util").util.find_spec("onnxruntime") is None,
                    reason="onnxruntime is not installed (extra: deploy)")
def test_select_cli_exports_a_verified_pick(tmp_path, capsys):
    out = tmp_path / "pick"
    args = ["select", "--budget-ms", "1000", "--models", "pplcnet_x0_25,mobilenetv3_small_x1_0",
            "--runtimes", "onnxruntime", "--min-time", "0.02", "--rounds", "2", "--threads", "1",
            "--out", str(tmp_path / "b"), "--export", str(out), "--random-weights", "--quiet"]
    assert main(args) == 0
    text = capsys.readouterr().out
    # mobilenetv3_small (67.7) beats pplcnet_x0_25 (51.9) on the top-1 published for their
    # weights within 1 s; offline (the tests), the export is latency-only, as asked
    assert "pick: mobilenetv3_small_x1_0 / onnxruntime / fp32" in text
    art = out / "mobilenetv3_small_x1_0.onnx"
    assert art.is_file() and (out / "mobilenetv3_small_x1_0.json").is_file()
    assert f"wrote {art}" in text
    import json

    side = json.loads((out / "mobilenetv3_small_x1_0.json").read_text())
    assert side["weights"] == "random (latency only)" and "weights: random (latency only)" in text
    assert side["verification"][0]["max_abs_diff"] <= 1e-4 * max(1.0, side["verification"][0]["ref_max_abs"])
    # nothing fits: exit 1, the fastest is named, nothing is written
    assert main([*args[:2], "0.0001", *args[3:-4], "--quiet"]) == 1
    assert "nothing fits" in capsys.readouterr().out


def test_report_takes_square_and_non_square_inputs_together(tmp_path):
    """Rows of one results file at 224 and at 224x320 (`img` is then "HxW"): one table each,
    where sorting an int beside a str used to fail."""
    import json

    rows = [dict(row(m), env=_env("laptop"), time="2026-12-01T00:00:00") for m in ("a", "b")]
    path = _file(tmp_path / "a.jsonl", rows)
    saved = [json.loads(line) for line in path.read_text().splitlines()]
    saved[1]["img"] = "224x320"
    path.write_text("".join(json.dumps(r) + "\n" for r in saved))
    text = write_report(tmp_path / "r", sources=[path]).read_text()
    assert "### batch 1, 224x224, 2 threads" in text and "### batch 1, 224x320, 2 threads" in text
