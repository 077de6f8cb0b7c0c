"""INT8 and bf16 exports of a model trained on digits, measured on the real digits validation images."""

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from leannet.deploy import export


def test_onnx_int8_agrees_with_fp32_on_real_images(digits_checkpoint, digits_root, tmp_path):
    ckpt, torch_top1 = digits_checkpoint
    assert torch_top1 >= 90.0  # the fixture really learned digits, so agreement means something
    result = export(ckpt, format="onnx", int8=True, calib=digits_root / "train",
                    eval_set=digits_root / "val", out=tmp_path / "m.onnx")
    side = json.loads(result.sidecar.read_text())
    assert side["precision"] == "int8" and side["calibration"]["images"] == 300
    int8 = side["verification"][-1]
    assert int8["precision"] == "int8" and int8["n"] == 360  # every val image
    assert int8["top1_agreement"] >= 0.95
    top1 = side["top1"]
    assert abs(top1["pytorch"] - torch_top1) < 1e-3  # sidecar's figure is the model's own
    assert top1["onnx fp32"] == top1["pytorch"]
    assert top1["onnx int8"] >= top1["onnx fp32"] - 3.0
    ms = side["latency_ms"]  # measured, so users see when INT8 does not pay on their machine
    assert set(ms) == {"fp32", "int8"} and all(v > 0 for v in ms.values())
    assert "median latency on this machine" in result.summary()

    proto = onnx.load(result.path)
    ops = [n.op_type for n in proto.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    # Per-channel weights: some weight DequantizeLinear carries one scale per output channel.
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    scales = [inits[n.input[1]] for n in proto.graph.node
              if n.op_type == "DequantizeLinear" and n.input[1] in inits]
    assert any(s.ndim == 1 and s.size > 1 for s in scales)


@pytest.mark.slow
def test_openvino_int8_agrees_with_fp32_on_real_images(digits_checkpoint, digits_root, tmp_path):
    ckpt, _ = digits_checkpoint
    result = export(ckpt, format="openvino", int8=True, calib=digits_root / "train",
                    eval_set=digits_root / "val", out=tmp_path / "m.xml")
    side = json.loads(result.sidecar.read_text())
    assert side["verification"][-1]["top1_agreement"] >= 0.95
    assert side["top1"]["openvino int8"] >= side["top1"]["openvino fp32"] - 3.0
    xml = result.path.read_text()
    assert "FakeQuantize" in xml or "FakeConvert" in xml or 'element_type="i8"' in xml
    assert np.isfinite(side["verification"][-1]["max_abs_diff"])


def test_openvino_bf16_top1_is_measured_on_real_images(digits_checkpoint, digits_root, tmp_path):
    ckpt, _ = digits_checkpoint
    result = export(ckpt, format="openvino", precision="bf16", eval_set=digits_root / "val",
                    out=tmp_path / "m.xml")
    top1 = json.loads(result.sidecar.read_text())["top1"]
    assert set(top1) == {"pytorch", "openvino fp32", "openvino bf16"}
    assert top1["openvino bf16"] >= top1["openvino fp32"] - 3.0
