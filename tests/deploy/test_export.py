"""Export + parity: every family in ONNX and OpenVINO fp32, checked against the original
(un-folded) PyTorch model by running the artefact directly in its runtime."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import leannet
from leannet.deploy import export
from leannet.deploy.artefact import onnxruntime_runner, openvino_runner
from leannet.deploy.onnx import export_onnx
from leannet.deploy.verify import verify
from leannet.errors import ConfigError, ExportError
from leannet.layers.fusion import fuse_bn, pad_kernel
from leannet.registry import _MODELS, list_models
from leannet.weights import save_weights
from tests.helpers import calibrate_bn

IMG = 64


def _macs(name: str) -> float:
    macs = _MODELS[name].published.macs_m
    return math.inf if macs is None else macs


def _one_per_family() -> list:
    # Every family's smallest model (published MACs), at 64 px. ONNX runs for every family in
    # the default tier, so a family whose export broke fails there; OpenVINO (about twice the
    # time per model) runs for PP-LCNet by default and for the other families with -m slow.
    smallest: dict[str, str] = {}
    for name in sorted(list_models(), key=_macs):
        smallest.setdefault(_MODELS[name].family, name)
    return [pytest.param(n, fmt, id=f"{n}-{fmt}",
                         marks=pytest.mark.slow if fmt == "openvino" and family != "pplcnet" else ())
            for family, n in sorted(smallest.items()) for fmt in ("onnx", "openvino")]


def _trained_like(name: str, tmp_path, num_classes: int = 10):
    """A model with realistic BN statistics (fresh ones make eval outputs degenerate), saved."""
    model = calibrate_bn(leannet.create_model(name, num_classes=num_classes), (3, IMG, IMG))
    path = save_weights(model, tmp_path / f"{name}.safetensors", meta={"arch": name, "num_classes": num_classes})
    return model, path


@pytest.mark.parametrize(("name", "fmt"), _one_per_family())
def test_fp32_export_matches_pytorch(name, fmt, tmp_path):
    model, weights = _trained_like(name, tmp_path)
    result = export(weights, format=fmt, img=IMG, out=tmp_path / f"m.{'onnx' if fmt == 'onnx' else 'xml'}")
    # Independent of export's own check: the original model (train-time form, BN unfolded)
    # against the artefact run directly, on fresh inputs.
    x = torch.randn(1, 3, IMG, IMG)
    with torch.no_grad():
        ref = model(x).numpy()
    runner = onnxruntime_runner(result.path) if fmt == "onnx" else openvino_runner(result.path, precision="fp32")
    got = runner(x.numpy())
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
    side = json.loads(result.sidecar.read_text())
    assert side["input_size"] == [3, IMG, IMG] and side["precision"] == "fp32" and side["batch"] == 1
    assert side["source_model"] == name and len(side["classes"]) == 10
    check = side["verification"][0]  # export's own gate: 1e-4 of the logits' scale (at least 1)
    assert check["max_abs_diff"] <= 1e-4 * max(1.0, check["ref_max_abs"])


def test_onnx_graph_is_deployed_form_with_native_hardswish(tmp_path):
    _model, weights = _trained_like("pplcnet_x0_25", tmp_path)
    path = export(weights, img=IMG, out=tmp_path / "m.onnx").path
    proto = onnx.load(path)
    ops = [n.op_type for n in proto.graph.node]
    assert "HardSwish" in ops and "HardSigmoid" in ops  # native ops, not Mul/Clip decompositions
    assert "BatchNormalization" not in ops and "Clip" not in ops
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 14
    assert json.loads(onnx.load(path).metadata_props[0].value)["arch"] == "pplcnet_x0_25"


class RepBlock(nn.Module):
    """A RepVGG-style train-time block (3x3 conv-BN + 1x1 conv-BN + BN identity) with a
    `reparameterize()` that merges the three branches: a stand-in until MobileOne lands."""

    def __init__(self, c: int):
        super().__init__()
        self.k3 = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        self.k1 = nn.Sequential(nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c))
        self.skip = nn.BatchNorm2d(c)
        self.fused: nn.Conv2d | None = None

    def forward(self, x):
        if self.fused is not None:
            return torch.relu(self.fused(x))
        return torch.relu(self.k3(x) + self.k1(x) + self.skip(x))

    @torch.no_grad()
    def reparameterize(self):
        c = self.skip.num_features
        w3, b3 = fuse_bn(self.k3[0].weight, self.k3[1])
        w1, b1 = fuse_bn(pad_kernel(self.k1[0].weight, 3), self.k1[1])
        eye = torch.zeros(c, c, 3, 3)
        eye[range(c), range(c), 1, 1] = 1
        wi, bi = fuse_bn(eye, self.skip)
        self.fused = nn.Conv2d(c, c, 3, padding=1)
        self.fused.weight.copy_(w3 + w1 + wi)
        self.fused.bias.copy_(b3 + b1 + bi)
        del self.k3, self.k1, self.skip


def test_multibranch_model_exports_single_branch(tmp_path):
    model = calibrate_bn(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), RepBlock(8), RepBlock(8)), (3, 16, 16))
    deployed = leannet.reparameterize(model)
    path = export_onnx(deployed, tmp_path / "rep.onnx", (3, 16, 16))
    ops = [n.op_type for n in onnx.load(path).graph.node]
    assert ops.count("Conv") == 3 and "Add" not in ops and "BatchNormalization" not in ops
    x = torch.randn(2, 3, 16, 16)
    v = verify(onnxruntime_runner(path), model, x.numpy())  # against the multi-branch original
    assert v.max_abs_diff <= 1e-4


def test_mobileone_export_has_no_multibranch_blocks(tmp_path):
    _, weights = _trained_like("mobileone_s0", tmp_path)
    path = export(weights, img=IMG, out=tmp_path / "m.onnx").path
    ops = [n.op_type for n in onnx.load(path).graph.node]
    assert "BatchNormalization" not in ops
    assert "Add" not in ops  # MobileOne's deployed form has no residual adds


def test_dynamic_batch_runs_other_batch_sizes(tmp_path):
    model, weights = _trained_like("pplcnet_x0_25", tmp_path)
    path = export(weights, img=IMG, dynamic_batch=True, out=tmp_path / "m.onnx").path
    runner = onnxruntime_runner(path)
    assert runner.batch is None
    x = torch.randn(3, 3, IMG, IMG)
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.abs(runner(x.numpy()) - ref).max() <= 1e-4


def test_bf16_is_recorded_and_compared(tmp_path):
    _, weights = _trained_like("pplcnet_x0_25", tmp_path)
    result = export(weights, format="openvino", precision="bf16", img=IMG, out=tmp_path / "m.xml")
    side = json.loads(result.sidecar.read_text())
    assert side["precision"] == "bf16"
    fp32, bf16 = side["verification"]
    assert fp32["precision"] == "fp32" and fp32["max_abs_diff"] <= 1e-4
    assert bf16["precision"] == "bf16"
    import openvino as ov

    if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        assert bf16["max_abs_diff"] > fp32["max_abs_diff"]  # really computed in bf16, not fp32


def test_failed_verification_leaves_nothing(tmp_path, monkeypatch):
    _, weights = _trained_like("pplcnet_x0_25", tmp_path)

    def broken(runner, model, inputs):
        raise ExportError("exported model does not match PyTorch")

    # `leannet.deploy.export` the attribute is the function; patch the module it comes from.
    monkeypatch.setattr(sys.modules["leannet.deploy.export"], "verify", broken)
    out = tmp_path / "out" / "m.onnx"
    with pytest.raises(ExportError):
        export(weights, img=IMG, out=out)
    assert list(out.parent.iterdir()) == []


def test_verify_rejects_a_wrong_fp32_artefact():
    model = nn.Linear(4, 3).eval()

    class Off:
        runtime, precision, batch = "fake", "fp32", None

        def __call__(self, x):
            with torch.no_grad():
                return model(torch.from_numpy(x)).numpy() + 1e-3

    with pytest.raises(ExportError, match="does not match"):
        verify(Off(), model, np.random.randn(4, 4).astype(np.float32))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"format": "onnx", "precision": "bf16"}, "OpenVINO"),
    ({"int8": True}, "--calib"),
    ({"format": "tflite"}, "unknown format"),
])
def test_bad_options(kwargs, match, tmp_path):
    with pytest.raises(ConfigError, match=match):
        export("pplcnet_x0_25", out=tmp_path / "m.onnx", **kwargs)


def test_export_does_not_overwrite_other_jsons(tmp_path):
    _, weights = _trained_like("pplcnet_x0_25", tmp_path)
    # `leannet convert` writes a checkpoint's metadata as <stem>.json, the name the sidecar takes
    meta = tmp_path / "pplcnet_x0_25.json"
    meta.write_text('{"arch": "pplcnet_x0_25"}')
    with pytest.raises(ConfigError, match=r"pplcnet_x0_25\.json exists and is not a classifier export's"):
        export(weights, img=IMG, out=tmp_path / "pplcnet_x0_25.onnx")
    assert meta.read_text() == '{"arch": "pplcnet_x0_25"}' and not (tmp_path / "pplcnet_x0_25.onnx").exists()

    # m.onnx and m.xml would share m.json: the second export would describe the wrong file
    export(weights, img=IMG, out=tmp_path / "m.onnx")
    before = (tmp_path / "m.json").read_text()
    with pytest.raises(ConfigError, match=r"m\.json is the sidecar of m\.onnx"):
        export(weights, img=IMG, format="openvino", out=tmp_path / "m.xml")
    assert (tmp_path / "m.json").read_text() == before and not (tmp_path / "m.xml").exists()
    export(weights, img=IMG, out=tmp_path / "m.onnx")  # re-exporting the same artefact is fine


def test_default_names_step_around_a_sibling_sidecar(tmp_path, monkeypatch):
    """With no --out, exporting ONNX then OpenVINO gives pplcnet_x0_25.onnx and
    pplcnet_x0_25-xml.xml, each with its own sidecar, instead of an error."""
    _, weights = _trained_like("pplcnet_x0_25", tmp_path)
    monkeypatch.chdir(tmp_path)
    onnx = export(weights, img=IMG)
    xml = export(weights, img=IMG, format="openvino")
    assert (onnx.path.name, xml.path.name) == ("pplcnet_x0_25.onnx", "pplcnet_x0_25-xml.xml")
    assert json.loads(Path("pplcnet_x0_25.json").read_text())["artefact"] == "pplcnet_x0_25.onnx"
    assert json.loads(Path("pplcnet_x0_25-xml.json").read_text())["artefact"] == "pplcnet_x0_25-xml.xml"
    assert export(weights, img=IMG).path.name == "pplcnet_x0_25.onnx"  # its own sidecar: replaced in place
