"""Weights are part of the answer on `export` and `infer`: a registry name means its published
weights; without them the command refuses in one line unless `--random-weights`, which every
later record and screen then states; a plain state_dict loads with the class count its
classifier tensor has. Offline with nothing cached is the tests' default (tests/conftest.py)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import leannet
from leannet.cli import main

RANDOM = "random (latency only)"


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(path)
    return path


def _error_lines(err: str) -> list[str]:
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("leannet: error:")]


def test_infer_a_name_without_weights_refuses_unless_random_weights(image, capsys):
    # pplcnet_x0_5's published weights (timm) are not cached and the tests are offline.
    assert main(["infer", "pplcnet_x0_5", str(image), "--no-progress"]) == 2
    out, err = capsys.readouterr()
    (line,) = _error_lines(err)
    assert err.count("\n") == 1 and out == ""
    assert "offline" in line and "leannet convert" in line and "--random-weights" in line

    assert main(["infer", "pplcnet_x0_5", str(image), "--no-progress", "--random-weights"]) == 0
    out, err = capsys.readouterr()
    assert "random weights" in err and "mean nothing" in err and "top1" in out
    assert main(["infer", "pplcnet_x0_5", str(image), "--no-progress", "--random-weights", "--json"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["weights"] == RANDOM and len(row["labels"]) == 5


def test_infer_names_the_pytorch_runtime_eager_as_bench_does(image, capsys):
    assert main(["infer", "pplcnet_x0_25", str(image), "--no-progress", "--random-weights",
                 "--runtime", "eager"]) == 0
    capsys.readouterr()
    assert main(["infer", "pplcnet_x0_25", str(image), "--random-weights", "--runtime", "torch"]) == 2
    assert "invalid choice: 'torch'" in capsys.readouterr().err


def test_export_a_name_without_weights_refuses_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["export", "pplcnet_x0_5", "--img", "32"]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert "--random-weights" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert main(["export", "pplcnet_x0_5", "--img", "32", "--random-weights"]) == 0
    out = capsys.readouterr().out
    assert f"weights: {RANDOM}" in out
    side = json.loads((tmp_path / "pplcnet_x0_5.json").read_text())
    assert side["weights"] == RANDOM and "weights_top1" not in side


def test_a_plain_state_dict_exports_and_infers_with_its_own_class_count(tmp_path, image, capsys):
    model = leannet.create_model("pplcnet_x0_25", num_classes=10).eval()
    plain = tmp_path / "W.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(plain))  # no metadata
    out = tmp_path / "w.onnx"
    assert main(["export", "pplcnet_x0_25", "--weights", str(plain), "--img", "32", "--out", str(out)]) == 0
    capsys.readouterr()
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["classes"] == [str(i) for i in range(10)]
    assert side["weights"] == str(plain) and len(side["weights_sha256"]) == 64 and "weights_top1" not in side
    from leannet.deploy import Predictor

    x = torch.randn(1, 3, 32, 32)
    got = Predictor(out).runner(x.numpy())
    np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-4, atol=1e-4)
    assert main(["infer", "pplcnet_x0_25", str(image), "--weights", str(plain), "--json", "--no-progress"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["weights"] == str(plain) and all(label in map(str, range(10)) for label in row["labels"])
