"""leannet's mobile exports against each engine's documented default path, for the same timm
model, timed side by side in one run.

    python benchmarks/bench_mobile_vs_timm.py                      # the seeds models timm has
    python benchmarks/bench_mobile_vs_timm.py --models pplcnet_x0_5 --img 64 --min-time 0.2

For every seeds model timm also implements (names as `bench_seeds_vs_timm.py` maps them):
- default path: timm's model as `timm.create_model` gives it (eval mode, no re-parameterisation,
  BatchNorm unfolded), exported the way each engine documents it: ExecuTorch
  `torch.export.export` -> `to_edge_transform_and_lower(..., partitioner=[XnnpackPartitioner()])`
  -> `.to_executorch()`; ncnn: `torch.onnx.export` of the model, then pnnx on that ONNX
  (`fp16=0`, as leannet's, so both keep fp32 weights);
- leannet: `leannet export NAME --format executorch|ncnn` (re-parameterised, BatchNorm folded,
  shuffle-free stages, the parity gate).
The two artefacts of a model and engine are timed together in interleaved rounds on pinned
threads (`bench_mobile.latency`). Weights are random on both sides (latency does not depend on
them). Ratio = leannet / default (below 1: leannet's export is faster).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_mobile import calibrated_checkpoint, latency, one
from bench_seeds_vs_timm import timm_name

from leannet.bench.options import PRESETS


def default_path(model: torch.nn.Module, engine: str, out: Path, img: int) -> Path:
    """The engine's documented export of `model`, nothing else done to it."""
    x = torch.randn(1, 3, img, img)
    if engine == "executorch":
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        with torch.no_grad():
            program = torch.export.export(model, (x,))
        out.write_bytes(to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer)
        return out
    from leannet.deploy.ncnn import convert_onnx  # only the pnnx invocation

    onnx_path = out.with_suffix(".onnx")
    torch.onnx.export(model, (x,), str(onnx_path), input_names=["input"], external_data=False)
    # ncnn's .param records no input size: the runner's pre-flight reads it from a sidecar
    out.with_suffix(".json").write_text(json.dumps({"input_size": [3, img, img]}) + "\n")
    return convert_onnx(onnx_path, out, (1, 3, img, img))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", help="comma-separated leannet names (default: the seeds models timm has)")
    ap.add_argument("--engines", default="executorch,ncnn")
    ap.add_argument("--img", type=int, default=224)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--out", default="runs/bench_mobile_vs_timm.jsonl")
    args = ap.parse_args(argv)
    import timm

    from leannet.runtime.mobile import set_executorch_threads

    set_executorch_threads(args.threads)  # process-wide: before the first .pte is loaded
    names = args.models.split(",") if args.models else list(PRESETS["seeds"])
    pairs = [(n, timm_name(n)) for n in names]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = ["| model | timm | engine | default path ms | leannet ms | leannet / default | export s (default, leannet) |",
             "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, tname in pairs:
            if tname is None:
                print(f"{name}: timm has no such model, skipped", file=sys.stderr)
                continue
            ckpt = calibrated_checkpoint(name, args.img, folder)
            for engine in args.engines.split(","):
                suffix = {"executorch": ".pte", "ncnn": ".param"}[engine]
                theirs = {"model": name, "timm": tname, "engine": engine, "path_kind": "default", "img": args.img}
                t0 = time.perf_counter()
                try:
                    torch.manual_seed(0)
                    tm = timm.create_model(tname, pretrained=False).eval()
                    theirs["path"] = str(default_path(tm, engine, folder / f"{tname}-default{suffix}", args.img))
                except Exception as e:  # the row names the engine's refusal
                    theirs["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                theirs["export_s"] = round(time.perf_counter() - t0, 1)
                mine = one(name, engine, ckpt, folder, args.img) | {"path_kind": "leannet", "timm": tname}
                latency([theirs, mine], args.threads, args.min_time)
                ratio = (mine["median_ms"] / theirs["median_ms"]
                         if "median_ms" in mine and "median_ms" in theirs else None)
                for r in (theirs, mine):
                    r["ratio"] = ratio
                    r.pop("path", None)
                    with out.open("a") as f:
                        f.write(json.dumps(r) + "\n")
                print(json.dumps([theirs, mine]), file=sys.stderr, flush=True)
                lines.append(f"| {name} | {tname} | {engine} | {theirs.get('median_ms', theirs.get('error'))} | "
                             f"{mine.get('median_ms', mine.get('error'))} | "
                             f"{'-' if ratio is None else f'{ratio:.2f}'} | {theirs['export_s']}, {mine['export_s']} |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
