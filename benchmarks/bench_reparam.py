"""What structural re-parameterisation buys on this CPU: train form vs deployed form.

For each re-parameterisable model, times eager PyTorch inference of the train-time form (eval
mode, all branches) and of `leannet.reparameterize(model)` in the same run, and prints median
and p90 latency and the speed-up. Also prints both parameter counts, which users mix up.

    python benchmarks/bench_reparam.py                 # full: batch 1, 224x224, all models
    python benchmarks/bench_reparam.py --smoke         # seconds: 64x64, two models
"""

from __future__ import annotations

import argparse
import platform
import statistics

import torch
from torch.utils import benchmark

import leannet
from leannet.profile.complexity import count_params
from leannet.registry import model_info


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def time_ms(model: torch.nn.Module, x: torch.Tensor, min_run_time: float) -> tuple[float, float]:
    """(median, p90) in ms of one forward, over the blocks torch.utils.benchmark measures."""
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        m = benchmark.Timer("model(x)", globals={"model": model, "x": x}).blocked_autorange(
            min_run_time=min_run_time)
    times = sorted(t * 1e3 for t in m.times)
    p90 = times[min(len(times) - 1, int(0.9 * len(times)))]
    return statistics.median(times), p90


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=None, help="default: every reparameterizable model")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--min-run-time", type=float, default=2.0, help="seconds of timing per model form")
    ap.add_argument("--smoke", action="store_true", help="tiny settings to check the script runs")
    args = ap.parse_args()
    if args.smoke:
        args.models = args.models or ["mobileone_s0", "repvgg_a0"]
        args.size, args.min_run_time = 64, 0.05
    names = args.models or [n for n in leannet.list_models() if model_info(n).reparameterizable]
    torch.set_num_threads(args.threads)
    print(f"# runtime: PyTorch {torch.__version__} eager, fp32, batch {args.batch}, "
          f"{args.size}x{args.size}, {args.threads} threads, CPU: {cpu_name()}")
    print(f"{'model':<14} {'params train (M)':>16} {'params deployed (M)':>19} {'train median/p90 (ms)':>22} "
          f"{'deployed median/p90 (ms)':>25} {'speed-up':>8}")
    x = torch.randn(args.batch, 3, args.size, args.size)
    for name in names:
        model = leannet.create_model(name).eval()
        deployed = leannet.reparameterize(model)
        train_med, train_p90 = time_ms(model, x, args.min_run_time)
        dep_med, dep_p90 = time_ms(deployed, x, args.min_run_time)
        print(f"{name:<14} {count_params(model) / 1e6:>16.2f} {count_params(deployed) / 1e6:>19.2f} "
              f"{f'{train_med:.2f} / {train_p90:.2f}':>22} {f'{dep_med:.2f} / {dep_p90:.2f}':>25} "
              f"{train_med / dep_med:>7.2f}x")


if __name__ == "__main__":
    main()
