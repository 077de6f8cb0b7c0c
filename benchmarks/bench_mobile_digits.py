"""INT8 ExecuTorch on a trained model: top-1 on the digits validation set before/after.

    python benchmarks/bench_mobile_digits.py [--models pplcnet_x0_25,mobileone_s0]

Each model is fitted on the built-in digits (8x8 scans upscaled; `leannet.data.prepare_digits`)
at 32x32 with the deploy tests' recipe (300 SGD steps, one-cycle, label smoothing 0.1), saved
as a leannet checkpoint, then exported with `leannet export --format executorch --int8
--calib <digits train> --eval <digits val>`: the export prints top-1 of PyTorch, the fp32 .pte
and the INT8 .pte, and the INT8/fp32 latency of its quick interleaved check.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import leannet
from leannet.data import prepare_digits
from leannet.data.images import image_batches, labelled_images
from leannet.deploy import export
from leannet.weights import save_weights

PRE = {"input_size": [3, 32, 32], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
       "interpolation": "bilinear", "crop_pct": 1.0}
STEPS = 300  # the deploy tests' recipe: 93.9% val top-1 for pplcnet_x0_25


def train(name: str, root: Path, out: Path) -> Path:
    s = labelled_images(root / "train")
    x = torch.from_numpy(np.concatenate([a for _, a in image_batches(s.paths, PRE, 256)]))
    y = torch.tensor(s.labels)
    torch.manual_seed(0)
    model = leannet.create_model(name, num_classes=len(s.classes))
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=STEPS, pct_start=0.15)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(STEPS):
        idx = torch.randint(0, len(x), (64,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx], label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return save_weights(model.eval(), out / f"{name}_digits.safetensors",
                        meta={"arch": name, "num_classes": len(s.classes), "classes": s.classes, "preprocessing": PRE})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="pplcnet_x0_25")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = prepare_digits(tmp / "digits")
        for name in args.models.split(","):
            ckpt = train(name, root, tmp)
            res = export(ckpt, format="executorch", int8=True, calib=root / "train", eval_set=root / "val",
                         out=tmp / f"{name}-int8.pte")
            print(res.summary())
            print(json.dumps({"model": name, "top1": res.record["top1"], "latency_ms": res.record["latency_ms"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
