"""The benchmark sweep: cells, rows, runtimes, caching, inputs, output formats. No timing is
asserted; timing and contention are tests/runtime's."""

import csv
import io
import json
import math

import numpy as np
import pytest
import torch

from leannet.bench import sweep as latency
from leannet.bench.sweep import bench, format_rows, read_rows
from leannet.cli import main
from leannet.errors import LeannetError, UnknownModelError, UnknownRuntimeError
from leannet.runtime import timing
from leannet.runtime.runners import openvino_precision_supported

TINY = dict(img=32, min_time=0.02, rounds=2, threads=1, progress=False, retries=0)  # retries: a busy test machine must not re-time cells
HAS_ORT = latency.resolve_runtimes(["onnxruntime"])[0] == ["onnxruntime"]
HAS_OV = latency.resolve_runtimes(["openvino"])[0] == ["openvino"]
needs_ort = pytest.mark.skipif(not HAS_ORT, reason="onnxruntime is not installed (extra: deploy)")
needs_ov = pytest.mark.skipif(not HAS_OV, reason="openvino is not installed (extra: deploy)")


def _check_row(row, model, runtime, precision, batch):
    assert (row["model"], row["runtime"], row["precision"], row["batch"], row["img"]) == \
        (model, runtime, precision, batch, 32)
    assert "error" not in row, row.get("error")
    assert row["deployed"] is True and "folded" in row["form"]
    assert 0 < row["min_ms"] <= row["median_ms"] <= row["p99_ms"]
    assert row["q25_ms"] <= row["median_ms"] <= row["q75_ms"]
    assert row["rounds"] == 2 and len(row["round_medians_ms"]) == 2
    assert row["throughput_ips"] == pytest.approx(batch * 1e3 / row["median_ms"])
    assert row["threads"] == 1 and row["fingerprint"] == row["env"]["fingerprint"]
    assert row["macs"] > 0 and row["params"] > 0 and row["memory_access_bytes"] > 0
    assert row["env"]["cpu"] and row["env"]["versions"]["torch"]
    assert isinstance(row["contended"], bool) and row["others_cores"] >= 0
    if precision == "fp32":  # fp32 runtimes must reproduce eager
        assert row["max_rel_diff"] <= 1e-4
    elif precision == "bf16":
        assert row["max_rel_diff"] <= 5e-2
    else:
        assert math.isfinite(row["max_abs_diff"]) and "generated inputs" in row["int8_calibration"]


def test_every_runtime_and_precision_gives_a_valid_row(tmp_path):
    runtimes = ["eager", "channels_last"] + ["onnxruntime"] * HAS_ORT + ["openvino"] * HAS_OV
    sweep = bench(["pplcnet_x0_25"], runtimes=runtimes, precisions=["fp32", "bf16", "int8"],
                  batches=(2,), out=tmp_path, **TINY)
    rows = [json.loads(line) for line in sweep.results.read_text().splitlines()]
    expected = {(rt, p) for rt in runtimes for p in latency.SUPPORTED[rt] if p in ("fp32", "bf16", "int8")}
    if HAS_OV and not openvino_precision_supported("bf16"):
        expected.discard(("openvino", "bf16"))  # said in a note instead: it would silently run f32
        assert any("openvino has no bf16 kernels on this CPU" in n for n in sweep.notes)
    assert {(r["runtime"], r["precision"]) for r in rows} == expected
    assert len(rows) == len(expected) == len(sweep.rows) and sweep.measured == len(rows)
    for row in rows:
        _check_row(row, "pplcnet_x0_25", row["runtime"], row["precision"], row["batch"])
    ov = [r for r in rows if r["runtime"] == "openvino" and r["precision"] == "fp32"]
    if ov:  # the precision actually used is read back, pinned to f32
        assert ov[0]["runtime_info"]["inference_precision"] == "f32"
    ort = [r for r in rows if r["runtime"] == "onnxruntime"]
    assert ort == [] or all(r["runtime_info"]["spinning"] is True for r in ort)  # its default, as timed alone


def test_unsupported_pairs_and_missing_runtimes_are_notes(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(latency, "resolve_runtimes", lambda names: (["eager"], ["skipping runtime onnxruntime: x"]))
    sweep = bench(["pplcnet_x0_25"], runtimes=["eager", "onnxruntime"], precisions=["fp32", "int8"],
                  out=tmp_path, **TINY)
    assert [(r["runtime"], r["precision"]) for r in sweep.rows] == [("eager", "fp32")]
    err = capsys.readouterr().err
    assert "skipping runtime onnxruntime" in err and "eager does not run int8" in err


def _count_timed(monkeypatch):
    timed = []
    real = timing.time_rounds
    monkeypatch.setattr(timing, "time_rounds", lambda cells, *a, **k: timed.extend(
        c.key for c in cells if not isinstance(c, timing.Probe) and c.key[0] != "sentinel") or real(cells, *a, **k))
    return timed


def test_cached_rows_are_reused_until_the_environment_changes(tmp_path, monkeypatch):
    models = ["pplcnet_x0_25", "mobilenetv3_small_x1_0"]
    bench(models, runtimes=["eager"], batches=(1, 2), out=tmp_path, **TINY)
    timed = _count_timed(monkeypatch)
    again = bench(models, runtimes=["eager"], batches=(1, 2), out=tmp_path, **TINY)
    assert timed == [] and again.reused == 4 and again.measured == 0 and len(again.rows) == 4
    # an upgraded runtime changes the fingerprint: everything is measured again
    real_env = latency.environment

    def upgraded(threads):
        env = real_env(threads)
        env["versions"]["onnxruntime"] = "99.0"
        env["fingerprint"] = latency.fingerprint(env)
        return env

    monkeypatch.setattr(latency, "environment", upgraded)
    fresh = bench(models, runtimes=["eager"], batches=(1, 2), out=tmp_path, **TINY)
    assert fresh.reused == 0 and fresh.measured == 4 and len(set(timed)) == 4
    assert len({r["fingerprint"] for r in read_rows(tmp_path / "results.jsonl")}) == 2
    # --force measures again although the rows are valid
    forced = bench(models[:1], runtimes=["eager"], out=tmp_path, force=True, **TINY)
    assert forced.measured == 1 and forced.reused == 0


def test_a_new_way_of_timing_changes_the_fingerprint():
    env = latency.environment(1)
    assert env["timing_method"] == timing.METHOD and latency.fingerprint(env) == env["fingerprint"]
    assert latency.fingerprint({**env, "timing_method": timing.METHOD + 1}) != env["fingerprint"]
    old = {k: v for k, v in env.items() if k != "timing_method"}  # rows written before the field
    assert latency.fingerprint(old) == latency.fingerprint({**old, "timing_method": 1}) != env["fingerprint"]


def test_cached_rows_serve_only_requests_for_no_more_effort(tmp_path, monkeypatch):
    args = {**TINY, "runtimes": ["eager"], "out": tmp_path}
    bench(["pplcnet_x0_25"], **args)
    timed = _count_timed(monkeypatch)
    less = bench(["pplcnet_x0_25"], **{**args, "min_time": TINY["min_time"] / 2})
    assert less.reused == 1 and timed == []
    longer = bench(["pplcnet_x0_25"], **{**args, "min_time": TINY["min_time"] * 2})
    more_rounds = bench(["pplcnet_x0_25"], **{**args, "min_time": TINY["min_time"] * 2, "rounds": TINY["rounds"] + 1})
    assert longer.measured == 1 and more_rounds.measured == 1 and len(timed) == 2
    assert more_rounds.rows[0]["rounds_asked"] == TINY["rounds"] + 1


def test_interrupted_results_file_resumes(tmp_path, monkeypatch):
    models, batches = ["pplcnet_x0_25", "mobilenetv3_small_x1_0"], (1, 2)
    path = bench(models, runtimes=["eager"], batches=batches, out=tmp_path, **TINY).results
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2])  # a kill mid-line
    timed = _count_timed(monkeypatch)
    sweep = bench(models, runtimes=["eager"], batches=batches, out=tmp_path, **TINY)
    assert len(set(timed)) == 2 and sweep.reused == 2  # only the rows that were lost
    assert sorted((r["model"], r["batch"]) for r in read_rows(path)) == sorted((m, b) for m in models for b in batches)


def test_patterns_expand_and_preset_skips_unregistered_names(tmp_path, monkeypatch, capsys):
    sources, _ = latency.resolve_sources(["pplcnet_x0_2*"])
    assert [s.label for s in sources] == ["pplcnet_x0_25"]
    with pytest.raises(UnknownModelError, match="no registered model matches"):
        latency.resolve_sources(["nothing_like_this*"])
    monkeypatch.setitem(latency.PRESETS, "mini", ("pplcnet_x0_25", "not_yet_merged_s9"))
    sweep = bench(preset="mini", runtimes=["eager"], out=tmp_path, **TINY)
    assert [r["model"] for r in sweep.rows] == ["pplcnet_x0_25"]
    assert "not_yet_merged_s9 is not registered" in capsys.readouterr().err


def test_bad_inputs_raise_user_errors(tmp_path):
    with pytest.raises(UnknownRuntimeError, match="tensorrt"):
        bench(["pplcnet_x0_25"], runtimes=["tensorrt"], out=tmp_path, **TINY)
    with pytest.raises(LeannetError, match="nothing to benchmark"):
        bench([], out=tmp_path, **TINY)
    with pytest.raises(LeannetError, match="unknown preset"):
        bench(preset="nope", out=tmp_path, **TINY)
    with pytest.raises(LeannetError, match="unknown precision 'int4'"):
        bench(["pplcnet_x0_25"], precisions=["int4"], out=tmp_path, **TINY)
    with pytest.raises(LeannetError, match="no such file"):
        bench([str(tmp_path / "missing.onnx")], out=tmp_path, **TINY)


def test_checkpoint_and_artefact_sources(tmp_path):
    """bench on what users have: a leannet .safetensors, an exported .onnx and an OpenVINO .xml
    (each with its sidecar): rows name the file, its digest keys the cache."""
    import leannet
    from leannet.weights import save_weights

    model = leannet.create_model("pplcnet_x0_25", num_classes=7)
    ckpt = save_weights(model, tmp_path / "mine.safetensors",
                        meta={"arch": "pplcnet_x0_25", "num_classes": 7, "classes": list("abcdefg")})
    files = [str(ckpt)]
    if HAS_ORT:
        from leannet.deploy import export

        files.append(str(export(str(ckpt), format="onnx", out=tmp_path / "mine.onnx", img=32).path))
    if HAS_OV:
        from leannet.deploy import export

        files.append(str(export(str(ckpt), format="openvino", out=tmp_path / "mine_ov.xml", img=32).path))
    sweep = bench(files, runtimes=["eager", "onnxruntime", "openvino"], out=tmp_path / "b", **TINY)
    by_kind = {}
    for r in sweep.rows:
        assert "error" not in r, r.get("error")
        by_kind.setdefault(r["source_kind"], []).append(r)
        assert r["arch"] == "pplcnet_x0_25" and r["path"] in files
        assert r["source"].startswith(r["source_kind"] + ":") and len(r["source"].split(":")[1]) == 16
    ck = by_kind["checkpoint"]
    assert sorted(r["runtime"] for r in ck) == sorted(["eager"] + ["onnxruntime"] * HAS_ORT + ["openvino"] * HAS_OV)
    assert all(r["max_rel_diff"] <= 1e-4 for r in ck)
    arts = by_kind.get("artefact", [])
    # .onnx runs on both runtimes, .xml on OpenVINO only, never on eager
    assert sorted((r["model"], r["runtime"]) for r in arts) == sorted(
        [("mine", "onnxruntime")] * HAS_ORT + [("mine", "openvino")] * (HAS_ORT and HAS_OV)
        + [("mine_ov", "openvino")] * HAS_OV)
    assert all(r["input_shape"] == [1, 3, 32, 32] for r in arts)
    # a changed checkpoint is a different source: measured again, not served from the cache
    save_weights(leannet.create_model("pplcnet_x0_25", num_classes=7), ckpt,
                 meta={"arch": "pplcnet_x0_25", "num_classes": 7})
    again = bench([str(ckpt)], runtimes=["eager"], out=tmp_path / "b", **TINY)
    assert again.measured == 1 and again.rows[0]["source"] != ck[0]["source"]


def test_csv_and_json_formats_keep_their_schema(tmp_path):
    sweep = bench(["pplcnet_x0_25", "mobilenetv3_small_x1_0"], runtimes=["eager"], out=tmp_path, **TINY)
    table = list(csv.DictReader(io.StringIO(format_rows(sweep.rows, "csv"))))
    assert list(table[0]) == list(latency.ROW_FIELDS) and len(table) == 2
    assert [t["model"] for t in table] == ["pplcnet_x0_25", "mobilenetv3_small_x1_0"]
    assert float(table[0]["median_ms"]) == pytest.approx(sweep.rows[0]["median_ms"])
    lines = format_rows(sweep.rows, "json").splitlines()
    assert [json.loads(line) for line in lines] == sweep.rows
    text = format_rows(sweep.rows, "table")
    assert "pplcnet_x0_25" in text and "median ms" in text
    with pytest.raises(LeannetError, match="unknown format"):
        format_rows(sweep.rows, "xml")


def test_contended_cells_are_flagged_and_remeasured(tmp_path, monkeypatch):
    """A machine that reads busy for the first pass and quiet after: the cells are re-measured
    once, and the row keeps the quiet measurement and says it was retried."""
    calls = []
    real = timing.summarise

    def busy_first(cell, threads=None, contended_cores=timing.CONTENDED_CORES):
        s = real(cell, threads, contended_cores)
        calls.append(id(cell))
        first = len({c for c in calls}) <= 1
        return s | ({"contended": True, "others_cores": 1.0} if first else {"contended": False, "others_cores": 0.0})

    monkeypatch.setattr(timing, "summarise", busy_first)
    sweep = bench(["pplcnet_x0_25"], runtimes=["eager"], out=tmp_path, **{**TINY, "retries": 2})
    row = sweep.rows[0]
    assert row["retries"] == 1 and row["contended"] is False and not sweep.contended


def test_cli_bench_prints_a_table_and_formats(tmp_path, capsys):
    out = tmp_path / "b"
    args = ["bench", "pplcnet_x0_25", "--runtimes", "eager", "--img", "32", "--min-time", "0.02",
            "--rounds", "2", "--threads", "1", "--out", str(out), "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "pplcnet_x0_25" in printed and str(out / "results.jsonl") in printed and "1 measured" in printed
    assert main([*args, "--format", "json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["model"] == "pplcnet_x0_25" and row["runtime"] == "eager"
    assert main(["bench", "no_such_net", "--out", str(out)]) == 2
    assert main(["bench", "pplcnet_x0_25", "--batch", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no_such_net" in err[0] and "--batch" in err[1]


@needs_ort
def test_cli_bench_exits_1_when_a_cell_fails(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model")
    assert main(["bench", str(bad), "--runtimes", "onnxruntime", "--out", str(tmp_path / "b"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "bad onnxruntime fp32 b1" in err and "corrupt" in err


def test_a_slowed_machine_marks_its_rows_and_they_are_not_reused(tmp_path, monkeypatch, capsys):
    """Rows timed while the probe read > SLOWED x its fastest here are contended and, once a
    faster probe is on record, measured again instead of served from the cache."""
    rows = [{"probe_ms": 1.0, "probe_iqr": 0.01, "contended": False},
            {"probe_ms": 1.5, "probe_iqr": 0.01, "contended": False}]
    from rich.console import Console

    latency._check_machine_speed(rows, {}, Console(stderr=True))
    assert [r["contended"] for r in rows] == [False, True] and rows[1]["machine_slowdown"] == 1.5
    assert "1.50x slower" in capsys.readouterr().err
    latency._check_machine_speed(rows := [{"probe_ms": 1.05, "probe_iqr": 0.3, "contended": False}], {"probe": 1.0},
                                 Console(stderr=True))
    assert rows[0]["contended"] is False and "moved by 30%" in capsys.readouterr().err

    models = ["pplcnet_x0_25", "mobilenetv3_small_x1_0"]
    path = bench(models, runtimes=["eager"], out=tmp_path, **TINY).results
    saved = read_rows(path)
    saved[0]["probe_ms"] = 10 * saved[1]["probe_ms"]  # the first was timed on a slowed machine
    path.write_text("".join(json.dumps(r) + "\n" for r in saved))
    timed = _count_timed(monkeypatch)
    again = bench(models, runtimes=["eager"], out=tmp_path, **TINY)
    assert again.reused == 1 and again.measured == 1
    assert len(timed) == 1 and saved[0]["model"] in str(timed[0])


def test_a_runtime_sentinel_is_recorded_per_runtime_and_marks_nothing(capsys):
    """A sentinel reading slow for one runtime is recorded on that runtime's rows (a runtime
    sharing its thread pool, channels_last with eager, reads the same sentinel) and noted on
    screen, but marks no row contended and keeps no row from the cache: it has not been shown
    to predict its runtime's cells (docs/benchmarks.md, run 10)."""
    from rich.console import Console

    def row(runtime, sentinel_ms):
        return {"runtime": runtime, "probe_ms": 1.0, "probe_iqr": 0.01, "sentinel_ms": sentinel_ms,
                "contended": False}

    rows = [row("eager", 2.0), row("channels_last", 2.1), row("onnxruntime", 1.3), row("openvino", 1.0)]
    fastest = {"probe": 1.0, "eager": 2.0, "onnxruntime": 1.0, "openvino": 1.0}
    latency._check_machine_speed(rows, fastest, Console(stderr=True))
    assert [r["contended"] for r in rows] == [False] * 4
    assert [r["runtime_slowdown"] for r in rows] == [1.0, 1.05, 1.3, 1.0]
    assert all(r["machine_slowdown"] == 1.0 for r in rows)
    assert not any(latency._slowed(r, fastest) for r in rows)
    assert latency._slowed(dict(rows[0], probe_ms=1.2), fastest)  # the probe still does
    err = capsys.readouterr().err
    assert "onnxruntime's sentinel network read up to 1.30x" in err and "eager" not in err
    assert latency.why_contended({"contended": True, "contended_by": ["busy", "waiting"]}) == "busy, waiting"
    assert latency.why_contended({"contended": False, "contended_by": ["busy"]}) == ""
    slow = dict(rows[2], probe_ms=1.3, contended_by=["busy"])
    latency._check_machine_speed([slow], fastest, Console(stderr=True))
    assert slow["contended"] and latency.why_contended(slow) == "busy, slow machine"


def test_bench_rows_carry_their_runtimes_sentinel(tmp_path):
    rows = bench(["pplcnet_x0_25", "mobilenetv3_small_x1_0"], runtimes=["eager"], out=tmp_path, **TINY).rows
    assert all(r["sentinel_ms"] > 0 and r["runtime_slowdown"] == 1.0 for r in rows)
    assert rows[0]["sentinel_ms"] == rows[1]["sentinel_ms"]  # one sentinel per runtime and sweep


@needs_ort
@needs_ov
def test_each_thread_pool_gets_one_sentinel_computing_the_same_network():
    from leannet.bench import sentinel

    cells = sentinel.sentinels(["eager", "channels_last", "compile", "onnxruntime", "openvino", "cuda"], threads=1)
    assert sorted(cells) == ["eager", "onnxruntime", "openvino"]
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(sentinel.SHAPE, dtype=np.float32))
    with torch.no_grad():
        ref = sentinel.network()(x).numpy()
    outs = {"eager": cells["eager"].call().numpy(), "onnxruntime": cells["onnxruntime"].call()[0],
            "openvino": next(iter(cells["openvino"].call().values()))}
    for name, out in outs.items():
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5, err_msg=name)
    assert np.abs(ref).max() > 1e-3  # the weights are not all near zero: the network computes something
    timing.time_rounds(list(cells.values()), rounds=2, round_time=0.01, min_calls=2, warmup=1)
    read = sentinel.reading(cells, "channels_last")
    assert read["sentinel_ms"] > 0 and read == sentinel.reading(cells, "eager")
    assert sentinel.reading(cells, "cuda") == {}


def test_a_sentinel_that_cannot_be_built_is_left_out(monkeypatch):
    from leannet.bench import sentinel
    from leannet.deploy import onnx as onnx_export

    def broken(*a, **k):
        raise ImportError("no onnx here")

    monkeypatch.setattr(onnx_export, "export_onnx", broken)
    cells = sentinel.sentinels(["eager", "onnxruntime"], threads=1)
    assert sorted(cells) == ["eager"]


def test_a_zoo_model_gets_the_same_init_every_run_and_leaves_the_callers_rng(tmp_path):
    (source,), _ = latency.resolve_sources(["pplcnet_x0_25"])
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = latency._load(source, deployed=True, workdir=tmp_path).model.state_dict()
    assert torch.equal(torch.rand(3), expected_next)  # the caller's stream is untouched
    b = latency._load(source, deployed=True, workdir=tmp_path).model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
