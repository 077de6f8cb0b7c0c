"""LiteRT on a real .tflite (tests.helpers.write_tflite: a 3x3 convolution with ReLU and a
spatial mean, a 4-class "classifier" on 8x8 RGB, NHWC as TensorFlow's converter lays it out).
The reference is torch's conv2d on the same weights, an independent implementation."""

import json

import numpy as np
import pytest
import torch

from leannet.runtime.runners import open_runner
from tests.helpers import needs, write_tflite

pytestmark = needs("ai_edge_litert")
SIDE, CLASSES = 8, 4


@pytest.fixture()
def tflite(tmp_path):
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((CLASSES, 3, 3, 3), dtype=np.float32)
    bias = rng.standard_normal(CLASSES, dtype=np.float32)
    path = tmp_path / "tiny.tflite"
    write_tflite(path, weight, bias)
    return path, torch.from_numpy(weight), torch.from_numpy(bias)


def _reference(x, weight, bias):
    return torch.relu(torch.nn.functional.conv2d(torch.from_numpy(x), weight, bias, padding=1)).mean((2, 3)).numpy()


def test_litert_runs_a_tflite_as_torch_computes_it(tflite):
    path, weight, bias = tflite
    runner = open_runner(path, "litert", threads=2)  # pre-flown in a child first
    x = np.random.default_rng(1).standard_normal((1, 3, SIDE, SIDE), dtype=np.float32)
    got, ref = runner(x), _reference(x, weight, bias)
    assert got.shape == (1, CLASSES)
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
    assert runner.info["threads"] == 2 and runner.info["input_layout"] == "NHWC"
    assert runner.runtime == "litert" and runner.batch == 1


def test_bench_times_a_tflite_at_the_shape_it_takes(tflite, tmp_path):
    from leannet.bench.sweep import bench

    path = tflite[0]
    sweep = bench([str(path)], runtimes=["litert"], batches=[1, 8], min_time=0.05, rounds=1, retries=0,
                  out=tmp_path / "bench", progress=False)
    assert len(sweep.rows) == 1, "a batch-1 artefact must not get a batch-8 row"
    row = sweep.rows[0]
    assert "error" not in row and row["median_ms"] > 0 and row["input_shape"] == [1, 3, SIDE, SIDE]
    assert row["runtime_info"]["threads"] == row["threads"] and row["top1_source"].startswith("not measured")
    assert any("N=8 asked, skipped" in n for n in sweep.notes)


def test_infer_classifies_with_a_tflite(tflite, tmp_path, capsys):
    from PIL import Image

    from leannet.cli import main

    path, weight, bias = tflite
    path.with_suffix(".json").write_text(json.dumps({
        "input_size": [3, SIDE, SIDE], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25],
        "interpolation": "bilinear", "crop_pct": 1.0, "classes": ["a", "b", "c", "d"], "weights": "test weights"}))
    image = tmp_path / "photo.png"
    pixels = np.random.default_rng(2).integers(0, 255, (SIDE, SIDE, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(image)
    code = main(["infer", str(path), str(image), "--runtime", "litert", "--topk", "1", "--json"])
    out, err = capsys.readouterr()
    assert code in (0, None), err
    x = ((pixels.astype(np.float32) / 255 - 0.5) / 0.25).transpose(2, 0, 1)[None]
    expected = "abcd"[int(_reference(np.ascontiguousarray(x), weight, bias).argmax())]
    got = json.loads(out)
    assert got["labels"] == [expected] and got["weights"] == "test weights"
