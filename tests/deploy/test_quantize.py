"""INT8 and bf16 exports of a model trained on digits, measured on the real digits validation images."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from leannet.deploy import export
from leannet.deploy.quantize import requantize_hardsigmoid


def _gate_model(alpha: float | None = 1 / 6, beta: float | None = 0.5, gate_zp=np.uint8,
                two_readers: bool = False, dq_scale: str = "hs") -> onnx.ModelProto:
    """x -> Q/DQ (uint8, step 10/255, zp 128) -> HardSigmoid -> Q/DQ (calibrated step 0.6/255).
    The options build the look-alikes the rewrite must leave alone (None: attribute left out)."""
    from onnx import TensorProto, helper

    init = [numpy_helper.from_array(np.array(v, dt), n) for n, v, dt in [
        ("xs", 10 / 255, np.float32), ("xz", 128, np.uint8), ("hs", 0.6 / 255, np.float32), ("hz", 0, gate_zp),
        ("other", 0.5 / 255, np.float32)]]
    attrs = {k: v for k, v in (("alpha", alpha), ("beta", beta)) if v is not None}
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("HardSigmoid", ["xd"], ["h"], **attrs),
        helper.make_node("QuantizeLinear", ["h", "hs", "hz"], ["hq"]),
        helper.make_node("DequantizeLinear", ["hq", dq_scale, "hz"], ["y"]),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [256])]
    if two_readers:  # the gate's fp32 output is also read elsewhere
        nodes.append(helper.make_node("Relu", ["h"], ["h2"]))
        outputs.append(helper.make_tensor_value_info("h2", TensorProto.FLOAT, [256]))
    graph = helper.make_graph(nodes, "gate", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [256])],
                              outputs, init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.parametrize("beta", [0.5, None])  # None: left out, ONNX's default 0.5 (hard-swish's)
def test_hardsigmoid_gate_requantized_exactly(beta):
    x = ((np.arange(256) - 128) * 10 / 255).astype(np.float32)  # every uint8 code of the input
    exact = np.clip(x / 6 + 0.5, 0, 1)
    model = _gate_model(beta=beta)
    before = _run(model, x)
    assert requantize_hardsigmoid(model) == 1
    onnx.checker.check_model(model)
    assert "HardSigmoid" not in [n.op_type for n in model.graph.node]
    inits = {t.name for t in model.graph.initializer}
    assert {"hs", "hz"}.isdisjoint(inits)  # the calibrated step is gone
    assert "other" in inits  # an initializer the rewrite did not orphan stays, read or not
    after = _run(model, x)
    # Half a step of the new 1/255 grid over the whole [0, 1] range, saturation included; the
    # calibrated grid clipped everything above 0.6.
    assert np.abs(after - exact).max() <= 0.5 / 255 + 1e-6
    assert after.max() == 1.0 and after.min() == 0.0
    assert before.max() <= 0.6 + 1e-6


@pytest.mark.parametrize("kwargs", [
    {"alpha": 0.2},  # ONNX's default slope is not hard-swish's gate
    {"alpha": None},  # nor is the default when the attribute is left out
    {"beta": 0.6}, {"beta": None, "alpha": 0.2},
    {"gate_zp": np.int8},  # an int8 gate: the uint8 saturation argument does not hold
    {"two_readers": True},  # its fp32 value is needed elsewhere
    {"dq_scale": "other"},  # a reader dequantises with another step
])
def test_other_hardsigmoids_are_left_alone(kwargs):
    model = _gate_model(**kwargs)
    assert requantize_hardsigmoid(model) == 0
    assert "HardSigmoid" in [n.op_type for n in model.graph.node]


def test_onnx_int8_agrees_with_fp32_on_real_images(digits_checkpoint, digits_root, tmp_path):
    ckpt, torch_top1 = digits_checkpoint
    # the fixture really learned digits (chance is 10%), so agreement means something; it lands on
    # 90.0% exactly on an AMX Xeon, where a 90 threshold failed by float rounding
    assert torch_top1 >= 85.0
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
    assert "HardSigmoid" not in ops  # every hard-swish gate runs as a uint8 Add
    # Per-channel weights: some weight DequantizeLinear carries one scale per output channel.
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    scales = [inits[n.input[1]] for n in proto.graph.node
              if n.op_type == "DequantizeLinear" and n.input[1] in inits]
    assert any(s.ndim == 1 and s.size > 1 for s in scales)


def _subset(root, dst, per_class):
    """The first `per_class` images of each class folder of `root`, copied under `dst`."""
    import shutil

    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        (dst / d.name).mkdir(parents=True)
        for f in sorted(d.iterdir())[:per_class]:
            shutil.copy(f, dst / d.name / f.name)
    return dst


def test_openvino_int8_small_calibration_agrees_with_fp32(digits_checkpoint, digits_root, tmp_path):
    # The default tier's OpenVINO INT8 check: the same 32 px digits model, calibrated on 100
    # images and compared on 100, so it runs in seconds (the full sets run with -m slow).
    # On a CPU without VNNI it fails (68% agreement) unless NNCF's overflow fix covers every
    # layer (deploy.quantize.has_vnni).
    ckpt, _ = digits_checkpoint
    calib = _subset(digits_root / "train", tmp_path / "calib", 10)
    val = _subset(digits_root / "val", tmp_path / "val", 10)
    result = export(ckpt, format="openvino", int8=True, calib=calib, eval_set=val, out=tmp_path / "m.xml")
    side = json.loads(result.sidecar.read_text())
    assert side["precision"] == "int8" and side["calibration"]["images"] == 100
    check = side["verification"][-1]
    assert check["precision"] == "int8" and check["n"] == 100
    assert check["top1_agreement"] >= 0.9
    assert side["top1"]["openvino fp32"] >= 85.0  # a model that really learned: agreement means something
    assert side["top1"]["openvino int8"] >= side["top1"]["openvino fp32"] - 5.0
    xml = result.path.read_text()
    assert "FakeQuantize" in xml or "FakeConvert" in xml or 'element_type="i8"' in xml


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


def test_a_second_gate_is_rewritten_and_counted():
    """Two gates read the same input, each with its own Q/DQ pair: both are rewritten."""
    import onnxruntime as ort
    from onnx import helper

    model = _gate_model()
    g = model.graph
    g.node.extend([helper.make_node("HardSigmoid", ["xd"], ["h2"], alpha=1 / 6, beta=0.5),
                   helper.make_node("QuantizeLinear", ["h2", "hs", "hz"], ["hq2"]),
                   helper.make_node("DequantizeLinear", ["hq2", "hs", "hz"], ["y2"])])
    g.output.append(helper.make_tensor_value_info("y2", onnx.TensorProto.FLOAT, [256]))
    x = ((np.arange(256) - 128) * 10 / 255).astype(np.float32)
    assert requantize_hardsigmoid(model) == 2
    onnx.checker.check_model(model)
    assert "HardSigmoid" not in [n.op_type for n in g.node]
    y, y2 = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_array_equal(y, y2)
    assert np.abs(y - np.clip(x / 6 + 0.5, 0, 1)).max() <= 0.5 / 255 + 1e-6


def test_hardsigmoids_outside_a_quantised_chain_are_left_alone():
    """The rewrite needs DQ -> HardSigmoid -> Q(with a zero point) -> DQ; a gate read straight
    from a graph input, one whose output nobody reads, or a Q relying on the default zero
    point, is left as it is (and is no error)."""

    def edit(change) -> onnx.ModelProto:
        model = _gate_model()
        change(model.graph)
        return model

    def from_input(g):  # HardSigmoid reads the graph input itself
        next(n for n in g.node if n.op_type == "HardSigmoid").input[0] = "x"

    def unread(g):  # the gate's output is a graph output, with no Q after it
        nodes = [n for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")][:2]
        nodes.append(next(n for n in g.node if n.op_type == "HardSigmoid"))
        del g.node[:]
        g.node.extend(nodes)
        g.output[0].name = "h"

    def no_zero_point(g):  # Q and DQ of the gate with the zero point left out (ONNX: uint8 0)
        for n in list(g.node)[3:]:
            del n.input[2]

    for change in (from_input, unread, no_zero_point):
        model = edit(change)
        onnx.checker.check_model(model)
        before = model.SerializeToString()
        assert requantize_hardsigmoid(model) == 0, change.__name__
        assert model.SerializeToString() == before, change.__name__


def test_fp32_stem_of_graphs_without_a_conv_or_readers_of_its_output():
    from onnx import TensorProto, helper

    from leannet.deploy.quantize import fp32_stem

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])
    no_conv = helper.make_graph([helper.make_node("Relu", ["input"], ["y"])], "g", [x],
                                [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    assert fp32_stem(helper.make_model(no_conv)) is None
    only_conv = helper.make_graph([helper.make_node("Conv", ["input", "w0"], ["y"], name="stem")], "g", [x],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                                  [numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w0")])
    assert fp32_stem(helper.make_model(only_conv)) == "stem"  # its output is read by nothing


def _stem_model(pool: bool, act: str = "Relu", late_pool: bool = False) -> onnx.ModelProto:
    """input -> Conv -> act [-> MaxPool] -> Conv [-> MaxPool]: the stem shapes fp32_stem decides on."""
    from onnx import TensorProto, helper

    init = [numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w0"),
            numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w1")]
    nodes = [helper.make_node("Conv", ["input", "w0"], ["c0"], name="stem"),
             helper.make_node(act, ["c0"], ["r0"], name="act")]
    if pool:
        nodes.append(helper.make_node("MaxPool", ["r0"], ["p0"], kernel_shape=[2, 2], strides=[2, 2], name="pool"))
    nodes.append(helper.make_node("Conv", ["p0" if pool else "r0", "w1"], ["y"], name="next"))
    if late_pool:  # a pool that reads the second conv, not the stem
        nodes[-1].output[0] = "c1"
        nodes.append(helper.make_node("MaxPool", ["c1"], ["y"], kernel_shape=[2, 2], strides=[2, 2], name="pool2"))
    graph = helper.make_graph(nodes, "stem", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_stem_stays_fp32_unless_a_maxpool_reads_it():
    from leannet.deploy.quantize import fp32_stem

    for act in ("Relu", "Clip", "LeakyRelu", "HardSwish"):  # the stem activations of the zoo
        assert fp32_stem(_stem_model(pool=False, act=act)) == "stem", act
        # ORT would run that pool as a uint8 NCHW MaxPool (14x its NHWC kernel): quantise the stem.
        assert fp32_stem(_stem_model(pool=True, act=act)) is None, act
    assert fp32_stem(_stem_model(pool=False, late_pool=True)) == "stem"  # only what reads the stem counts


def test_onnx_int8_of_a_maxpool_stem_runs_the_pool_in_nhwc(tmp_path):
    """ResNet/ShuffleNetV2/SNet stems: after ORT's own graph optimisation the INT8 model has
    no NCHW MaxPool left (the slow uint8 kernel), and it still agrees with fp32."""
    import onnxruntime as ort
    import torch

    import leannet
    from leannet.deploy.onnx import export_onnx
    from leannet.deploy.quantize import quantize_onnx

    torch.manual_seed(0)
    model = leannet.reparameterize(leannet.create_model("shufflenetv2_x0_5", num_classes=10))
    fp32 = export_onnx(model, tmp_path / "m.onnx", input_size=(3, 64, 64))
    calib = np.random.default_rng(0).standard_normal((8, 3, 64, 64), dtype=np.float32)
    q = quantize_onnx(fp32, tmp_path / "q.onnx", calib)
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "q.opt.onnx")
    sess = ort.InferenceSession(str(q), opts, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(tmp_path / "q.opt.onnx").graph.node]
    assert "NhwcMaxPool" in ops and "MaxPool" not in ops
    fp32_sess = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    ref = np.concatenate([fp32_sess.run(None, {"input": x[None]})[0] for x in calib])
    out = np.concatenate([sess.run(None, {"input": x[None]})[0] for x in calib])
    assert np.corrcoef(out.ravel(), ref.ravel())[0, 1] > 0.9



def test_onnx_int8_keeps_the_stem_conv_in_fp32(tmp_path):
    """PP-LCNet's stem (conv -> hard-swish, no MaxPool) stays fp32: its input and weight come
    straight from the image and an fp32 initializer, while the next convs read Q/DQ pairs."""
    import torch

    import leannet
    from leannet.deploy.onnx import export_onnx
    from leannet.deploy.quantize import quantize_onnx

    torch.manual_seed(0)
    model = leannet.reparameterize(leannet.create_model("pplcnet_x0_25", num_classes=10))
    fp32 = export_onnx(model, tmp_path / "m.onnx", input_size=(3, 32, 32))
    calib = np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32)
    proto = onnx.load(quantize_onnx(fp32, tmp_path / "q.onnx", calib))
    producer = {o: n.op_type for n in proto.graph.node for o in n.output}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    stem = convs[0]
    assert stem.input[0] == "input" and stem.input[1] not in producer  # image and weight in fp32
    assert all(producer.get(i) == "DequantizeLinear" for i in convs[1].input[:2])  # the rest is INT8
    ops = [n.op_type for n in proto.graph.node]
    assert "HardSigmoid" not in ops and "Add" in ops  # the hard-swish gates were rewritten, and saved
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    w_dq = next(n for n in proto.graph.node if n.output[0] == convs[1].input[1])
    w_q, w_scale = inits[w_dq.input[0]], inits[w_dq.input[1]]
    assert w_q.dtype == np.int8 and w_scale.shape == (w_q.shape[0],)  # int8 weights, one scale per channel
    assert not list(tmp_path.glob(".quant-*"))  # the scratch folder beside the output is gone



def _three_convs():
    """Three convs with biases and a linear head, seeded: a net that quantises in a second."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(16, 10))


def test_onnx_int8_of_a_fixed_batch_model_with_its_scratch_folder_beside_the_output(tmp_path, monkeypatch):
    """A model exported with a fixed batch of 2 accepts only [2, ...] inputs: calibration is fed
    in chunks of 2 (5 images, the last chunk padded). The pre-processed copy goes to a hidden
    scratch folder beside the output (not the system temp dir, which may be small), removed
    afterwards; when the output's folder does not exist yet, the system temp dir has it."""
    import tempfile

    import onnxruntime as ort
    from onnxruntime.quantization import shape_inference

    from leannet.deploy.onnx import export_onnx
    from leannet.deploy.quantize import quantize_onnx

    fp32 = export_onnx(_three_convs(), tmp_path / "m.onnx", input_size=(3, 16, 16), batch=2)
    calib = np.random.default_rng(0).standard_normal((5, 3, 16, 16), dtype=np.float32)
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    scratch = []  # where quantize_onnx asked ORT to write the pre-processed model
    real = shape_inference.quant_pre_process
    monkeypatch.setattr(shape_inference, "quant_pre_process",
                        lambda src, dst, **kw: (scratch.append(Path(dst).parent), real(src, dst, **kw))[1])

    q = quantize_onnx(fp32, tmp_path / "out" / "q.onnx", calib, batch=2)  # no "out" folder yet
    assert scratch[-1].parent == system_tmp and scratch[-1].name.startswith(".quant-")
    (tmp_path / "out" / "q.onnx").unlink()
    q = quantize_onnx(fp32, tmp_path / "out" / "q.onnx", calib, batch=2)
    assert scratch[-1].parent == tmp_path / "out" and scratch[-1].name.startswith(".quant-")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["q.onnx"] and not list(system_tmp.iterdir())

    proto = onnx.load(q)
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [2, 3, 16, 16]
    assert "QuantizeLinear" in {n.op_type for n in proto.graph.node}
    out = ort.InferenceSession(str(q), providers=["CPUExecutionProvider"]).run(None, {"input": calib[:2]})[0]
    assert out.shape == (2, 10) and np.isfinite(out).all()


def test_onnx_int8_with_calibration_inputs_of_the_wrong_shape_is_one_clear_error(tmp_path):
    """ORT refuses a calibration batch the model cannot take with its own exception type (not
    a RuntimeError): it comes back as an ExportError naming the model, with ORT's first line."""
    from leannet.deploy.onnx import export_onnx
    from leannet.deploy.quantize import quantize_onnx
    from leannet.errors import ExportError

    fp32 = export_onnx(_three_convs(), tmp_path / "m.onnx", input_size=(3, 16, 16))
    calib = np.zeros((2, 4, 16, 16), np.float32)  # 4 channels for a 3-channel model
    with pytest.raises(ExportError) as e:
        quantize_onnx(fp32, tmp_path / "q.onnx", calib)
    msg = str(e.value)
    assert msg.startswith(f"INT8 quantisation of {fp32} failed: ") and "\n" not in msg
    assert "INVALID_ARGUMENT" in msg and "Got invalid dimensions for input" in msg
    assert not (tmp_path / "q.onnx").exists() and not list(tmp_path.glob(".quant-*"))

# --- OpenVINO INT8 on a tiny model (NNCF) ---------------------------------------------------------

_AVX2_ONLY = "fpu vme sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2"  # AMD Zen 1-3: no 8-bit dot product


@pytest.mark.parametrize(("flags", "expected"), [
    (_AVX2_ONLY, False),
    (_AVX2_ONLY + " avx512f avx512bw avx512_vnni", True),  # Ice Lake, Zen 4/5
    (_AVX2_ONLY + " avx_vnni", True),  # Alder Lake
    (_AVX2_ONLY + " avx512f amx_tile amx_int8", True),  # Sapphire Rapids
    ("fpu sse2 sse4_2 avx", True),  # no AVX2: not oneDNN's saturating AVX2 u8 kernels
    (None, True),  # no "flags" line (an Arm /proc/cpuinfo says "Features")
])
def test_has_vnni_reads_the_cpu_flags(monkeypatch, flags, expected):
    from leannet.deploy import quantize

    text = "processor\t: 0\nvendor_id\t: AuthenticAMD\n" + (f"flags\t\t: {flags}\n" if flags else "Features\t: fp asimd\n")
    if flags:
        text += "processor\t: 1\nflags\t\t: fpu\n"  # only the first CPU's line counts
    read = []

    class _File:
        def __init__(self, path):
            read.append(str(path))

        def read_text(self):
            return text

    monkeypatch.setattr(quantize, "Path", _File)
    assert quantize.has_vnni() is expected
    assert read == ["/proc/cpuinfo"]


def test_has_vnni_without_proc_cpuinfo_keeps_nncfs_default(monkeypatch):
    from leannet.deploy import quantize

    class _Missing:
        def __init__(self, path):
            pass

        def read_text(self):
            raise FileNotFoundError("/proc/cpuinfo")

    monkeypatch.setattr(quantize, "Path", _Missing)
    assert quantize.has_vnni() is True


@pytest.fixture(scope="module")
def tiny_openvino_fp32(tmp_path_factory):
    """PP-LCNet x0.25 at 32 px with calibrated BN as an fp32 IR, and 8 calibration inputs."""
    import torch

    import leannet
    from leannet.deploy.openvino import export_openvino
    from tests.helpers import calibrate_bn

    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    torch.manual_seed(0)
    model = leannet.reparameterize(calibrate_bn(leannet.create_model("pplcnet_x0_25", num_classes=10),
                                                input_size=(3, 32, 32)))
    fp32 = export_openvino(model, tmp_path_factory.mktemp("ov") / "m.xml", input_size=(3, 32, 32))
    return fp32, np.random.default_rng(0).standard_normal((8, 3, 32, 32), dtype=np.float32)


def _weight_codes(path) -> list[tuple[str, str, int]]:
    """(op type, name, max |int8 code|) of the weight of every Convolution, GroupConvolution
    and MatMul of an INT8 IR, found by walking up from the op's weight input to its Constant."""
    import openvino as ov

    out = []
    for op in ov.Core().read_model(str(path)).get_ordered_ops():
        if op.get_type_name() not in ("Convolution", "GroupConvolution", "MatMul"):
            continue
        node = op.input_value(1).get_node()
        while node.get_type_name() != "Constant":  # the decompression: Convert -> Multiply
            node = node.input_value(0).get_node()
        assert node.get_element_type().get_type_name() == "i8", op.get_friendly_name()
        out.append((op.get_type_name(), op.get_friendly_name(), int(np.abs(node.get_data().astype(np.int32)).max())))
    return out


@pytest.mark.parametrize("vnni", [False, True])
def test_openvino_int8_of_a_tiny_model_uses_7_bit_weights_without_vnni(tiny_openvino_fp32, tmp_path, monkeypatch,
                                                                      vnni):
    """Without VNNI, oneDNN's AVX2 u8 x s8 kernels add pairs of products in a saturating int16:
    NNCF's overflow fix keeps every (non-depthwise) conv and matmul weight to 7 bits
    (|code| <= 64). With VNNI only the first layer is, and the rest use all 8 bits. The INT8
    IR must still be a working model of the same interface."""
    import openvino as ov

    from leannet.deploy import quantize

    fp32, calib = tiny_openvino_fp32
    monkeypatch.setattr(quantize, "has_vnni", lambda: vnni)
    q = quantize.quantize_openvino(fp32, tmp_path / "q.xml", calib)
    assert q == tmp_path / "q.xml" and q.with_suffix(".bin").is_file()
    codes = _weight_codes(q)
    dense = [c for c in codes if c[0] != "GroupConvolution"]
    assert len(dense) > 10 and dense[0][1].startswith("__module.stem")  # the walk found the real weights
    assert dense[0][2] <= 64  # the first layer: 7 bits in both cases
    if vnni:
        assert all(c[2] == 127 for c in dense[1:]), dense
    else:
        assert all(c[2] <= 64 for c in dense), dense
    assert all(c[2] == 127 for c in codes if c[0] == "GroupConvolution")  # depthwise: 8 bits either way

    # It compiles and runs as an IR of the same interface. (Agreement with fp32 is judged on the
    # trained digits model above: this untrained net is no fair INT8 subject, its logits moved
    # by 0.8-0.9 of their norm with either overflow setting.)
    out = ov.Core().compile_model(str(q), "CPU")(calib[:1])[0]
    assert out.shape == (1, 10) and np.isfinite(out).all()


@pytest.fixture(scope="module")
def fixed_batch_openvino_fp32(tmp_path_factory):
    """Three convs with biases and a linear head (16 px) as an fp32 IR of fixed batch 2, and
    5 calibration inputs (not a multiple of 2: the last chunk must be padded)."""
    from leannet.deploy.openvino import export_openvino

    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    fp32 = export_openvino(_three_convs(), tmp_path_factory.mktemp("ovb2") / "m.xml", input_size=(3, 16, 16), batch=2)
    return fp32, np.random.default_rng(0).standard_normal((5, 3, 16, 16), dtype=np.float32)


def test_openvino_int8_of_a_fixed_batch_ir_keeps_the_batch(fixed_batch_openvino_fp32, tmp_path):
    """An IR exported with a fixed batch of 2 accepts only [2, ...] inputs: calibration must be
    fed in chunks of 2 (5 images: the last chunk padded), and the INT8 IR keeps that shape."""
    import openvino as ov

    from leannet.deploy import quantize

    fp32, calib = fixed_batch_openvino_fp32
    q = quantize.quantize_openvino(fp32, tmp_path / "q.xml", calib, batch=2)
    model = ov.Core().read_model(str(q))
    assert list(model.inputs[0].get_partial_shape().to_shape()) == [2, 3, 16, 16]
    assert "FakeQuantize" in {op.get_type_name() for op in model.get_ordered_ops()}  # really quantised
    out = ov.Core().compile_model(model, "CPU")(calib[:2])[0]
    assert out.shape == (2, 10) and np.isfinite(out).all()


def _biases(model) -> dict[str, np.ndarray]:
    """The bias of every Convolution and MatMul of an OpenVINO model: the Constant added to its
    output (through a Convert when the IR stores it compressed), keyed by the Add's name."""
    out = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Add" or op.input_value(0).get_node().get_type_name() not in ("Convolution", "MatMul"):
            continue
        node = op.input_value(1).get_node()
        while node.get_type_name() != "Constant":
            node = node.input_value(0).get_node()
        out[op.get_friendly_name()] = node.get_data().astype(np.float64)
    return out


def test_openvino_int8_uses_full_bias_correction(fixed_batch_openvino_fp32, tmp_path, monkeypatch):
    """quantize_openvino chose NNCF's full bias correction (better INT8 top-1 on the digits
    model): its IR's biases are those NNCF's full correction gives, not the fast one's. NNCF
    itself, called directly on the same chunks, is the reference; the two references differ,
    so the check can tell them apart."""
    import nncf
    import openvino as ov

    from leannet.deploy import quantize

    fp32, calib = fixed_batch_openvino_fp32
    monkeypatch.setattr(quantize, "has_vnni", lambda: True)
    ours = _biases(ov.Core().read_model(str(quantize.quantize_openvino(fp32, tmp_path / "q.xml", calib, batch=2))))
    chunks = [calib[0:2], calib[2:4], np.concatenate([calib[4:5], calib[0:1]])]

    def reference(fast: bool) -> dict[str, np.ndarray]:
        return _biases(nncf.quantize(
            ov.Core().read_model(str(fp32)), nncf.Dataset(chunks), subset_size=len(chunks),
            fast_bias_correction=fast,
            advanced_parameters=nncf.AdvancedQuantizationParameters(overflow_fix=nncf.OverflowFix.FIRST_LAYER)))

    full, fast = reference(False), reference(True)
    assert len(ours) == 4 and set(ours) == set(full) == set(fast)  # 3 convs and the head
    assert any(np.abs(full[k] - fast[k]).max() > 1e-4 for k in full)  # the two corrections differ here
    for k in full:
        np.testing.assert_allclose(ours[k], full[k], rtol=1e-6, atol=1e-7, err_msg=k)



def test_openvino_int8_with_calibration_inputs_of_the_wrong_shape_is_one_clear_error(fixed_batch_openvino_fp32,
                                                                                      tmp_path):
    """NNCF fails on a calibration batch the IR cannot take: one ExportError naming the IR, with
    the line of OpenVINO's message that says why (its first lines are only where it raised)."""
    from leannet.deploy.quantize import quantize_openvino
    from leannet.errors import ExportError

    fp32, _ = fixed_batch_openvino_fp32
    calib = np.zeros((2, 4, 16, 16), np.float32)  # 4 channels for a 3-channel model
    with pytest.raises(ExportError) as e:
        quantize_openvino(fp32, tmp_path / "q.xml", calib, batch=2)
    msg = str(e.value)
    assert msg.startswith(f"INT8 quantisation of {fp32} failed: ") and "\n" not in msg
    assert "incompatible" in msg and "Exception from" not in msg and not (tmp_path / "q.xml").exists()
