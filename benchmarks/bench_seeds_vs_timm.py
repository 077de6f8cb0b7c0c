"""leannet's seed models vs the same architectures from timm, measured in one run.

For every model of the `seeds` preset that timm also has, both implementations are timed in
PyTorch eager and in ONNX Runtime with the same input, threads and timing loop
(`leannet.runtime.timing`: interleaved rounds, `time_rounds` + `summarise`). leannet runs its deployed form (`leannet.reparameterize`:
branches merged, BatchNorm folded); timm runs as a user gets it (re-parameterised with
`timm.utils.reparameterize_model` where timm supports it, BatchNorm not folded). Both are
exported to ONNX by the same `leannet.deploy.onnx.export_onnx`. The ratio is
leannet / timm median latency: below 1 means leannet is faster.

Full run (a quiet machine, ~10-15 min on 2 cores):
    python benchmarks/bench_seeds_vs_timm.py --json runs/bench_vs_timm.json
Smoke test:
    python benchmarks/bench_seeds_vs_timm.py --models pplcnet_x0_5 --img 64 --min-time 0.05
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

import leannet
from leannet.bench.sweep import PRESETS, default_threads, environment, resolve_runtimes
from leannet.errors import UnknownModelError
from leannet.fileio import write_text
from leannet.registry import model_info, resolve
from leannet.runtime import runners, timing

# leannet name -> timm name, where the registry has no timm alias for it.
TIMM_NAMES = {
    "pplcnet_x0_5": "lcnet_050", "pplcnet_x1_0": "lcnet_100", "ghostnet_x1_0": "ghostnet_100",
    "mobileone_s0": "mobileone_s0", "mobileone_s1": "mobileone_s1", "repvgg_a0": "repvgg_a0",
    "tresnet_m": "tresnet_m", "mobilenetv1_x1_0": "mobilenetv1_100",
    "mobilenetv2_x1_0": "mobilenetv2_100", "mobilenetv3_large_x1_0": "mobilenetv3_large_100",
    "mobilenetv3_small_x1_0": "mobilenetv3_small_100", "resnet50": "resnet50",
    "regnetx_032": "regnetx_032",
}


def timm_name(name: str) -> str | None:
    import timm

    for candidate in (*model_info(name).aliases, TIMM_NAMES.get(name)):
        if candidate and timm.is_model(candidate):
            return candidate
    return None


def timm_model(name: str) -> torch.nn.Module:
    import timm
    from timm.utils.model import reparameterize_model

    return reparameterize_model(timm.create_model(name, pretrained=False).eval())


def make_runner(model, runtime: str, shape, threads: int, onnx_path: Path) -> runners.Runner:
    if runtime == "eager":
        return runners.torch_runner(model)
    from leannet.deploy.onnx import export_onnx

    export_onnx(model.eval(), onnx_path, input_size=tuple(shape[1:]), batch=shape[0])
    if runtime == "onnxruntime":
        return runners.onnxruntime_runner(onnx_path, threads)
    return runners.openvino_runner(onnx_path, threads)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="*", help="leannet names (default: the seeds preset)")
    p.add_argument("--runtimes", default="eager,onnxruntime")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--img", type=int, default=224)
    p.add_argument("--threads", type=int, default=default_threads())
    p.add_argument("--min-time", type=float, default=1.0)
    p.add_argument("--json", type=Path, help="also write the rows and the environment here")
    args = p.parse_args(argv)

    pairs = []
    for name in args.models or PRESETS["seeds"]:
        try:
            name = resolve(name)
        except UnknownModelError:
            print(f"note: {name} is not registered in this build, skipped", file=sys.stderr)
            continue
        tname = timm_name(name)
        if tname is None:
            print(f"note: timm has no {name}, skipped", file=sys.stderr)
            continue
        pairs.append((name, tname))

    rows = []
    runtimes, notes = resolve_runtimes(args.runtimes.split(","))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        for name, tname in pairs:
            ours = leannet.reparameterize(leannet.create_model(name))
            theirs = timm_model(tname)
            x = torch.randn(args.batch, 3, args.img, args.img).numpy()
            for rt in runtimes:
                cells = {}
                for who, model in (("leannet", ours), ("timm", theirs)):
                    run = make_runner(model, rt, x.shape, args.threads, Path(tmp) / f"{who}_{name}.onnx")
                    cells[who] = timing.Cell(who, run.bind(x), args.batch)
                # both models in interleaved rounds: drift hits them alike
                timing.time_rounds(list(cells.values()), rounds=5, round_time=args.min_time / 5)
                ms = {who: timing.summarise(c, args.threads) for who, c in cells.items()}
                rows.append({"model": name, "timm_model": tname, "runtime": rt, "batch": args.batch,
                             "img": args.img, "threads": args.threads,
                             "leannet_params": sum(q.numel() for q in ours.parameters()),
                             "timm_params": sum(q.numel() for q in theirs.parameters()),
                             "leannet": ms["leannet"], "timm": ms["timm"],
                             "ratio": ms["leannet"]["median_ms"] / ms["timm"]["median_ms"]})
                r = rows[-1]
                print(f"{name:24s} {tname:22s} {rt:12s} leannet {r['leannet']['median_ms']:8.2f} ms  "
                      f"timm {r['timm']['median_ms']:8.2f} ms  ratio {r['ratio']:.2f}", file=sys.stderr)

    env = environment(args.threads)
    print(f"\nleannet (deployed) vs timm, median latency in ms (p90); batch {args.batch}, "
          f"{args.img}x{args.img}, {args.threads} threads, {env['cpu']}, torch {torch.__version__}, "
          f"load {env['load_avg_1m']:.1f}")
    print(f"{'model':24s} {'timm name':22s} {'runtime':12s} {'leannet':>16s} {'timm':>16s} {'ratio':>6s}")
    for r in rows:
        lo, th = r["leannet"], r["timm"]
        print(f"{r['model']:24s} {r['timm_model']:22s} {r['runtime']:12s} "
              f"{lo['median_ms']:8.2f} ({lo['p90_ms']:5.2f}) {th['median_ms']:8.2f} ({th['p90_ms']:5.2f}) {r['ratio']:6.2f}")
    if args.json:
        write_text(args.json, json.dumps({"env": env, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
