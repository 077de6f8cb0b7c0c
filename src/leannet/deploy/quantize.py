"""INT8 post-training quantisation from a folder of calibration images.

ONNX: `onnxruntime.quantization.quantize_static` in QDQ format with per-channel int8 weights
and uint8 activations (U8S8), after ORT's quantisation pre-processing (shape inference + graph
optimisation). U8S8 rather than ORT's S8S8 default because MLAS's x86 int8 kernels are built
for it: on this AVX-512 VNNI CPU, pplcnet_x1_0 at 224x224, 1 thread, ran S8S8 in 57 ms,
U8S8 in 18 ms, fp32 in 20 ms (a loaded machine; the ratios are what matter). VNNI also means
no reduced range is needed.

Which runtime to quantise for: on hard-swish networks (PP-LCNet, MobileNetV3) ORT's INT8 was
*slower* than its fp32. Its fp32 graph fuses Conv+HardSwish into one NCHWc kernel, while the
quantiser splits every HardSwish into DequantizeLinear -> HardSigmoid (fp32) -> QuantizeLinear
-> QLinearMul (ORT profile of pplcnet_x0_35 INT8: QLinearConv 33% of kernel time, HardSigmoid
27%, Q/DQ 23%). `requantize_hardsigmoid` rewrites that gate as a uint8 QLinearAdd (exact, see
there), which took pplcnet_x1_0 INT8 from 2.93 to 2.03 ms (b1) and MobileNetV3-Large b8 from
24.4 to 19.9 ms; ORT's INT8 still has no fused activation epilogue for it, so on these nets it
stays near fp32 speed. OpenVINO fuses these, so its INT8 is the one that pays off there.

OpenVINO: NNCF's `quantize` (per-channel weights, the "performance" preset,
full bias correction). Calibration images go through the model's own evaluation transform.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from leannet.data.images import find_images, image_batches, list_file, report_skipped
from leannet.errors import DataError, ExportError, reason
from leannet.fileio import atomic_path

CALIB_LIMIT = 300  # NNCF's default subset size; more images rarely move min/max ranges


def calibration_paths(source: str | Path, limit: int = CALIB_LIMIT) -> list[Path]:
    """Up to `limit` image files of `source`, spread evenly over the set (so every class is
    seen): a folder (an ImageFolder root or loose images, found recursively as `infer` finds
    them) or a list file, whose lines need no label (calibration uses none)."""
    source = Path(source)
    if source.is_file():
        paths = list_file(source, allow_unlabeled=True).paths
    elif source.is_dir():
        paths = find_images([source])
    else:
        raise DataError(f"{source}: no such calibration folder or list file")
    if not paths:
        raise DataError(f"{source}: no calibration images found")
    if len(paths) > limit:
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, limit).round().astype(int)]
    return paths


def calibration_inputs(source: str | Path, pre: dict[str, Any], limit: int = CALIB_LIMIT) -> np.ndarray:
    """(N, C, H, W) float32 calibration inputs from `calibration_paths(source, limit)`;
    unreadable images are skipped (an error only when none is readable)."""
    source = Path(source)
    paths = calibration_paths(source, limit)
    skipped: list[str] = []
    arrays = [a for _, a in image_batches(paths, pre, 64, lambda p, why: skipped.append(why))]
    if not arrays:
        raise DataError(f"{source}: none of the {len(paths)} calibration images could be read ({skipped[0]})")
    report_skipped(f"calibration set {source}", skipped, len(paths))
    return np.concatenate(arrays)


def _chunks(x: np.ndarray, batch: int | None) -> list[np.ndarray]:
    # A fixed-batch artefact needs every chunk full: the last one is padded with repeats.
    b = batch or 1
    out = []
    for i in range(0, len(x), b):
        c = x[i:i + b]
        if len(c) < b:
            c = np.concatenate([c, x[: b - len(c)]])
        out.append(c)
    return out


def quantize_onnx(fp32_path: str | Path, out: str | Path, calib: np.ndarray, batch: int | None = 1) -> Path:
    """Write the INT8 (QDQ, per-channel) version of `fp32_path` to `out`."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(_chunks(calib, batch))

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.it, None)
            return None if x is None else {"input": x}

    out = Path(out)
    work = Path(tempfile.mkdtemp(prefix=".quant-", dir=out.parent if out.parent.exists() else None))
    try:
        prepped = work / "prepped.onnx"
        quant_pre_process(str(fp32_path), str(prepped), skip_symbolic_shape=True)
        stem = fp32_stem(onnx.load(str(prepped)))
        with atomic_path(out) as tmp:
            quantize_static(str(prepped), str(tmp), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, nodes_to_exclude=[stem] if stem else None)
            quantized = onnx.load(str(tmp))
            if requantize_hardsigmoid(quantized):
                onnx.save(quantized, str(tmp))
    except Exception as e:  # ORT's own errors (InvalidArgument, Fail, ...) derive from Exception only
        raise ExportError(f"INT8 quantisation of {fp32_path} failed: {reason(e)}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _consumers(graph) -> dict[str, list]:
    """Tensor name -> the nodes that read it."""
    out: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def fp32_stem(model) -> str | None:
    """The name of the stem conv to keep in fp32, or None to quantise it too.

    With 3 input channels the stem costs little, and quantising the normalised image itself
    cost the most accuracy (digits: 95.8% -> 96.4% top-1 with it excluded, fp32 97.5%). Except
    when a MaxPool reads it (ResNet, ShuffleNetV2, SNet): ORT then moves the pool's
    QuantizeLinear in front of it and runs a uint8 MaxPool in NCHW, 14x slower than its NHWC
    one (shufflenetv2_x1_0 b1: 1.04 ms vs 75 us, a third of the whole INT8 run).
    """
    nodes = model.graph.node
    stem = next((n for n in nodes if n.op_type == "Conv"), None)
    if stem is None:
        return None
    consumers = _consumers(model.graph)
    frontier, seen = list(stem.output), set()
    while frontier:  # through the stem's activation (Relu, Clip, ...) to what reads it
        for n in consumers.get(frontier.pop(), []):
            if n.op_type == "MaxPool":
                return None
            if n.op_type in ("Relu", "Clip", "LeakyRelu", "HardSwish") and n.name not in seen:
                seen.add(n.name)
                frontier.extend(n.output)
    return stem.name


def requantize_hardsigmoid(model) -> int:
    """Rewrite every uint8 `DQ(x) -> HardSigmoid -> Q -> DQ` of a QDQ model as
    `DQ(x) + 3 -> Q(scale 6/255, zp 0) -> DQ(scale 1/255, zp 0)`, in place. Returns how many.

    HardSigmoid(x) = clip(x + 3, 0, 6) / 6, and quantising x + 3 with scale 6/255 saturates at
    exactly 0 and 6, so the uint8 code of x + 3 at step 6/255 *is* the code of the gate at step
    1/255: the clip is free and the division is a change of scale. ORT then runs the gate as one
    uint8 QLinearAdd instead of an fp32 round trip. The gate's step becomes 1/255 over its full
    [0, 1] range (calibration might have chosen a narrower one).
    """
    from onnx import helper, numpy_helper

    g = model.graph
    consumers = _consumers(g)
    producer = {o: n for n in g.node for o in n.output}
    inits = {i.name: i for i in g.initializer}
    names = {"three": "leannet_hsig_three", "q": "leannet_hsig_three_q", "scale3": "leannet_hsig_three_scale",
             "zp": "leannet_hsig_zp", "sum": "leannet_hsig_sum_scale", "gate": "leannet_hsig_gate_scale"}

    def rewritable(n) -> tuple | None:
        attrs = {a.name: a.f for a in n.attribute}
        if abs(attrs.get("alpha", 0.2) - 1 / 6) > 1e-6 or abs(attrs.get("beta", 0.5) - 0.5) > 1e-6:
            return None
        src = producer.get(n.input[0])
        outs = consumers.get(n.output[0], [])
        if src is None or src.op_type != "DequantizeLinear" or len(outs) != 1 or outs[0].op_type != "QuantizeLinear":
            return None
        q = outs[0]
        zp = inits.get(q.input[2]) if len(q.input) > 2 else None
        dqs = consumers.get(q.output[0], [])
        if zp is None or numpy_helper.to_array(zp).dtype != np.uint8 or not dqs:
            return None
        if any(d.op_type != "DequantizeLinear" or list(d.input[1:]) != list(q.input[1:]) for d in dqs):
            return None
        return q, dqs

    count, orphans = 0, set()
    for n in g.node:
        if n.op_type != "HardSigmoid" or (found := rewritable(n)) is None:
            continue
        q, dqs = found
        orphans.update(q.input[1:])
        n.op_type = "Add"
        del n.attribute[:]
        n.input.append(names["three"])
        q.input[1], q.input[2] = names["sum"], names["zp"]
        for d in dqs:
            d.input[1], d.input[2] = names["gate"], names["zp"]
        count += 1
    if count:
        g.initializer.extend([
            numpy_helper.from_array(np.array(255, np.uint8), names["q"]),
            numpy_helper.from_array(np.array(3 / 255, np.float32), names["scale3"]),
            numpy_helper.from_array(np.array(0, np.uint8), names["zp"]),
            numpy_helper.from_array(np.array(6 / 255, np.float32), names["sum"]),
            numpy_helper.from_array(np.array(1 / 255, np.float32), names["gate"]),
        ])
        # The constant 3 enters as a DQ too, so ORT's QDQ fusion sees a quantised binary Add.
        const = helper.make_node("DequantizeLinear", [names["q"], names["scale3"], names["zp"]], [names["three"]],
                                 name="leannet_hsig_three_dq")
        nodes = [const, *g.node]
        del g.node[:]
        g.node.extend(nodes)
        used = {i for n in g.node for i in n.input}
        kept = [t for t in g.initializer if t.name not in orphans or t.name in used]
        del g.initializer[:]
        g.initializer.extend(kept)
    return count


def has_vnni() -> bool:
    """Whether this CPU has 8-bit dot-product instructions (AVX512_VNNI, AVX_VNNI or AMX)."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        return True  # not Linux/x86: nothing known to saturate; keep NNCF's default
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags)) or "avx2" not in flags


def quantize_openvino(fp32_xml: str | Path, out: str | Path, calib: np.ndarray, batch: int | None = 1) -> Path:
    """Write the INT8 version of the OpenVINO IR `fp32_xml` to `out` (.xml + .bin) with NNCF."""
    import nncf
    import openvino as ov

    from leannet.deploy.openvino import save_ir

    chunks = _chunks(calib, batch)
    model = ov.Core().read_model(str(fp32_xml))
    try:
        # Full (not fast) bias correction: same graph, same speed, and on the digits model
        # (fp32 98.61%) INT8 top-1 went from 97.50% to 97.78%. The MIXED preset (asymmetric
        # activations) scored 98.06% with the stem conv left fp32, but made pplcnet_x0_5 at
        # batch 8 run 1.58x faster than fp32 instead of 1.96x.
        # Without VNNI (AVX2-only CPUs such as AMD Zen 1-3) oneDNN's u8 x s8 dot product adds
        # pairs in a saturating int16: full 8-bit weights overflow it and MobileNet-like nets
        # lose their accuracy (OpenVINO's "saturation issue"; here the tiny PP-LCNet's INT8
        # top-1 agreement with fp32 fell to 68%). NNCF's fix keeps weights to 7 bits on every
        # layer; with VNNI the default (first layer only) costs less accuracy.
        fix = nncf.OverflowFix.FIRST_LAYER if has_vnni() else nncf.OverflowFix.ENABLE
        q = nncf.quantize(model, nncf.Dataset(chunks), preset=nncf.QuantizationPreset.PERFORMANCE,
                          subset_size=len(chunks), fast_bias_correction=False,
                          advanced_parameters=nncf.AdvancedQuantizationParameters(overflow_fix=fix))
    except Exception as e:  # NNCF wraps backend failures in many types
        raise ExportError(f"INT8 quantisation of {fp32_xml} failed: {reason(e)}") from None
    save_ir(q, Path(out))
    return Path(out)
