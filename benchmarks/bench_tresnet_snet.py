"""CPU speed of the TResNet and SNet families next to the baselines their papers measure against.

TResNet's claim is GPU throughput equal to ResNet-50 at higher accuracy (paper: V100, mixed
precision); SNet's is ShuffleNetV2-like cost with 5x5 depthwise kernels. This measures both
pairs on this CPU, eager PyTorch, in the same run, so the ratio column is the meaningful one:

    python benchmarks/bench_tresnet_snet.py                       # batch 1 and 16, 224x224
    python benchmarks/bench_tresnet_snet.py --quick               # smoke test: tiny and fast

Each row: median and p90 over timed blocks (torch.utils.benchmark), images/s, and the ratio of
the median to the family's reference model measured in the same run.
"""

from __future__ import annotations

import argparse
import platform

import torch
import torch.utils.benchmark as tb

import leannet
from leannet.profile.complexity import count_macs

# (model, reference it is compared with)
PAIRS = [
    ("resnet50", "resnet50"),
    ("tresnet_m", "resnet50"),
    ("tresnet_l", "resnet50"),
    ("tresnet_xl", "resnet50"),
    ("shufflenetv2_x1_0", "shufflenetv2_x1_0"),
    ("snet49", "shufflenetv2_x1_0"),
    ("snet146", "shufflenetv2_x1_0"),
    ("snet535", "shufflenetv2_x1_0"),
]


def measure(name: str, batch: int, size: int, min_time: float) -> dict:
    model = leannet.reparameterize(leannet.create_model(name)).eval()  # BN folded, as deployed
    x = torch.rand(batch, 3, size, size)
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        m = tb.Timer("model(x)", globals={"model": model, "x": x}, num_threads=torch.get_num_threads()
                     ).blocked_autorange(min_run_time=min_time)
    times = torch.tensor(m.times)
    median = times.median().item()
    return {"name": name, "batch": batch, "median_ms": 1e3 * median,
            "p90_ms": 1e3 * times.quantile(0.9).item(), "img_s": batch / median,
            "gmacs": count_macs(model, (3, size, size)) / 1e9}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--min-time", type=float, default=2.0, help="seconds of timing per row")
    ap.add_argument("--quick", action="store_true", help="smoke test: M/SNet49 only, 64x64, batch 1")
    args = ap.parse_args()
    pairs = PAIRS
    if args.quick:
        pairs = [("resnet50", "resnet50"), ("tresnet_m", "resnet50"),
                 ("shufflenetv2_x1_0", "shufflenetv2_x1_0"), ("snet49", "shufflenetv2_x1_0")]
        args.batches, args.size, args.min_time = [1], 64, 0.2
    torch.set_num_threads(args.threads)
    print(f"# CPU: {platform.processor() or platform.machine()}; torch {torch.__version__}; "
          f"threads {args.threads}; eager fp32; input {args.size}x{args.size}; BN folded")
    print(f"{'model':<20}{'batch':>6}{'GMACs':>8}{'median ms':>11}{'p90 ms':>9}{'img/s':>9}{'x ref':>7}  ref")
    for batch in args.batches:
        rows = {}
        for name, ref in pairs:
            r = rows[name] = measure(name, batch, args.size, args.min_time)
            ratio = r["median_ms"] / rows[ref]["median_ms"]
            print(f"{name:<20}{batch:>6}{r['gmacs']:>8.3f}{r['median_ms']:>11.2f}{r['p90_ms']:>9.2f}"
                  f"{r['img_s']:>9.1f}{ratio:>7.2f}  {ref}")


if __name__ == "__main__":
    main()
