"""INT8 ExecuTorch on a trained model: top-1 on the digits validation set before/after.

    python benchmarks/bench_mobile_digits.py [--models pplcnet_x0_25,mobileone_s0]

Each model is trained by `leannet train -c configs/pplcnet_x0_25_digits.yaml -o
model.name=NAME` (the built-in digits at 32x32, 30 epochs; a few CPU minutes per model), then
exported with `leannet export --format executorch --int8 --calib <digits train> --eval <digits
val>`: the export prints top-1 of PyTorch, the fp32 .pte
and the INT8 .pte, and the INT8/fp32 latency of its quick interleaved check.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from leannet.data import prepare_digits
from leannet.deploy import export

DIGITS_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "pplcnet_x0_25_digits.yaml"


def train(name: str, out: Path) -> Path:
    """`name` trained by leannet's trainer on the shipped digits recipe (its model swapped)."""
    from leannet.train import train_from_config

    run = out / f"{name}-digits"
    train_from_config(DIGITS_CONFIG, [f"run.out_dir={run}", f"model.name={name}"])
    return run / "best.safetensors"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="pplcnet_x0_25")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = prepare_digits(tmp / "digits")
        for name in args.models.split(","):
            ckpt = train(name, tmp)
            res = export(ckpt, format="executorch", int8=True, calib=root / "train", eval_set=root / "val",
                         out=tmp / f"{name}-int8.pte")
            print(res.summary())
            print(json.dumps({"model": name, "top1": res.record["top1"], "latency_ms": res.record["latency_ms"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
