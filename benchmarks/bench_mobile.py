"""Mobile engines: every model x engine (ExecuTorch/XNNPACK, ncnn) exported through `leannet
export`, its fp32 parity with PyTorch, export time and (with --latency) median latency beside
ONNX Runtime; INT8 ExecuTorch (XNNPACKQuantizer, per-channel) vs its fp32 .pte.

    python benchmarks/bench_mobile.py                                  # seeds preset, parity only
    python benchmarks/bench_mobile.py --models pplcnet_x0_25 --img 64 --latency
    python benchmarks/bench_mobile.py --models '' --int8 pplcnet_x1_0,mobileone_s0 --latency  # INT8 only

Each model gets realistic BatchNorm statistics first (a fresh model's eval logits are ~0 or
~1e15, which makes a parity figure meaningless): BN is calibrated on random batches, its
affine parameters perturbed, and the model saved as a checkpoint that `export` loads. Parity
is `export`'s own gate (max |logit diff| <= 1e-4 x max(1, max |logit|) on 8 random inputs);
a row whose export fails names the engine's refusal. Rows go to --out (JSONL) as they finish
and a markdown table is printed. Latency is indicative only on a shared machine: the engines
of one model are timed in interleaved rounds with pinned threads (`--threads`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import leannet
from leannet.bench.options import PRESETS
from leannet.deploy import export
from leannet.runtime import timing
from leannet.runtime.runners import open_runner
from leannet.weights import save_weights

ENGINES = ("executorch", "ncnn")
CALIB_BATCHES = 4  # BN calibration batches: enough for running statistics of the right scale
CALIB_IMAGES = 32  # INT8 calibration inputs (generated: latency figures only)


def calibrated_checkpoint(name: str, img: int, folder: Path) -> Path:
    torch.manual_seed(0)
    model = leannet.create_model(name, num_classes=1000)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None
            m.reset_running_stats()
            if m.affine:
                with torch.no_grad():
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.2, 0.2)
    model.train()
    with torch.no_grad():
        for _ in range(CALIB_BATCHES):
            model(torch.randn(2, 3, img, img))
    return save_weights(model.eval(), folder / f"{name}.safetensors", meta={"arch": name, "num_classes": 1000})


def one(name: str, fmt: str, ckpt: Path, folder: Path, img: int, int8: bool = False,
        calib: str | None = None, eval_set: str | None = None) -> dict:
    suffix = {"executorch": ".pte", "ncnn": ".param", "onnx": ".onnx", "coreml": ".mlpackage"}[fmt]
    out = folder / f"{name}-{fmt}{'-int8' if int8 else ''}{suffix}"
    row = {"model": name, "engine": fmt, "precision": "int8" if int8 else "fp32", "img": img}
    t0 = time.perf_counter()
    try:
        res = export(ckpt, format=fmt, out=out, img=img, int8=int8, calib=calib, eval_set=eval_set)
    except Exception as e:  # the row names the refusal
        row.update(error=f"{type(e).__name__}: {str(e).splitlines()[0][:300]}",
                   export_s=round(time.perf_counter() - t0, 1))
        return row
    if fmt == "coreml" and res.record["coreml_check"]["verification_kind"] == "structural":
        # converted and its spec checked; Core ML runs only on macOS, so no parity or latency here
        row.update(export_s=round(time.perf_counter() - t0, 1), check="structural")
        return row
    v = res.record["verification"][-1]  # an INT8 export's last check is the INT8 one (no gate)
    row.update(export_s=round(time.perf_counter() - t0, 1), path=str(res.path),
               max_abs_diff=v["max_abs_diff"], ref_max_abs=v["ref_max_abs"],
               rel_diff=v["max_abs_diff"] / max(1.0, v["ref_max_abs"]), top1=res.record.get("top1"))
    return row


def latency(rows: list[dict], threads: int, min_time: float) -> None:
    ok = [r for r in rows if "path" in r]
    if not ok:
        return
    runners = {id(r): open_runner(r["path"], threads=threads) for r in ok}
    x = np.random.default_rng(0).standard_normal((1, 3, ok[0]["img"], ok[0]["img"]), dtype=np.float32)
    cells = {k: timing.Cell(k, r.bind(x), 1) for k, r in runners.items()}
    timing.time_rounds(list(cells.values()), rounds=5, round_time=min_time / 5)
    for r in ok:
        s = timing.summarise(cells[id(r)])
        r.update(median_ms=round(s["median_ms"], 3), p90_ms=round(s["p90_ms"], 3), threads=threads)


def table(rows: list[dict]) -> str:
    lines = ["| model | engine | precision | parity (max abs diff / max(1, max logit)) | export s | median ms |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        parity = r.get("error") or (f"{r['check']} only (no Core ML runtime on Linux)" if "check" in r else
                                    f"{r['rel_diff']:.1e} ({'ok' if r['rel_diff'] <= 1e-4 else 'FAIL'})")
        if r["precision"] == "int8" and "error" not in r:
            parity = "int8 (no fp32 gate)" + (f", top-1 {r['top1']}" if r.get("top1") else "")
        lines.append(f"| {r['model']} | {r['engine']} | {r['precision']} | {parity} | {r['export_s']} | "
                     f"{r.get('median_ms', '')} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", help="comma-separated (default: the seeds preset)")
    ap.add_argument("--engines", default=",".join(ENGINES), help="of executorch, ncnn, coreml (coreml: "
                    "converted and checked structurally; it runs only on macOS)")
    ap.add_argument("--img", type=int, default=224)
    ap.add_argument("--latency", action="store_true", help="also time each model's artefacts (+ ONNX Runtime)")
    ap.add_argument("--int8", default="", help="models to also export as INT8 ExecuTorch")
    ap.add_argument("--calib", help="calibration images for --int8 (default: generated, latency only)")
    ap.add_argument("--eval", dest="eval_set", help="labelled images: top-1 of PyTorch, fp32 and INT8")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--out", default="runs/bench_mobile.jsonl")
    args = ap.parse_args(argv)
    models = [m for m in args.models.split(",") if m] if args.models is not None else list(PRESETS["seeds"])
    int8 = [m for m in args.int8.split(",") if m]
    engines = args.engines.split(",")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    if "executorch" in engines or int8:
        from leannet.runtime.mobile import set_executorch_threads

        set_executorch_threads(args.threads)  # process-wide: before the first .pte is loaded
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        calib = args.calib
        if int8 and calib is None:
            from PIL import Image

            calib_dir = folder / "calib"
            calib_dir.mkdir()
            rng = np.random.default_rng(0)
            for i in range(CALIB_IMAGES):
                Image.fromarray(rng.integers(0, 255, (args.img, args.img, 3), dtype=np.uint8)).save(calib_dir / f"{i}.png")
            calib = str(calib_dir)
        for name in dict.fromkeys(models + int8):
            ckpt = calibrated_checkpoint(name, args.img, folder)
            mine = [one(name, e, ckpt, folder, args.img, eval_set=args.eval_set) for e in engines if name in models]
            if name in int8:
                if not any(r["engine"] == "executorch" and r["precision"] == "fp32" for r in mine):
                    mine.append(one(name, "executorch", ckpt, folder, args.img, eval_set=args.eval_set))
                mine.append(one(name, "executorch", ckpt, folder, args.img, int8=True, calib=calib,
                                eval_set=args.eval_set))
            if args.latency:
                mine.append(one(name, "onnx", ckpt, folder, args.img))
                latency(mine, args.threads, args.min_time)
            for r in mine:
                r.pop("path", None)
                print(json.dumps(r), file=sys.stderr, flush=True)
                with out.open("a") as f:
                    f.write(json.dumps(r) + "\n")
            rows += mine
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
