"""Train PP-LCNet x0.25 on the built-in digits set with leannet's model and with timm's LCNet
at the same width (timm has no lcnet_025: `_gen_lcnet(..., channel_multiplier=0.25)` builds
it), through the same trainer and config, and print time, img/s and top-1 for both.

    python benchmarks/bench_train_digits.py                     # the full headline recipe
    python benchmarks/bench_train_digits.py --epochs 1 --max-steps 5   # smoke test
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def timm_lcnet_025(num_classes: int, drop_rate: float | None):
    from timm.models.mobilenetv3 import _gen_lcnet

    # "lcnet_035" only names timm's default config entry; the width is set by the multiplier.
    return _gen_lcnet("lcnet_035", channel_multiplier=0.25, num_classes=num_classes,
                      drop_rate=drop_rate or 0.0)


def main() -> None:
    import leannet
    from leannet.train import fit, load_train_config

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "pplcnet_x0_25_digits.yaml"))
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--out", default=None, help="run folders (default: a temporary folder)")
    args = p.parse_args()

    out = Path(args.out or tempfile.mkdtemp(prefix="bench_train_digits-"))
    rows = []
    for label, factory in (("leannet pplcnet_x0_25", None), ("timm LCNet x0.25", timm_lcnet_025)):
        over = [f"run.out_dir={out / label.split()[0]}", f"run.threads={args.threads}",
                "log.tensorboard=false", "log.progress=false"]
        if args.epochs is not None:
            over += [f"schedule.epochs={args.epochs}", f"schedule.warmup_epochs={min(1, args.epochs - 1)}"]
        if args.max_steps is not None:
            over.append(f"run.max_steps={args.max_steps}")
        cfg = load_train_config(args.config, over)
        torch.manual_seed(cfg.run.seed)  # fit seeds leannet's model init the same way
        model = factory(10, cfg.model.drop_rate) if factory is not None else \
            leannet.create_model(cfg.model.name, num_classes=10, drop_rate=cfg.model.drop_rate)
        n_params = sum(t.numel() for t in model.parameters())
        s = fit(cfg, model=model)
        rows.append((label, s, n_params))

    print(f"\ndigits: {args.config} | threads {args.threads} | torch {torch.__version__} | "
          f"{platform.processor() or platform.machine()}")
    print(f"{'model':<24} {'params':>8} {'steps':>6} {'time s':>8} {'img/s':>8} {'best top-1':>11} {'src':>4}")
    ref = rows[1][1]
    for label, s, n in rows:
        b = s["best"]
        print(f"{label:<24} {n:>8,} {s['steps']:>6} {s['seconds']:>8.1f} {s['img_s']:>8.0f} "
              f"{b.get('score', float('nan')):>10.2f}% {b.get('source', '-'):>4}")
    lean = rows[0][1]
    print(f"leannet / timm: time {lean['seconds'] / ref['seconds']:.2f}x, img/s {lean['img_s'] / ref['img_s']:.2f}x")


if __name__ == "__main__":
    main()
