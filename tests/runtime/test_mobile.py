"""LiteRT on a real .tflite: leannet has no PyTorch converter for it (litert-torch does not
install beside its pins), so the test writes one with LiteRT's own flatbuffer schema, as
TensorFlow's converter lays it out (NHWC input, OHWI filters): a 3x3 convolution with ReLU and
a spatial mean, a 4-class "classifier" on 8x8 RGB. The reference is torch's conv2d on the same
weights, an independent implementation."""

import importlib.util
import json

import numpy as np
import pytest
import torch

from leannet.runtime.runners import open_runner

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None,
                                reason="ai-edge-litert not installed (pip install 'leannet[mobile]')")
SIDE, CLASSES = 8, 4


def _write_tflite(path, weight: np.ndarray, bias: np.ndarray) -> None:
    """conv (weight OIHW, SAME padding, stride 1) + ReLU -> mean over H, W, as a TFLite model."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    def buffer(a=None):
        b = s.BufferT()
        b.data = None if a is None else np.frombuffer(np.ascontiguousarray(a).tobytes(), np.uint8)
        return b

    def tensor(name, shape, buf, kind=s.TensorType.FLOAT32):
        t = s.TensorT()
        t.name, t.shape, t.buffer, t.type = name.encode(), list(shape), buf, kind
        return t

    def opcode(code):
        c = s.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = code, code, 1
        return c

    ohwi = weight.transpose(0, 2, 3, 1).astype(np.float32)
    model = s.ModelT()
    model.version, model.description = 3, b"leannet test"
    model.buffers = [buffer(), buffer(), buffer(ohwi), buffer(bias.astype(np.float32)), buffer(),
                     buffer(np.array([1, 2], np.int32)), buffer()]
    model.operatorCodes = [opcode(s.BuiltinOperator.CONV_2D), opcode(s.BuiltinOperator.MEAN)]
    g = s.SubGraphT()
    g.tensors = [tensor("input", (1, SIDE, SIDE, 3), 1), tensor("filter", ohwi.shape, 2),
                 tensor("bias", bias.shape, 3), tensor("conv", (1, SIDE, SIDE, CLASSES), 4),
                 tensor("axes", (2,), 5, s.TensorType.INT32), tensor("logits", (1, CLASSES), 6)]
    conv = s.OperatorT()
    conv.opcodeIndex, conv.inputs, conv.outputs = 0, [0, 1, 2], [3]
    conv.builtinOptionsType = s.BuiltinOptions.Conv2DOptions
    conv.builtinOptions = s.Conv2DOptionsT()
    conv.builtinOptions.padding, conv.builtinOptions.strideH, conv.builtinOptions.strideW = s.Padding.SAME, 1, 1
    conv.builtinOptions.fusedActivationFunction = s.ActivationFunctionType.RELU
    mean = s.OperatorT()
    mean.opcodeIndex, mean.inputs, mean.outputs = 1, [3, 4], [5]
    mean.builtinOptionsType, mean.builtinOptions = s.BuiltinOptions.ReducerOptions, s.ReducerOptionsT()
    g.operators, g.inputs, g.outputs, g.name = [conv, mean], [0], [5], b"main"
    model.subgraphs = [g]
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    path.write_bytes(bytes(b.Output()))


@pytest.fixture()
def tflite(tmp_path):
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((CLASSES, 3, 3, 3), dtype=np.float32)
    bias = rng.standard_normal(CLASSES, dtype=np.float32)
    path = tmp_path / "tiny.tflite"
    _write_tflite(path, weight, bias)
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
