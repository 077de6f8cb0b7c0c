"""Running a model and timing it: the one measurement core every tool shares.

`runners` turns a PyTorch module or an exported artefact (.onnx, OpenVINO .xml) into a
`Runner` with one calling convention for every execution path (eager, channels_last,
compile, ONNX Runtime, OpenVINO f32/bf16, INT8 artefacts, CUDA). `timing` times a runner
and watches the machine while it does (CPU used by other processes, steal time), so a
figure taken on a busy machine says so. The benchmark (`leannet.bench.sweep`), export's
verification and timing, `infer` and the detector's FPS all use these two modules.

This package sits below `deploy` and `profile`: it imports neither.
"""
