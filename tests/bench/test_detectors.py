"""`leannet bench` on detectors: a checkpoint runs eager, its ONNX / OpenVINO artefacts on their
runtimes; rows carry task "detect", the detector's own input size and FPS; the cache and the
classifier sweep work alongside. No timing value is asserted.

Kept in tests/profile, after tests/detect: a sweep with ONNX Runtime / OpenVINO cells followed
by test_data's DataLoader worker fork and then any subprocess segfaults the test process
(test_latency's artefact sweep does the same; found, not fixed, here)."""

import csv
import io
import json

import pytest
import torch

from leannet.bench import detectors as detect_bench
from leannet.bench import sweep as latency
from leannet.bench.detectors import is_detector
from leannet.bench.sweep import bench
from leannet.cli import main
from leannet.detect.pipeline import DetectionPipeline
from tests.detect.test_export import SIZE, _detector

TINY = dict(min_time=0.02, rounds=2, threads=1, progress=False)


@pytest.fixture
def steady_machine(monkeypatch):
    """Cache reuse here is about the key (file digest, settings, environment). latency.bench
    also re-measures rows whose machine-speed probe read slow (tests/profile's to test); on a
    shared machine that would make reuse a matter of luck, so it is switched off."""
    from leannet.runtime import timing

    monkeypatch.setattr(timing, "SLOWED", float("inf"))
HAS_ORT = latency.resolve_runtimes(["onnxruntime"])[0] == ["onnxruntime"]
HAS_OV = latency.resolve_runtimes(["openvino"])[0] == ["openvino"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny detector checkpoint and, where the runtimes exist, its ONNX and OpenVINO exports."""
    from leannet.detect.export import export_detector

    tmp = tmp_path_factory.mktemp("bench")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _, weights = _detector(tmp)
        out = {"checkpoint": str(weights)}
        if HAS_ORT:
            out["onnx"] = str(export_detector(weights, "onnx", tmp / "det.onnx").path)
        if HAS_OV:
            out["openvino"] = str(export_detector(weights, "openvino", tmp / "det_ov.xml").path)
    finally:
        torch.set_num_threads(n)
    return out


def test_detector_files_get_one_row_per_runtime_and_are_cached(files, tmp_path, steady_machine):
    sweep = bench(list(files.values()), runtimes=["eager", "onnxruntime", "openvino"], out=tmp_path, **TINY)
    got = sorted((r["model"], r["runtime"]) for r in sweep.rows)
    # the checkpoint runs eager only; an .onnx on both runtimes; an .xml on OpenVINO only
    assert got == sorted([("det", "eager")] + [("det", "onnxruntime")] * HAS_ORT
                         + [("det", "openvino")] * (HAS_ORT and HAS_OV) + [("det_ov", "openvino")] * HAS_OV)
    ckpt_row = next(r for r in sweep.rows if r["runtime"] == "eager")
    from leannet.detect.evaluate import complexity
    from leannet.detect.model import load_detector

    sidecar = complexity(load_detector(files["checkpoint"])[0], SIZE)  # what `detect export` records
    for r in sweep.rows:
        assert "error" not in r, r.get("error")
        assert r["task"] == "detect" and r["precision"] == "fp32" and r["batch"] == 1
        assert r["img"] == SIZE and r["input_shape"] == [1, 3, SIZE, SIZE]  # the detector's size, not 224
        assert r["fps"] == pytest.approx(1000.0 / r["median_ms"])
        assert r["throughput_ips"] == pytest.approx(r["fps"])
        assert r["p90_ms"] > 0 and r["iqr_ms"] >= 0 and isinstance(r["contended"], bool)
        # every row counts the same network, as the export's sidecar (an independent counter) did
        assert (r["macs"], r["params"]) == (ckpt_row["macs"], ckpt_row["params"])
        assert r["macs"] == pytest.approx(sidecar["macs"], rel=0.01) and r["params"] == sidecar["params"]
        assert r["memory_access_bytes"] > 0 and r["activations"] > 0
        assert r["source"] == f"{r['source_kind']}:{latency._sha256(__import__('pathlib').Path(r['path']))}"
    assert sweep.measured == len(sweep.rows) and sweep.reused == 0
    again = bench(list(files.values()), runtimes=["eager", "onnxruntime", "openvino"], out=tmp_path, **TINY)
    assert again.measured == 0 and again.reused == len(sweep.rows)
    assert [r["median_ms"] for r in again.rows] == [r["median_ms"] for r in sweep.rows]
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(sweep.rows)  # nothing appended by the cached run
    more = bench([files["checkpoint"]], runtimes=["eager"], out=tmp_path, **{**TINY, "min_time": 0.04})
    assert more.measured == 1  # asked for more effort than the cached row had: measured again


def test_timed_call_is_the_whole_pipeline(files, tmp_path, monkeypatch):
    """Each timed call resizes, runs the network and decodes + suppresses (not the network alone)."""
    calls = {"pre": 0, "post": 0}
    pre, post = DetectionPipeline.preprocess, DetectionPipeline.postprocess

    def counting_pre(self, images):
        calls["pre"] += 1
        return pre(self, images)

    def counting_post(self, *a):
        calls["post"] += 1
        return post(self, *a)

    monkeypatch.setattr(DetectionPipeline, "preprocess", counting_pre)
    monkeypatch.setattr(DetectionPipeline, "postprocess", counting_post)
    sweep = bench([files["checkpoint"]], runtimes=["eager"], out=tmp_path, **TINY)
    # 2 untimed calls when preparing, then per round >= 2 warm-up + >= 3 timed calls
    assert calls["pre"] == calls["post"] >= 2 + sweep.rows[0]["repeats"] + 2 * 2


def test_classifier_and_detector_in_one_command(files, tmp_path, capsys, steady_machine):
    args = ["bench", "pplcnet_x0_25", files["checkpoint"], "--runtimes", "eager", "--img", "32",
            "--min-time", "0.02", "--rounds", "2", "--threads", "1", "--quiet", "--out", str(tmp_path)]
    assert main([*args, "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["model"], r.get("task"), r["img"]) for r in rows] == [("pplcnet_x0_25", None, 32), ("det", "detect", SIZE)]
    assert main([*args, "--format", "csv", "--report"]) == 0  # now cached
    report = (tmp_path / "report.md").read_text()  # the detector in a table of its own
    det_section = report.index("### detectors, whole pipeline per image, batch 1, 64x64")
    assert report.index("| pplcnet_x0_25 |") < det_section < report.index("| det |")
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(t["model"], t["task"]) for t in table] == [("pplcnet_x0_25", ""), ("det", "detect")]
    assert float(table[1]["throughput_ips"]) == pytest.approx(1000 / float(table[1]["median_ms"]))
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 2


def test_only_detector_files_are_detectors(files, tmp_path):
    import leannet
    from leannet.weights import save_weights

    clf = save_weights(leannet.create_model("pplcnet_x0_25", num_classes=3), tmp_path / "clf.safetensors",
                       meta={"arch": "pplcnet_x0_25", "num_classes": 3})
    assert [is_detector(p) for p in files.values()] == [True] * len(files)
    assert not is_detector(str(clf)) and not is_detector("pplcnet_x0_25")
    assert not is_detector(str(tmp_path / "missing.safetensors"))


def test_broken_detector_cell_gets_an_error_row(files, tmp_path, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("no kernel for this")

    monkeypatch.setattr(detect_bench, "_pipeline", broken)
    sweep = bench([files["checkpoint"]], runtimes=["eager"], out=tmp_path, **TINY)
    assert sweep.measured == 0 and "no kernel for this" in sweep.rows[0]["error"]
    assert sweep.rows[0]["task"] == "detect"


@pytest.mark.skipif(not HAS_ORT, reason="onnxruntime is not installed (extra: deploy)")
def test_an_int8_artefact_is_its_own_precision(files, tmp_path):
    """An artefact runs only in the precision its sidecar records (as classifier artefacts):
    here an fp32 graph relabelled int8, which is all the routing looks at."""
    import shutil
    from pathlib import Path

    src = Path(files["onnx"])
    int8 = tmp_path / "det-int8.onnx"
    shutil.copy(src, int8)
    record = json.loads(src.with_suffix(".json").read_text())
    int8.with_suffix(".json").write_text(json.dumps({**record, "precision": "int8"}))
    fp32_only = bench([str(int8)], runtimes=["onnxruntime"], out=tmp_path / "a", **TINY)
    assert fp32_only.rows == [] and any("no cell to run" in n for n in fp32_only.notes)
    sweep = bench([str(int8)], runtimes=["onnxruntime"], precisions=["fp32", "int8"], out=tmp_path / "b", **TINY)
    assert [(r["runtime"], r["precision"], r["task"]) for r in sweep.rows] == [("onnxruntime", "int8", "detect")]


def test_classifier_and_detector_cells_are_timed_in_one_interleaved_run(files, tmp_path, monkeypatch):
    """One sweep for every kind of source: the detector's cells and the classifier's share
    the rounds (one time_rounds call holds both), not two sweeps one after the other."""
    from leannet.runtime import timing

    runs = []
    real = timing.time_rounds
    monkeypatch.setattr(timing, "time_rounds", lambda cells, *a, **k: runs.append(
        {"detect" if is_detector(c.key[0].spec) else "classify" for c in cells
         if isinstance(c.key[0], latency.Source)}) or real(cells, *a, **k))
    sweep = bench(["pplcnet_x0_25", files["checkpoint"]], runtimes=["eager"], img=32, out=tmp_path, **TINY)
    assert [r.get("task") for r in sweep.rows] == [None, "detect"]
    assert runs[0] == {"classify", "detect"}


@pytest.mark.skipif(not HAS_ORT, reason="onnxruntime is not installed (extra: deploy)")
def test_a_detector_cell_this_cpu_cannot_run_is_skipped_like_a_classifiers(files, tmp_path, monkeypatch):
    """Issue 32 (9): the detector plan applies the classifier plan's "this CPU runs this
    precision" filter: a bf16 detector artefact on a CPU without bf16 kernels is not timed in
    f32 and labelled bf16."""
    import shutil
    from pathlib import Path

    src = Path(files["onnx"])
    bf16 = tmp_path / "det-bf16.onnx"
    shutil.copy(src, bf16)
    record = json.loads(src.with_suffix(".json").read_text())
    bf16.with_suffix(".json").write_text(json.dumps({**record, "precision": "bf16"}))
    monkeypatch.setattr(latency, "_runs_here", lambda rt, prec: not (rt == "openvino" and prec == "bf16"))
    monkeypatch.setattr(latency, "resolve_runtimes", lambda names: (list(names), []))  # as if OpenVINO were here
    sweep = bench([str(bf16)], runtimes=["openvino"], precisions=["bf16"], out=tmp_path, **TINY)
    assert sweep.rows == []
    assert any("openvino has no bf16 kernels on this CPU" in n for n in sweep.notes)
