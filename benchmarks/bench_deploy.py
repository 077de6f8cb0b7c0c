"""Deploy benchmark: leannet's exported artefacts vs timm's same architecture exported
naively, fp32 vs INT8 latency, and digits top-1 fp32 vs INT8, all measured in one run.

    python benchmarks/bench_deploy.py                       # seeds preset, batch 1 and 8
    python benchmarks/bench_deploy.py --models pplcnet_x0_25 --batch 1 --min-time 0.3  # smoke

"Naive" = `torch.onnx.export` of the timm model as it comes (BatchNorm not folded, no
re-parameterisation), loaded by the same runtime with the same settings. Latency is the
median (and p90) of single synchronous calls after warm-up; threads are pinned and recorded.
Targets (issue 6): leannet fp32 / timm fp32 <= 1.0 everywhere; INT8 >= 1.8x faster than
fp32; INT8 loses <= 1 point top-1 on the digits validation set.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import leannet
from leannet.data import prepare_digits
from leannet.deploy import export
from leannet.deploy.artefact import open_runner
from leannet.fileio import write_text

# The seed architectures (and the baselines the papers compare against) with timm's name for
# the same network; models not registered in this checkout are skipped with a note.
SEEDS = [
    ("pplcnet_x1_0", "lcnet_100"),
    ("ghostnet_x1_0", "ghostnet_100"),
    ("mobileone_s0", "mobileone_s0"),
    ("tresnet_m", "tresnet_m"),
    ("mobilenetv3_large_x1_0", "mobilenetv3_large_100"),
    ("mobilenetv2_x1_0", "mobilenetv2_100"),
    ("mobilenetv1_x1_0", "mobilenetv1_100"),
    ("repvgg_a0", "repvgg_a0"),
    ("resnet50", "resnet50"),
    ("regnetx_032", "regnetx_032"),
]
DIGITS_CONFIG = "configs/pplcnet_x0_25_digits.yaml"


def timeit(run, x: np.ndarray, min_time: float, warmup: int = 5) -> tuple[float, float]:
    """(median, p90) latency in ms of `run(x)`."""
    for _ in range(warmup):
        run(x)
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < min_time or len(times) < 10:
        t = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t)
    ms = np.asarray(times) * 1e3
    return float(np.median(ms)), float(np.percentile(ms, 90))


def naive_timm_onnx(timm_name: str, path: Path, img: int, batch: int) -> Path:
    import timm

    model = timm.create_model(timm_name, num_classes=1000).eval()
    with torch.no_grad():
        torch.onnx.export(model, (torch.randn(batch, 3, img, img),), str(path), input_names=["input"],
                          output_names=["logits"], opset_version=18, dynamo=False)
    return path


def _timm_alias(name: str) -> str | None:
    import timm

    from leannet.registry import model_info

    return next((a for a in model_info(name).aliases if timm.is_model(a)), None)


def fake_weights(name: str, path: Path) -> Path:
    # Latency does not depend on the values, but BN statistics make a fresh model's outputs
    # degenerate: a few train-mode passes give realistic ones so fp32 verification is meaningful.
    from leannet.weights import save_weights

    model = leannet.create_model(name)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # cumulative average over the passes below
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(4, 3, 224, 224))
    return save_weights(model.eval(), path, meta={"arch": name})


def latency_rows(args, work: Path, calib: Path) -> list[dict]:
    import timm

    rows = []
    seeds = [(m, t) for m, t in SEEDS if leannet.list_models(m)] if not args.models else \
        [(m, dict(SEEDS).get(m) or _timm_alias(m)) for m in args.models]
    for name, timm_name in seeds:
        if not leannet.list_models(name):
            print(f"skip {name}: not registered", file=sys.stderr)
            continue
        weights = fake_weights(name, work / f"{name}.safetensors")
        for b in args.batch:
            x = np.random.default_rng(0).standard_normal((b, 3, args.img, args.img), dtype=np.float32)
            has_timm = bool(timm_name) and timm.is_model(timm_name)
            naive = naive_timm_onnx(timm_name, work / f"timm-{name}-{b}.onnx", args.img, b) if has_timm else None
            for rt in args.runtimes:
                fmt, suffix = ("onnx", ".onnx") if rt == "onnxruntime" else ("openvino", ".xml")
                row = {"model": name, "timm": timm_name if has_timm else None, "batch": b, "runtime": rt,
                       "img": args.img, "threads": args.threads}
                ours = export(weights, format=fmt, img=args.img, batch=b, out=work / f"{name}-{b}{suffix}")
                row["leannet_fp32"] = timeit(open_runner(ours.path, threads=args.threads, precision="fp32"), x, args.min_time)
                row["fp32_max_diff"] = ours.record["verification"][0]["max_abs_diff"]
                if naive is not None:
                    row["timm_fp32"] = timeit(open_runner(naive, runtime=rt, threads=args.threads, precision="fp32"), x, args.min_time)
                if not args.no_int8:
                    q = export(weights, format=fmt, img=args.img, batch=b, int8=True, calib=calib,
                               out=work / f"{name}-{b}-int8{suffix}")
                    row["leannet_int8"] = timeit(open_runner(q.path, threads=args.threads), x, args.min_time)
                    row["int8_agreement"] = q.record["verification"][-1]["top1_agreement"]
                rows.append(row)
                print(_fmt_row(row), file=sys.stderr)
    return rows


def digits_checkpoint(args, work: Path, root: Path) -> Path:
    """--digits-ckpt if given; else train with leannet's trainer and the shipped digits config
    (issue 7) when this checkout has them; else a quick fit."""
    if args.digits_ckpt:
        return Path(args.digits_ckpt)
    config = Path(__file__).resolve().parent.parent / DIGITS_CONFIG
    try:
        from leannet.train import train_from_config
    except ImportError:
        train_from_config = None
    if train_from_config is not None and config.is_file():
        out = work / "digits-run"
        print(f"training {config.name} with leannet's trainer (pass --digits-ckpt to reuse a run)", file=sys.stderr)
        train_from_config(config, [f"run.out_dir={out}"])
        return out / "best.safetensors"
    return quick_fit_digits(root, work / "digits.safetensors")


def quick_fit_digits(root: Path, out: Path, steps: int = 400) -> Path:
    """Stand-in until the trainer is on main: pplcnet_x0_25 at 32x32, a few hundred SGD steps."""
    from leannet.data.images import image_batches, labelled_images
    from leannet.weights import save_weights

    pre = {"input_size": [3, 32, 32], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
           "interpolation": "bilinear", "crop_pct": 1.0}
    paths, labels, classes = labelled_images(root / "train")
    x = torch.from_numpy(np.concatenate([a for _, a in image_batches(paths, pre, 256)]))
    y = torch.tensor(labels)
    torch.manual_seed(0)
    model = leannet.create_model("pplcnet_x0_25", num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=steps, pct_start=0.15)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: a second thread only adds contention
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,))
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx], label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    torch.set_num_threads(threads)
    return save_weights(model.eval(), out, meta={"arch": "pplcnet_x0_25", "num_classes": 10,
                                                  "classes": classes, "preprocessing": pre})


def accuracy_rows(args, work: Path, root: Path) -> list[dict]:
    ckpt = digits_checkpoint(args, work, root)
    rows = []
    for rt in args.runtimes:
        fmt, suffix = ("onnx", ".onnx") if rt == "onnxruntime" else ("openvino", ".xml")
        q = export(ckpt, format=fmt, int8=True, calib=root / "train", eval_set=root / "val",
                   out=work / f"digits-int8{suffix}")
        top1 = q.record["top1"]
        rows.append({"runtime": rt, "checkpoint": str(ckpt), "top1_fp32": top1[f"{fmt} fp32"],
                     "top1_int8": top1[f"{fmt} int8"], "top1_pytorch": top1["pytorch"],
                     "agreement": q.record["verification"][-1]["top1_agreement"]})
    return rows


def _ms(v) -> str:
    return f"{v[0]:7.2f} ({v[1]:.2f})" if v else "      -"


def _fmt_row(r: dict) -> str:
    ratio = f"{r['leannet_fp32'][0] / r['timm_fp32'][0]:.2f}" if r.get("timm_fp32") else "-"
    speed = f"{r['leannet_fp32'][0] / r['leannet_int8'][0]:.2f}x" if r.get("leannet_int8") else "-"
    agree = f"{100 * r['int8_agreement']:.0f}%" if "int8_agreement" in r else "-"
    return (f"| {r['model']} | {r['batch']} | {r['runtime']} | {_ms(r.get('timm_fp32'))} | {_ms(r['leannet_fp32'])} | "
            f"{ratio} | {_ms(r.get('leannet_int8'))} | {speed} | {r['fp32_max_diff']:.1e} | {agree} |")


def environment(args) -> dict:
    import onnxruntime
    import openvino

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "threads": args.threads, "python": platform.python_version(), "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__, "openvino": openvino.get_version(), "leannet": leannet.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="*", help="leannet names (default: the seeds preset)")
    p.add_argument("--batch", type=lambda s: [int(b) for b in s.split(",")], default=[1, 8])
    p.add_argument("--img", type=int, default=224)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--min-time", type=float, default=2.0, help="seconds of timed calls per row")
    p.add_argument("--runtimes", type=lambda s: s.split(","), default=["onnxruntime", "openvino"])
    p.add_argument("--no-int8", action="store_true")
    p.add_argument("--accuracy-only", action="store_true", help="only the digits fp32 vs INT8 top-1")
    p.add_argument("--digits-ckpt", help="a leannet checkpoint trained on digits "
                   f"(`leannet train -c {DIGITS_CONFIG}`); default: a quick fit")
    p.add_argument("--out", help="also write the results as JSON here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root = prepare_digits()
        # Calibration for the ImageNet-shaped latency models: real images, upscaled digits.
        lat = [] if args.accuracy_only else latency_rows(args, work, root / "train")
        acc = [] if args.no_int8 else accuracy_rows(args, work, root)
    env = environment(args)
    print(f"\n{env['cpu']}, {args.threads} threads, input {args.img}x{args.img}, ORT {env['onnxruntime']}, "
          f"OpenVINO {env['openvino']} (precision hint f32), torch {env['torch']}, {env['date']}")
    print("latency ms: median (p90); ratio = leannet fp32 / timm naive fp32 (target <= 1.00); "
          "speed-up = leannet fp32 / INT8 (target >= 1.8x)\n")
    print("| model | batch | runtime | timm naive fp32 | leannet fp32 | ratio | leannet INT8 | INT8 speed-up | fp32 max diff | INT8 top-1 agree |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in lat:
        print(_fmt_row(r))
    if acc:
        print("\ndigits validation top-1 (360 images), target: INT8 loses <= 1 point\n")
        print("| runtime | PyTorch | fp32 | INT8 | lost (points) | INT8/fp32 top-1 agreement |")
        print("|---|---|---|---|---|---|")
        for a in acc:
            print(f"| {a['runtime']} | {a['top1_pytorch']:.2f} | {a['top1_fp32']:.2f} | {a['top1_int8']:.2f} | "
                  f"{a['top1_fp32'] - a['top1_int8']:+.2f} | {100 * a['agreement']:.1f}% |")
    if args.out:
        write_text(args.out, json.dumps({"environment": env, "latency": lat, "digits": acc}, indent=1))


if __name__ == "__main__":
    main()
