"""Detector export: parity with PyTorch in ONNX Runtime, OpenVINO, ExecuTorch and ncnn, the artefact through
`detect infer` / `detect eval`, a detector that finds nothing, unreadable images."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from leannet.cli import main
from leannet.deploy.artefact import FORMATS, open_runner
from leannet.detect.config import ModelConfig
from leannet.detect.export import export_detector
from leannet.detect.model import RawDetector, build_detector, detector_meta
from leannet.detect.pipeline import open_detector
from leannet.errors import ConfigError, DataError, ExportError, LeannetError
from leannet.weights import save_weights
from tests.helpers import needs

SIZE = 64
CLASSES = ["card", "page"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Batch-1 passes of a tiny net gain nothing from a second thread, and on a busy machine
    # two spinning threads made each ~100x slower.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _detector(tmp_path, name="det", cls_bias=None):
    """A tiny detector whose heads give spread-out scores (a fresh one scores every anchor at
    the focal-loss prior, 0.01, below the 0.05 threshold: no detections at all)."""
    cfg = ModelConfig(backbone="pplcnet_x0_25", fpn_channels=16, head_channels=16, image_size=SIZE)
    model = build_detector(cfg).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.head.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        if cls_bias is not None:
            model.head.classification_head.cls_logits.bias.fill_(cls_bias)
    path = save_weights(model, tmp_path / f"{name}.safetensors", meta=detector_meta(cfg, CLASSES))
    return model, path


def _coco(tmp_path, n=3):
    """A tiny COCO set of random-noise images, larger than SIZE so they are resized (square
    80x80, and 24x96: letterboxed to the square, where torchvision pads it only to 32x64), with
    one box each."""
    d = tmp_path / "coco"
    d.mkdir()
    rng = np.random.default_rng(0)
    images, anns = [], []
    for i in range(n):
        h, w = (80, 80) if i % 2 == 0 else (24, 96)
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(d / f"{i}.png")
        images.append({"id": i + 1, "file_name": f"{i}.png", "width": w, "height": h})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1 + i % 2, "bbox": [4, 4, 30, 20]})
    cats = [{"id": 1, "name": "card"}, {"id": 2, "name": "page"}]
    (d / "ann.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return d / "ann.json"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tiny")
    model, weights = _detector(tmp)
    return tmp, model, weights, _coco(tmp)


def _image(ann, i):
    return torch.from_numpy(np.array(Image.open(ann.parent / f"{i}.png").convert("RGB"))).permute(2, 0, 1) / 255


@pytest.mark.parametrize("fmt", ["onnx", "openvino", pytest.param("executorch", marks=[needs("executorch"), pytest.mark.slow]),  # ~30 s: lowering + pre-flight
                                 pytest.param("ncnn", marks=needs("ncnn", "pnnx"))])
def test_export_matches_pytorch(tiny, fmt):
    tmp, model, weights, ann = tiny
    out = tmp / f"parity-{fmt}{FORMATS[fmt]}"
    result = export_detector(weights, fmt, out=out, ann=ann)
    side = json.loads(result.sidecar.read_text())
    assert side["task"] == "detection" and side["input_size"] == [3, SIZE, SIZE] and side["classes"] == CLASSES
    assert side["detection"]["anchor_sizes"] == [list(s) for s in model.anchor_generator.sizes]
    maps = side["map"]
    assert abs(maps["pytorch"]["map50"] - maps[f"{fmt} fp32"]["map50"]) <= 1e-3

    # Independent of export's own check. 1) The raw graph outputs, run directly in the
    # runtime, against the original (BN unfolded) PyTorch network.
    x = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        ref = [t.numpy() for t in RawDetector(model)(x)]
    runner = open_runner(out, {"onnx": "onnxruntime"}.get(fmt, fmt), precision="fp32", all_outputs=True)
    got = runner(x.numpy())
    assert len(got) == 2
    for r, g in zip(ref, got, strict=True):
        assert r.shape == g.shape
        assert np.abs(r - g).max() <= 1e-4 * max(1.0, np.abs(r).max())
    # 2) The whole artefact path (pre-process, runtime, decoding, NMS) against torchvision's
    # own RetinaNet forward on a square image, where both see the same input square.
    img = _image(ann, 0)
    with torch.inference_mode():
        want = model([img])[0]
    have = open_detector(out)([img])[0]
    assert len(want["boxes"]) > 10
    assert torch.equal(have["labels"], want["labels"])
    torch.testing.assert_close(have["boxes"], want["boxes"], atol=0.05, rtol=0)
    torch.testing.assert_close(have["scores"], want["scores"], atol=1e-4, rtol=0)


def test_artefact_through_infer_and_eval_equals_checkpoint(tiny, tmp_path, capsys):
    tmp, _, weights, ann = tiny
    onnx = tmp / "cli.onnx"
    assert main(["detect", "export", str(weights), "--out", str(onnx)]) == 0
    images = [str(ann.parent / "0.png"), str(ann.parent / "1.png")]  # square and letterboxed
    runs = {}
    for name, src in (("ckpt", weights), ("onnx", onnx)):
        assert main(["detect", "infer", *images, "--weights", str(src), "--out", str(tmp_path / name)]) == 0
        runs[name] = json.loads((tmp_path / name / "detections.json").read_text())
    a, b = runs["ckpt"], runs["onnx"]
    assert [r["image"] for r in a] == [r["image"] for r in b] == images
    for ra, rb in zip(a, b, strict=True):
        assert len(ra["detections"]) == len(rb["detections"]) > 0
        for da, db in zip(ra["detections"], rb["detections"], strict=True):
            assert da["class"] == db["class"]
            assert abs(da["score"] - db["score"]) <= 2e-4  # JSON rounds scores to 4 places
            assert np.abs(np.subtract(da["box_xyxy"], db["box_xyxy"])).max() <= 0.02  # and boxes to 2
    capsys.readouterr()
    maps = {}
    for name, src in (("ckpt", weights), ("onnx", onnx)):
        assert main(["detect", "eval", "--weights", str(src), "--ann", str(ann), "--no-speed"]) == 0
        maps[name] = json.loads(capsys.readouterr().out)
    assert maps["onnx"]["runtime"] == "onnxruntime" and maps["ckpt"]["runtime"] == "eager"
    for k in ("map", "map50"):
        assert abs(maps["ckpt"][k] - maps["onnx"][k]) <= 1e-3
    assert maps["onnx"]["macs"] == maps["ckpt"]["macs"] > 0  # recorded in the sidecar at export


def test_detector_that_finds_nothing_exports_and_runs(tmp_path, capsys):
    model, weights = _detector(tmp_path, "blind", cls_bias=-30.0)
    ann = _coco(tmp_path, n=2)
    img = _image(ann, 0)
    with torch.inference_mode():
        assert len(model([img])[0]["boxes"]) == 0
    out = tmp_path / "blind.onnx"
    result = export_detector(weights, "onnx", out=out, ann=ann)
    assert result.record["verification"][0]["detections"] == 0
    assert result.record["map"]["onnx fp32"]["map"] == 0.0
    dets = open_detector(out)([img])[0]
    assert dets["boxes"].shape == (0, 4) and dets["scores"].shape == (0,) and dets["labels"].shape == (0,)
    assert main(["detect", "infer", str(ann.parent / "1.png"), "--weights", str(out), "--out", str(tmp_path / "o")]) == 0
    records = json.loads((tmp_path / "o" / "detections.json").read_text())
    assert records == [{"image": str(ann.parent / "1.png"), "detections": []}]


def test_bad_images_in_detect_infer_are_skipped_and_reported(tiny, tmp_path, capsys):
    _, _, weights, ann = tiny
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.open(ann.parent / "0.png").save(folder / "a.png")
    (folder / "b.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    Image.open(ann.parent / "1.png").save(folder / "c.png")
    assert main(["detect", "infer", str(folder), "--weights", str(weights), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert f"leannet: skipped {folder / 'b.jpg'}:" in err and "1 of 3 images could not be read" in err
    records = json.loads((tmp_path / "o" / "detections.json").read_text())
    assert [r["image"] for r in records] == [str(folder / n) for n in ("a.png", "b.jpg", "c.png")]
    assert "error" in records[1] and "detections" not in records[1]
    assert records[0]["detections"] and records[2]["detections"]
    assert sorted(p.name for p in (tmp_path / "o").glob("*.png")) == ["a.png", "c.png"]


def test_export_refuses_a_mismatch(tiny, monkeypatch, tmp_path):
    # A runtime that computes something else must fail the export, and leave no file behind.
    import leannet.deploy.artefact as artefact

    _, _, weights, _ = tiny
    opened = artefact.open_runner

    def skewed(*a, **k):  # box deltas 0.1% off
        r = opened(*a, **k)
        fn = r.fn
        r.fn = lambda x: (lambda cls, box: [cls, box * 1.001])(*fn(x))
        return r

    monkeypatch.setattr(artefact, "open_runner", skewed)
    with pytest.raises(ExportError, match="does not match PyTorch"):
        export_detector(weights, "onnx", out=tmp_path / "bad.onnx")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("fmt, int8, says", [("coreml", False, "a detector exports to onnx, openvino, executorch, ncnn"),
                                              ("ncnn", True, "--int8 for a detector: --format onnx or openvino")])
def test_export_refuses_what_it_cannot_verify(tiny, tmp_path, fmt, int8, says):
    _, _, weights, ann = tiny
    with pytest.raises(ConfigError, match=says):
        export_detector(weights, fmt, out=tmp_path / f"d{FORMATS[fmt]}", int8=int8, calib=ann.parent)
    assert list(tmp_path.iterdir()) == []


def test_export_does_not_overwrite_a_foreign_json(tiny, tmp_path):
    _, _, weights, _ = tiny
    (tmp_path / "w.json").write_text('{"arch": "notes a user keeps"}')
    with pytest.raises(ConfigError, match=r"w\.json exists and is not a detector export's sidecar"):
        export_detector(weights, "onnx", out=tmp_path / "w.onnx")
    assert (tmp_path / "w.json").read_text() == '{"arch": "notes a user keeps"}'
    assert not (tmp_path / "w.onnx").exists()


def test_export_does_not_overwrite_a_sibling_artefacts_sidecar(tiny, tmp_path):
    # w.onnx and w.xml would share w.json: the second export would describe the wrong file
    _, _, weights, _ = tiny
    export_detector(weights, "onnx", out=tmp_path / "w.onnx")
    before = (tmp_path / "w.json").read_text()
    with pytest.raises(ConfigError, match=r"w\.json is the sidecar of w\.onnx"):
        export_detector(weights, "openvino", out=tmp_path / "w.xml")
    assert (tmp_path / "w.json").read_text() == before and not (tmp_path / "w.xml").exists()
    export_detector(weights, "onnx", out=tmp_path / "w.onnx")  # re-exporting the same artefact is fine


def test_classifier_artefact_is_not_a_detector(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"")
    (tmp_path / "m.json").write_text(json.dumps({"input_size": [3, 8, 8], "mean": [0, 0, 0], "std": [1, 1, 1],
                                                 "classes": ["a"]}))
    with pytest.raises(LeannetError, match="not an exported detector"):
        open_detector(tmp_path / "m.onnx")


@pytest.mark.slow
def test_int8_export_runs_and_reports_its_change(tiny, tmp_path):
    import onnx

    _, _, weights, ann = tiny
    out = tmp_path / "q.onnx"
    result = export_detector(weights, "onnx", out=out, int8=True, calib=ann.parent, ann=ann)
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    r = result.record
    assert r["precision"] == "int8" and r["calibration"]["images"] == 3
    assert [v["precision"] for v in r["verification"]] == ["fp32", "int8"]
    assert r["verification"][1]["max_raw_diff"] > r["verification"][0]["max_raw_diff"]
    assert set(r["map"]) == {"pytorch", "onnx fp32", "onnx int8"}
    dets = open_detector(out)([_image(ann, 0)])[0]
    assert open_detector(out).precision == "int8" and dets["boxes"].shape[1] == 4


def test_classifier_infer_refuses_a_detector_artefact(tmp_path, capsys):
    (tmp_path / "d.onnx").write_bytes(b"")
    (tmp_path / "d.json").write_text(json.dumps({"task": "detection", "input_size": [3, 8, 8], "mean": [0, 0, 0],
                                                 "std": [1, 1, 1], "classes": ["a"]}))
    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    assert main(["infer", str(tmp_path / "d.onnx"), str(tmp_path / "x.png")]) == 2
    assert "is an exported detector; run it with `leannet detect infer`" in capsys.readouterr().err


def test_detection_matching_exempts_only_ties():
    from types import SimpleNamespace

    from leannet.detect.export import _compare

    spec = SimpleNamespace(score_thresh=0.05, detections_per_img=100)

    def dets(boxes, scores):
        return {"boxes": torch.tensor(boxes, dtype=torch.float32), "scores": torch.tensor(scores),
                "labels": torch.zeros(len(scores), dtype=torch.int64)}

    a = dets([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], [1.0, 1.0, 0.5])
    # Of two tied boxes the other runtime kept a third one: the tie is exempt ...
    b = dets([[0, 0, 10, 10], [60, 60, 70, 70], [40, 40, 50, 50]], [1.0, 1.0, 0.5])
    assert _compare(a, b, spec, 0.05, 1e-4)[:2] == (0, 2)
    # ... a moved box with a distinct score is not, nor a missing one, nor a score off by 1e-3.
    assert _compare(a, dets([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 51]], [1.0, 1.0, 0.5]),
                    spec, 0.05, 1e-4)[0] == 1
    assert _compare(a, dets([[0, 0, 10, 10], [20, 20, 30, 30]], [1.0, 1.0]), spec, 0.05, 1e-4)[0] == 1
    assert _compare(a, dets([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], [1.0, 1.0, 0.501]),
                    spec, 0.05, 1e-4)[0] == 1


def test_unreadable_calibration_images_are_skipped_and_reported_as_classification_does(tmp_path, caplog):
    import logging

    from leannet.deploy.quantize import calibration_inputs
    from leannet.detect.export import _read_folder

    for i in range(2):
        Image.new("RGB", (8, 6), (i, 0, 0)).save(tmp_path / f"{i}.png")
    (tmp_path / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    pre = {"input_size": [3, 8, 8], "mean": [0, 0, 0], "std": [1, 1, 1]}
    with caplog.at_level(logging.WARNING, logger="leannet.data"):
        images = _read_folder(tmp_path, 10)
        detect_msgs = [r.getMessage() for r in caplog.records]
        caplog.clear()
        x = calibration_inputs(tmp_path, pre)
        classify_msgs = [r.getMessage() for r in caplog.records]
    assert [tuple(t.shape) for t in images] == [(3, 6, 8), (3, 6, 8)] and x.shape == (2, 3, 8, 8)
    for msgs in (detect_msgs, classify_msgs):
        assert len(msgs) == 1 and "skipped 1 of 3 images as unreadable" in msgs[0] and "2.png" in msgs[0]
    (tmp_path / "0.png").write_bytes(b"")
    (tmp_path / "1.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"no readable images \(.*0\.png: not an image"):
        _read_folder(tmp_path, 10)
