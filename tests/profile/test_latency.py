"""The benchmark sweep: rows, runtimes, skipping, resuming, reporting. No timing is asserted."""

import json
import math

import pytest

from leannet.cli import main
from leannet.errors import LeannetError, UnknownRuntimeError
from leannet.profile import latency, runtimes
from leannet.profile.latency import bench, read_rows
from leannet.profile.report import pareto_front, write_report

TINY = dict(img=32, min_time=0.01, threads=1, progress=False)
CPU_RUNTIMES = [n for n in ("eager", "channels_last", "onnxruntime", "openvino", "openvino_bf16")
                if runtimes.get_runtime(n).available()]


def _check_row(row, model, runtime, batch):
    assert (row["model"], row["runtime"], row["batch"], row["img"]) == (model, runtime, batch, 32)
    assert "error" not in row, row.get("error")
    assert row["deployed"] is True and "folded" in row["form"]
    assert 0 < row["min_ms"] <= row["median_ms"] <= row["p90_ms"] <= row["p99_ms"]
    assert row["throughput_ips"] == pytest.approx(batch * 1e3 / row["median_ms"])
    assert row["repeats"] >= 10 and row["threads"] == 1
    assert row["macs"] > 0 and row["params"] > 0 and row["memory_access_bytes"] > 0
    assert row["env"]["cpu"] and row["env"]["versions"]["torch"]
    assert math.isfinite(row["max_abs_diff"])
    # fp32 runtimes must reproduce eager; bf16 is allowed its rounding
    assert row["max_rel_diff"] <= (5e-2 if "bf16" in runtime else 1e-4)


def test_every_installed_runtime_gives_a_valid_row(tmp_path):
    path = bench(["pplcnet_x0_25"], runtimes=CPU_RUNTIMES, batches=(1, 2), out=tmp_path, **TINY)
    lines = path.read_text().splitlines()
    rows = [json.loads(line) for line in lines]  # every line is one JSON object
    assert len(rows) == 2 * len(CPU_RUNTIMES)
    for row in rows:
        _check_row(row, "pplcnet_x0_25", row["runtime"], row["batch"])
    ov = [r for r in rows if r["runtime"] == "openvino"]
    if ov:  # the precision actually used is recorded, and pinned to f32
        assert ov[0]["runtime_info"]["precision"] == "f32"


@pytest.mark.slow
def test_compile_runtime_row(tmp_path):
    path = bench(["pplcnet_x0_25"], runtimes=["compile"], out=tmp_path, **TINY)
    _check_row(read_rows(path)[0], "pplcnet_x0_25", "compile", 1)


def test_missing_runtime_is_skipped_with_one_note(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runtimes.OnnxRuntime, "available", lambda self: False)
    path = bench(["pplcnet_x0_25"], runtimes=["eager", "onnxruntime"], out=tmp_path, **TINY)
    assert [r["runtime"] for r in read_rows(path)] == ["eager"]
    notes = [line for line in capsys.readouterr().err.splitlines() if "onnxruntime" in line]
    assert len(notes) == 1 and "skipping" in notes[0]


def test_interrupted_sweep_resumes(tmp_path, monkeypatch):
    models, batches = ["pplcnet_x0_25", "mobilenetv3_small_x1_0"], (1, 2)
    path = bench(models, runtimes=["eager"], batches=batches, out=tmp_path, **TINY)
    lines = path.read_text().splitlines()
    assert len(lines) == 4
    # simulate a kill: two rows lost, and the third cut mid-line
    path.write_text("\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2])
    measured = []
    real = latency.measure
    monkeypatch.setattr(latency, "measure", lambda s, batch, *a, **k: measured.append(batch) or real(s, batch, *a, **k))
    bench(models, runtimes=["eager"], batches=batches, out=tmp_path, **TINY)
    assert len(measured) == 2  # only the rows that were lost
    rows = read_rows(path)
    assert sorted((r["model"], r["batch"]) for r in rows) == sorted((m, b) for m in models for b in batches)
    assert bench(models, runtimes=["eager"], batches=batches, out=tmp_path, **TINY) and len(measured) == 2


def test_preset_skips_unregistered_names(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(latency.PRESETS, "mini", ("pplcnet_x0_25", "not_yet_merged_s9"))
    path = bench(preset="mini", runtimes=["eager"], out=tmp_path, **TINY)
    assert [r["model"] for r in read_rows(path)] == ["pplcnet_x0_25"]
    err = capsys.readouterr().err
    assert "not_yet_merged_s9 is not registered" in err


def test_bad_inputs_raise_user_errors(tmp_path):
    with pytest.raises(UnknownRuntimeError, match="tensorrt"):
        bench(["pplcnet_x0_25"], runtimes=["tensorrt"], out=tmp_path, **TINY)
    with pytest.raises(LeannetError, match="nothing to benchmark"):
        bench([], out=tmp_path, **TINY)
    with pytest.raises(LeannetError, match="unknown preset"):
        bench(preset="nope", out=tmp_path, **TINY)


def test_report_files_and_correlation_table(tmp_path):
    models = ["pplcnet_x0_25", "pplcnet_x0_5", "mobilenetv3_small_x1_0"]
    bench(models, runtimes=["eager"], out=tmp_path, **TINY)
    report = write_report(tmp_path).read_text()
    for png in ("latency_vs_macs", "spearman", "pareto"):
        path = tmp_path / f"{png}_b1_32px_t1.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({path.name})" in report
    assert "| eager | 3 |" in report and "rho" in report


def test_pareto_front_by_hand():
    pts = [("a", 1.0, 60.0), ("b", 2.0, 70.0), ("c", 3.0, 65.0), ("d", 4.0, 75.0), ("e", 1.5, 55.0)]
    assert [p[0] for p in pareto_front(pts)] == ["a", "b", "d"]


def test_cli_bench_and_errors(tmp_path, capsys):
    out = tmp_path / "b"
    args = ["bench", "pplcnet_x0_25", "--runtimes", "eager", "--img", "32", "--min-time", "0.01",
            "--threads", "1", "--out", str(out)]
    assert main(args) == 0
    assert len(read_rows(out / "results.jsonl")) == 1
    assert str(out / "results.jsonl") in capsys.readouterr().out
    assert main(["bench", "no_such_net", "--out", str(out)]) == 2
    assert main(["bench", "pplcnet_x0_25", "--batch", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no_such_net" in err[0] and "--batch" in err[1]
