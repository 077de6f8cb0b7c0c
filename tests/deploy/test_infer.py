"""`infer` on real digit images plus every kind of bad file, through the CLI."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from leannet.cli import main
from leannet.deploy import Predictor, export


def _sample(digits_root, n_per_class=1):
    return [sorted((digits_root / "val" / str(c)).glob("*.png"))[:n_per_class] for c in range(10)]


@pytest.fixture
def image_dir(digits_root, tmp_path, monkeypatch):
    """Ten good digits plus one file of each awkward kind; returns (dir, {name: expected})."""
    d = tmp_path / "imgs"
    d.mkdir()
    for (p,) in _sample(digits_root):
        shutil.copy(p, d / f"good_{p.parent.name}.png")
    src = Image.open(next((digits_root / "val" / "3").glob("*.png"))).convert("RGB")
    big = src.resize((64, 64))
    big.convert("CMYK").save(d / "cmyk.jpg")
    big.convert("L").save(d / "gray.png")
    Image.fromarray(np.asarray(big.convert("L"), dtype=np.uint16) * 257).save(d / "sixteen.png")
    Image.new("RGB", (1, 1), (255, 255, 255)).save(d / "tiny.png")
    big.save(d / "whole.png")
    data = (d / "whole.png").read_bytes()
    (d / "truncated.png").write_bytes(data[: len(data) // 2])
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (d / "notes.jpg").write_text("this is not an image\n")
    Image.new("L", (400, 400)).save(d / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300 * 300)  # so 400x400 counts as huge
    ok = {"cmyk.jpg", "gray.png", "sixteen.png", "tiny.png", "whole.png"} | {f"good_{c}.png" for c in range(10)}
    bad = {"truncated.png": "truncated", "corrupt.png": "corrupt", "notes.jpg": "not an image",
           "huge.png": "too large"}
    return d, ok, bad


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_infer_folder_with_bad_files(digits_checkpoint, image_dir, capsys):
    ckpt, _ = digits_checkpoint
    d, ok, bad = image_dir
    code, rows, err = _run(["infer", str(ckpt), str(d), "--json", "--topk", "3", "--no-progress"], capsys)
    assert code == 1  # the run finished but some files failed
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in rows}
    assert set(by_name) == ok | set(bad)
    for name, reason in bad.items():
        assert reason in by_name[name]["error"]
        assert name in err and reason in err
    for name in ok:
        assert len(by_name[name]["labels"]) == 3 and by_name[name]["scores"] == sorted(by_name[name]["scores"], reverse=True)
    correct = sum(by_name[f"good_{c}.png"]["labels"][0] == str(c) for c in range(10))
    assert correct >= 8  # the trained model reads real digits through infer's preprocessing
    assert "4 of 19 images could not be read" in err


def test_artefacts_predict_like_the_checkpoint(digits_checkpoint, digits_root, tmp_path):
    """Same preprocessing everywhere: PyTorch, ONNX Runtime and OpenVINO give the same top-k."""
    ckpt, _ = digits_checkpoint
    paths = [p for (p,) in _sample(digits_root)]
    onnx_path = export(ckpt, format="onnx", out=tmp_path / "m.onnx").path
    xml_path = export(ckpt, format="openvino", batch=4, out=tmp_path / "m-xml.xml").path
    ref = list(Predictor(ckpt).predict(paths, topk=3))
    for source, runtime in [(onnx_path, None), (onnx_path, "openvino"), (xml_path, None)]:
        got = list(Predictor(source, runtime=runtime).predict(paths, topk=3))
        assert [g.labels for g in got] == [r.labels for r in ref]
        np.testing.assert_allclose([g.scores for g in got], [r.scores for r in ref], atol=1e-5)


def test_infer_table_output(digits_checkpoint, digits_root, capsys):
    ckpt, _ = digits_checkpoint
    (p,) = _sample(digits_root)[7]
    assert main(["infer", str(ckpt), str(p), "--topk", "2", "--no-progress"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split()[:3] == ["path", "top1", "top2"]
    assert row.startswith(str(p)) and row.split()[1] == "7"


@pytest.mark.parametrize(("argv", "match"), [
    (["export", "pp_lcnet"], "unknown model 'pp_lcnet'"),
    (["export", "pplcnet_x0_25", "--precision", "bf16"], "OpenVINO"),
    (["export", "pplcnet_x0_25", "--int8"], "--calib"),
    (["export", "pplcnet_x0_25", "--weights", "missing.safetensors"], "no such file"),
    (["export", "pplcnet_x0_25", "--img", "0"], "positive integer"),
    (["export", "pplcnet_x0_25", "--format", "onnx", "--out", "m.xml"], "must end in .onnx"),
    (["infer", "pplcnet_x0_25", "nowhere/"], "no such file or folder"),
    (["infer", "model.onnx", "."], "no such file"),
    (["infer", "pplcnet_x0_25", ".", "--runtime", "openvino"], "export first"),
])
def test_cli_errors_are_one_line_exit_2(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("leannet: error:") and match in err


def test_onnx_without_sidecar_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "m.onnx").write_bytes(b"not really")
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    assert main(["infer", str(tmp_path / "m.onnx"), str(tmp_path / "a.png")]) == 2
    assert "no preprocessing sidecar" in capsys.readouterr().err
