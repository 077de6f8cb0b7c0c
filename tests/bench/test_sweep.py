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
from tests.helpers import needs

TINY = dict(img=32, min_time=0.02, rounds=2, threads=1, progress=False, retries=0)  # retries: a busy test machine must not re-time cells
HAS_ORT = latency.resolve_runtimes(["onnxruntime"])[0] == ["onnxruntime"]
HAS_OV = latency.resolve_runtimes(["openvino"])[0] == ["openvino"]
needs_ort = pytest.mark.skipif(not HAS_ORT, reason="onnxruntime is not installed (extra: deploy)")
needs_ov = pytest.mark.skipif(not HAS_OV, reason="openvino is not installed (extra: deploy)")


@pytest.fixture(autouse=True)
def _steady_machine(monkeypatch):
    """Cache reuse here is about the key; a sweep also re-measures rows whose machine probe read
    slow, which on a shared machine (or beside another pytest-xdist worker) is luck. The tests of
    that check set SLOWED back."""
    monkeypatch.setattr(timing, "SLOWED", float("inf"))


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


def test_installed_is_every_engine_that_runs_here(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "executorch" else real(name, *a))
    rts, notes = latency.resolve_runtimes(["installed", "channels_last"])
    assert rts[0] == "eager" and "executorch" not in rts and rts[-1] == "channels_last"
    assert ("onnxruntime" in rts) == HAS_ORT and ("openvino" in rts) == HAS_OV
    assert ("ncnn" in rts) == all(real(m) for m in ("ncnn", "pnnx"))
    assert "cuda" not in rts or torch.cuda.is_available()
    # one note lists what ran and names the missing engine with its install line
    assert len(notes) == 1 and "executorch (pip install 'leannet[mobile]')" in notes[0]
    assert notes[0].startswith(f"runtimes installed here: {', '.join(rts[:-1])}")


def test_engine_versions_are_part_of_the_environment(monkeypatch):
    import importlib.metadata

    from leannet.bench import results

    real = importlib.metadata.version
    versions = {"ncnn": "1.0.1", "executorch": "9.9.9"}

    def version(dist):
        if dist in versions:
            return versions[dist]
        if dist in results.MOBILE_DISTS:
            raise importlib.metadata.PackageNotFoundError(dist)
        return real(dist)

    monkeypatch.setattr(importlib.metadata, "version", version)
    env = results.environment(1)
    assert env["versions"]["ncnn"] == "1.0.1" and env["versions"]["executorch"] == "9.9.9"
    assert "pnnx" not in env["versions"]
    versions["ncnn"] = "1.0.2"  # an engine upgrade is another environment: its cells are re-measured
    assert results.environment(1)["fingerprint"] != env["fingerprint"]


def _count_timed(monkeypatch):
    timed = []
    real = timing.time_rounds
    monkeypatch.setattr(timing, "time_rounds", lambda cells, *a, **k: timed.extend(
        c.key for c in cells if not isinstance(c, timing.Probe)) or real(cells, *a, **k))
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
    assert "bad onnxruntime fp32 b1" in err and "cannot load it" in err


def test_a_slowed_machine_marks_its_rows_and_they_are_not_reused(tmp_path, monkeypatch, capsys):
    """Rows timed while the probe read > SLOWED x its fastest here are contended and, once a
    faster probe is on record, measured again instead of served from the cache."""
    monkeypatch.setattr(timing, "SLOWED", 1.10)
    rows = [{"probe_ms": 1.0, "probe_iqr": 0.01, "contended": False},
            {"probe_ms": 1.5, "probe_iqr": 0.01, "contended": False}]
    from rich.console import Console

    latency._check_machine_speed(rows, None, Console(stderr=True))
    assert [r["contended"] for r in rows] == [False, True] and rows[1]["machine_slowdown"] == 1.5
    assert "1.50x slower" in capsys.readouterr().err
    latency._check_machine_speed(rows := [{"probe_ms": 1.05, "probe_iqr": 0.3, "contended": False}], 1.0,
                                 Console(stderr=True))
    assert rows[0]["contended"] is False and "moved by 30%" in capsys.readouterr().err
    assert latency.why_contended({"contended": True, "contended_by": ["busy", "waiting"]}) == "busy, waiting"
    assert latency.why_contended({"contended": False, "contended_by": ["busy"]}) == ""
    slow = {"probe_ms": 1.3, "probe_iqr": 0.01, "contended": True, "contended_by": ["busy"]}
    latency._check_machine_speed([slow], 1.0, Console(stderr=True))
    assert slow["contended"] and latency.why_contended(slow) == "busy, slow machine"

    models = ["pplcnet_x0_25", "mobilenetv3_small_x1_0"]
    path = bench(models, runtimes=["eager"], out=tmp_path, **TINY).results
    saved = read_rows(path)
    saved[0]["probe_ms"] = 10 * saved[1]["probe_ms"]  # the first was timed on a slowed machine
    path.write_text("".join(json.dumps(r) + "\n" for r in saved))
    timed = _count_timed(monkeypatch)
    again = bench(models, runtimes=["eager"], out=tmp_path, **TINY)
    assert again.reused == 1 and again.measured == 1
    assert len(timed) == 1 and saved[0]["model"] in str(timed[0])


def test_rows_carry_no_sentinel_fields(tmp_path):
    """The runtime sentinel was an experiment (benchmarks/sentinel.py): the sweep neither
    times it nor records it."""
    rows = bench(["pplcnet_x0_25"], runtimes=["eager"], out=tmp_path, **TINY).rows
    assert rows[0]["probe_ms"] > 0
    assert not {"sentinel_ms", "sentinel_iqr", "runtime_slowdown"} & rows[0].keys()


def test_a_zoo_model_gets_the_same_init_every_run_and_leaves_the_callers_rng(tmp_path):
    (source,), _ = latency.resolve_sources(["pplcnet_x0_25"])
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = latency._load(source, deployed=True, workdir=tmp_path).model.state_dict()
    assert torch.equal(torch.rand(3), expected_next)  # the caller's stream is untouched
    b = latency._load(source, deployed=True, workdir=tmp_path).model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _image_set(root, seed=0, n=2):
    """A tiny labelled ImageFolder: two classes, `n` random 40x40 images each."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for cls in ("0", "1"):  # a zoo model's classes are its ImageNet indices
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / cls / f"{i}.png")
    return root


def _artefact(tmp_path, name="net", **kw):
    from leannet.deploy import export

    return export("pplcnet_x0_25", format="onnx", out=tmp_path / f"{name}.onnx", img=32, random_weights=True, **kw).path


def _fixed_probe(monkeypatch, ms):
    monkeypatch.setattr(timing.Probe, "speed", lambda self: {"probe_ms": ms, "probe_iqr": 0.0})


@needs_ort
def test_a_fixed_shape_artefact_runs_only_the_shape_it_takes(tmp_path):
    """Issue 32 (3): a batch-1, 32 px export asked for batch 1,2 and 64 px is never relabelled:
    the requests it cannot serve are skipped with a note; its rows record what ran."""
    onnx = str(_artefact(tmp_path))
    sweep = bench([onnx], runtimes=["onnxruntime"], batches=(1, 2), out=tmp_path / "b", **{**TINY, "img": None})
    assert [(r["batch"], r["img"], r["input_shape"]) for r in sweep.rows] == [(1, 32, [1, 3, 32, 32])]
    assert any("fixed at [1, 3, 32, 32]; N=2 asked, skipped" in n for n in sweep.notes), sweep.notes
    bigger = bench([onnx], runtimes=["onnxruntime"], out=tmp_path / "b", **{**TINY, "img": 64})
    assert bigger.rows == [] and any("H=64 asked, skipped" in n for n in bigger.notes)


@needs_ort
def test_dynamic_dims_take_their_shape_from_the_command_line(tmp_path, capsys):
    """Issue 32 (6): a third-party ONNX with input [?, 3, ?, ?] (no sidecar) runs at --shape /
    --img HxW; without one its cells are skipped with a line naming the input and its dims.
    Non-square sizes flow through zoo models too."""
    onnx = _artefact(tmp_path, dynamic_batch=True, dynamic_size=True)
    onnx.with_suffix(".json").unlink()  # a third party's file: no sidecar
    none = bench([str(onnx)], runtimes=["onnxruntime"], out=tmp_path / "b", **{**TINY, "img": None})
    assert none.rows == []
    assert any("input 'input' has dynamic dims [?, 3, ?, ?]; give its shape with --shape" in n
               for n in none.notes), none.notes
    sweep = bench([str(onnx)], runtimes=["onnxruntime"], shape=(2, 3, 32, 48), out=tmp_path / "b",
                  **{**TINY, "img": None})
    (row,) = sweep.rows
    assert "error" not in row, row.get("error")
    assert (row["batch"], row["img"], row["input_shape"]) == (2, "32x48", [2, 3, 32, 48])
    zoo = bench(["pplcnet_x0_25"], runtimes=["eager", "onnxruntime"], out=tmp_path / "b", **{**TINY, "img": "32x48"})
    assert [(r["img"], r["input_shape"], "error" in r) for r in zoo.rows] == [("32x48", [1, 3, 32, 48], False)] * 2
    args = ["bench", str(onnx), "--runtimes", "onnxruntime", "--shape", "1,3,40,32", "--min-time", "0.02",
            "--rounds", "2", "--threads", "1", "--out", str(tmp_path / "c"), "--quiet", "--format", "json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["input_shape"] == [1, 3, 40, 32]
    with pytest.raises(LeannetError, match="disagree"):
        bench(["pplcnet_x0_25"], shape=(1, 3, 32, 32), batches=(2,), out=tmp_path, **TINY)


def test_a_slow_host_is_flagged_in_a_new_results_folder(tmp_path, monkeypatch, recwarn):
    """Issue 32 (7): the machine's fastest probe is kept under $LEANNET_HOME, so a sweep into a
    fresh --out folder is judged against it; the first sweep on a machine sets it; a corrupt
    record warns and is set afresh."""
    monkeypatch.setattr(timing, "SLOWED", 1.10)
    _fixed_probe(monkeypatch, 1.0)
    first = bench(["pplcnet_x0_25"], runtimes=["eager"], out=tmp_path / "a", **TINY)
    assert "slow machine" not in first.rows[0]["contended_by"]
    _fixed_probe(monkeypatch, 2.0)  # the host slows down; a new results folder has no rows to compare
    slow = bench(["pplcnet_x0_25"], runtimes=["eager"], out=tmp_path / "b", **TINY)
    assert slow.rows[0]["contended"] is True and "slow machine" in slow.rows[0]["contended_by"]
    assert slow.rows[0]["machine_slowdown"] == 2.0
    from leannet.bench.results import machine_file

    home = machine_file()
    home.write_text("{not json")
    again = bench(["pplcnet_x0_25"], runtimes=["eager"], out=tmp_path / "c", **TINY)
    assert "slow machine" not in again.rows[0]["contended_by"]  # nothing on record: it sets the record
    assert any("unreadable" in str(w.message) for w in recwarn)
    assert json.loads(home.read_text()) == {again.rows[0]["fingerprint"]: 2.0}


def test_top1_is_reused_only_for_the_same_eval_set(tmp_path, monkeypatch):
    """Issue 32 (8): top-1 measured on set A is not served for --eval B, nor once A's files
    change: the key holds each set's content hash."""
    a, b = _image_set(tmp_path / "A"), _image_set(tmp_path / "B", seed=1)
    args = {**TINY, "runtimes": ["eager"], "out": tmp_path / "r"}
    first = bench(["pplcnet_x0_25"], eval_set=a, **args)
    assert first.rows[0]["top1_source"] == f"measured on {a}"
    assert bench(["pplcnet_x0_25"], eval_set=a, **args).reused == 1
    other = bench(["pplcnet_x0_25"], eval_set=b, **args)
    assert other.measured == 1 and other.rows[0]["top1_source"] == f"measured on {b}"
    assert other.rows[0]["eval_set_id"] != first.rows[0]["eval_set_id"]
    (a / "0" / "0.png").write_bytes((b / "0" / "0.png").read_bytes())  # A's content changes
    assert bench(["pplcnet_x0_25"], eval_set=a, **args).measured == 1
    assert bench(["pplcnet_x0_25"], **args).reused == 1  # no --eval: any measured row serves latency


@needs_ort
def test_int8_accuracy_says_how_it_was_calibrated_and_calibration_is_in_the_key(tmp_path):
    """Issue 32 (8): an INT8 row calibrated on generated inputs does not serve a --calib run;
    its measured top-1 says the calibration was generated; calibrated on its own eval images,
    the row says it is optimistic."""
    a = _image_set(tmp_path / "A")
    args = {**TINY, "runtimes": ["onnxruntime"], "precisions": ["int8"], "out": tmp_path / "r", "eval_set": a}
    generated = bench(["pplcnet_x0_25"], **args).rows[0]
    assert "error" not in generated, generated.get("error")
    assert "INT8 calibrated on generated inputs: not representative" in generated["top1_source"]
    own = bench(["pplcnet_x0_25"], calib=a, **args)
    assert own.measured == 1 and own.rows[0]["calib_set_id"]
    assert "4 of its INT8 calibration images are eval images: optimistic" in own.rows[0]["top1_source"]
    assert bench(["pplcnet_x0_25"], calib=a, **args).reused == 1


def test_a_discarded_remeasurement_does_not_count_as_the_rows_retry(tmp_path, monkeypatch):
    """Issue 32 (10a): a re-measurement busier than the first is discarded; the row keeps the
    first (retries 0) and says one was tried (remeasured 1)."""
    busy = iter([0.5, 1.0])
    real = timing.summarise
    seen = {}

    def busier_later(cell, threads=None, contended_cores=timing.CONTENDED_CORES):
        if id(cell) not in seen:
            seen[id(cell)] = next(busy, 1.0)
        return real(cell, threads, contended_cores) | {"contended": True, "others_cores": seen[id(cell)]}

    monkeypatch.setattr(timing, "summarise", busier_later)
    row = bench(["pplcnet_x0_25"], runtimes=["eager"], out=tmp_path, **{**TINY, "retries": 1}).rows[0]
    assert (row["retries"], row["others_cores"]) == (0, 0.5)
    assert row["remeasured"] == 1


def test_a_usage_error_is_one_line_even_with_debug(tmp_path, capsys):
    """Issue 32 (10c): `leannet bench --debug` with a bad option prints one line, no traceback;
    --debug after the command is honoured (a LeannetError then shows its traceback)."""
    assert main(["bench", "--debug", "pplcnet_x0_25", "--batch", "0", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--batch" in err[0]
    assert main(["bench", "--debug", "no_such_net", "--out", str(tmp_path)]) == 2
    assert "Traceback" in capsys.readouterr().err


@needs("ai_edge_litert")
def test_a_mobile_artefact_runs_on_its_engine_unless_runtimes_exclude_it(tmp_path, capsys):
    """Without --runtimes a .tflite runs on LiteRT (not on a desktop runtime that cannot read
    it, which made an error row); with runtimes that cannot read it, nothing is measured and
    the note names the engine that can."""
    from tests.helpers import write_tflite

    rng = np.random.default_rng(0)
    path = tmp_path / "m.tflite"
    write_tflite(path, rng.standard_normal((4, 3, 3, 3), dtype=np.float32), rng.standard_normal(4, dtype=np.float32))
    sweep = bench([str(path)], min_time=0.05, rounds=1, retries=0, out=tmp_path / "a", progress=False)
    assert [(r["runtime"], "error" in r) for r in sweep.rows] == [("litert", False)]
    assert main(["bench", str(path), "--runtimes", "onnxruntime,openvino", "--min-time", "0.05", "--rounds", "1",
                 "--out", str(tmp_path / "b"), "--quiet"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "its format runs on litert" in err and "nothing to measure" in err
    assert not (tmp_path / "b" / "results.jsonl").exists()
