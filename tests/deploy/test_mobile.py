"""Mobile engines: ExecuTorch and ncnn export + parity, their runners, bad files, and crash
isolation (an engine that dies by a signal costs one error, not the caller). Tests that need
an engine skip with the reason when its package is missing."""

import importlib.util
import json

import numpy as np
import pytest
import torch

import leannet
from leannet.deploy import export
from leannet.errors import LeannetError
from leannet.layers.shuffle import UnshuffledStage, interleave_plan
from leannet.runtime import mobile
from leannet.runtime.runners import open_runner, run_all
from leannet.weights import save_weights
from tests.helpers import calibrate_bn, needs

IMG = 64


def _trained_like(name, tmp_path):
    torch.manual_seed(0)
    model = calibrate_bn(leannet.create_model(name, num_classes=10), (3, IMG, IMG))
    return model, save_weights(model, tmp_path / f"{name}.safetensors", meta={"arch": name, "num_classes": 10})


def _check_parity(model, path, runtime):
    x = torch.randn(2, 3, IMG, IMG)
    with torch.no_grad():
        ref = model.eval()(x).numpy()
    got = run_all(open_runner(path, runtime), x.numpy())
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


@needs("executorch")
def test_executorch_export_matches_pytorch(tmp_path):
    model, weights = _trained_like("pplcnet_x0_25", tmp_path)
    result = export(weights, format="executorch", img=IMG, out=tmp_path / "m.pte")
    rec = json.loads(result.sidecar.read_text())
    assert rec["format"] == "executorch" and rec["backend"] == "xnnpack" and rec["bn_folded"]
    assert rec["verification"][0]["max_abs_diff"] <= 1e-4 * max(1.0, rec["verification"][0]["ref_max_abs"])
    _check_parity(model, result.path, "executorch")
    runner = open_runner(result.path)
    assert runner.runtime == "executorch" and runner.info["threads"] >= 1 and runner.batch == 1
    # the XNNPACK threadpool is process-wide: another count after a load is refused, not a crash
    with pytest.raises(LeannetError, match="process-wide"):
        open_runner(result.path, threads=runner.info["threads"] + 1)


@needs("ncnn", "pnnx")
@pytest.mark.parametrize("name", ["pplcnet_x0_25", "snet49"])  # snet49 crashed ncnn before
def test_ncnn_export_matches_pytorch(name, tmp_path, monkeypatch):
    model, weights = _trained_like(name, tmp_path)
    monkeypatch.chdir(tmp_path)  # a relative --out: pnnx runs in the artefact's folder, the paths must hold there
    result = export(weights, format="ncnn", img=IMG, out="m.param")
    assert result.path.with_suffix(".bin").is_file()
    assert json.loads(result.sidecar.read_text())["versions"]["ncnn"]
    _check_parity(model, result.path, "ncnn")
    assert open_runner(result.path, threads=2).info["threads"] == 2


def test_shuffle_stage_reorder_as_native_ops():
    """torchvision's unit: the pass-through reorder written as slices + 2-group shuffles gives
    the same tensor as the gather; SNet's reorder is the identity (no op at all)."""
    assert interleave_plan([0, 1, 2]) == []
    assert interleave_plan([0, 3, 1, 4, 2]) == [2]
    assert interleave_plan([2, 0, 1]) is None
    torch.manual_seed(0)
    model = leannet.deploy.reparameterize(leannet.create_model("shufflenetv2_x0_5", num_classes=10)).eval()
    stages = [m for m in model.modules() if isinstance(m, UnshuffledStage)]
    assert stages and all(s.interleaves is not None for s in stages if s.reorder)
    x = torch.randn(1, 3, IMG, IMG)
    with torch.no_grad():
        ref = model(x)
        for s in stages:
            s.gather_as_shuffles = True
        assert torch.equal(model(x), ref)
    snet = leannet.deploy.reparameterize(leannet.create_model("snet49", num_classes=10))
    assert not any(s.reorder for s in snet.modules() if isinstance(s, UnshuffledStage))


@pytest.mark.parametrize("suffix", [".pte", ".param", ".tflite"])
def test_bad_mobile_file_is_one_line_error(suffix, tmp_path):
    engine = mobile.MOBILE_SUFFIXES[suffix]
    module = {"executorch": "executorch", "ncnn": "ncnn", "litert": "ai_edge_litert"}[engine]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not installed")
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(b"not a model at all")
    bad.with_suffix(".bin").write_bytes(b"\0" * 8)
    with pytest.raises(LeannetError) as err:
        open_runner(bad)
    assert "\n" not in str(err.value) and bad.name in str(err.value)


@pytest.mark.parametrize(("target", "args", "signal_name"),
                         [("ctypes:string_at", [0], "SIGSEGV"), ("os:abort", [], "SIGABRT")])
def test_crash_in_child_is_an_error_naming_the_signal(target, args, signal_name):
    with pytest.raises(LeannetError, match=signal_name) as err:
        mobile.run_isolated(target, args, what="engine on m.param")
    assert "\n" not in str(err.value)


@needs("ncnn", "pnnx")
def test_crashing_engine_costs_one_error_row(tmp_path, monkeypatch):
    """A sweep over an artefact whose engine segfaults: the cell is an error row naming the
    signal, the other cells are measured, the process lives on."""
    from leannet.bench.sweep import bench

    crash = tmp_path / "crashmod.py"
    crash.write_text("import ctypes\n\ndef smoke(*args):\n    ctypes.string_at(0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{__import__('os').environ.get('PYTHONPATH', '')}")
    monkeypatch.setattr(mobile, "SMOKE_TARGET", "crashmod:smoke")
    param = tmp_path / "m.param"
    param.write_text("7767517\n1 1\nInput in0 0 1 in0\n")
    param.with_suffix(".bin").write_bytes(b"")
    param.with_suffix(".json").write_text(json.dumps({"input_size": [3, 32, 32], "mean": [0, 0, 0], "std": [1, 1, 1],
                                                      "classes": ["a"], "precision": "fp32"}))
    sweep = bench([str(param), "pplcnet_x0_25"], runtimes=["eager", "ncnn"], img=32, min_time=0.05, rounds=1,
                  retries=0, out=tmp_path / "bench", progress=False)
    ncnn_rows = [r for r in sweep.rows if r["runtime"] == "ncnn"]
    assert len(ncnn_rows) == 2 and all("SIGSEGV" in r["error"] for r in ncnn_rows)
    assert any(r["runtime"] == "eager" and "error" not in r for r in sweep.rows)
