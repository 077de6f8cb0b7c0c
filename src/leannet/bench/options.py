"""What a benchmark can be asked for: runtimes, what each runs by precision, model presets.
Plain data with no heavy imports: the CLI builds its parser from it, so `leannet --help` and
`--version` start without importing torch."""

from __future__ import annotations

# The seed papers' models and the baselines they compare against, at their base sizes.
# Sized so that `make run` (eager + ONNX Runtime + OpenVINO, batch 1) fits ~10 min on 2 cores.
PRESETS: dict[str, tuple[str, ...]] = {
    "seeds": (
        "pplcnet_x0_5", "pplcnet_x1_0", "ghostnet_x1_0", "g_ghost_regnetx_032", "mobileone_s0",
        "mobileone_s1", "repvgg_a0", "tresnet_m", "snet146", "mobilenetv1_x1_0",
        "mobilenetv2_x1_0", "mobilenetv3_large_x1_0", "mobilenetv3_small_x1_0",
        "shufflenetv2_x1_0", "resnet50", "regnetx_032",
    ),
    "tiny": ("pplcnet_x0_25", "mobilenetv3_small_x1_0"),  # a quick smoke run
}
DEFAULT_RUNTIMES = ("eager", "onnxruntime", "openvino")
# `--runtimes installed`: every engine that can run a zoo model here (LiteRT runs only the
# .tflite files a user brings; channels_last and compile are eager's variants).
# `make run RUNTIMES=installed` uses it.
INSTALLED = "installed"
ENGINES = ("eager", "onnxruntime", "openvino", "executorch", "ncnn", "cuda")
RUNTIMES = ("eager", "channels_last", "compile", "onnxruntime", "openvino", "cuda", "executorch", "ncnn", "litert")
# What each runtime can run, by precision (INT8 = an artefact quantised by leannet).
SUPPORTED: dict[str, tuple[str, ...]] = {
    "eager": ("fp32", "bf16"), "channels_last": ("fp32", "bf16"), "compile": ("fp32",),
    "onnxruntime": ("fp32", "int8"), "openvino": ("fp32", "bf16", "int8"),
    "cuda": ("fp32", "fp16", "bf16"),
    "executorch": ("fp32", "int8"), "ncnn": ("fp32",), "litert": ("fp32", "int8"),  # litert: the .tflite's own
}
