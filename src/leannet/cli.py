"""`leannet` command line: parse, call the library, print. No logic lives here.

User errors (LeannetError, a bad option) print one line to stderr and exit 2; `--debug`
(anywhere on the line) adds the traceback of a LeannetError raised by a command. A usage
error (a bad option or value) is always one line.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from leannet.errors import LeannetError
from leannet.version import __version__


class UsageError(LeannetError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage + message; we want one line
        raise UsageError(f"{self.prog}: {message} (see --help)")


# --- commands: each is one call into the library ------------------------------------------


def cmd_models(args: argparse.Namespace) -> int:
    from leannet.zoo import models_table

    print(models_table(args.pattern, with_macs=not args.no_macs, fmt=args.format))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from leannet.weights import convert_checkpoint

    report = convert_checkpoint(args.src, args.model, args.out, strict=not args.non_strict,
                                trust_pickle=args.trust_pickle, num_classes=args.num_classes)
    print(report.summary())
    print(f"wrote {args.out}")
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    from leannet.weights.hub import weights_table

    print(weights_table(args.pattern, fmt=args.format))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from leannet.train import train_from_config

    train_from_config(args.config, args.override, resume=args.resume, strict=args.strict)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from leannet.train.loop import evaluate_from_config, format_metrics

    print(format_metrics(evaluate_from_config(args.config, args.weights, args.override, strict=args.strict)))
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    import json

    from leannet.profile.complexity import complexity
    from leannet.profile.table import profile_table

    if args.latency:  # measured per layer, joined with the static costs (leannet.bench.layers)
        from leannet.bench.layers import latency_table, layer_latency

        result = layer_latency(args.model, args.runtime, img=args.img, batch=args.batch,
                               threads=args.threads, deployed=args.deployed, runs=args.runs)
        top = args.top if args.top is not None else (None if args.per_layer else 15)
        sort = args.sort or ("order" if args.per_layer else "ms")  # slowest first unless --per-layer
        print(json.dumps(result) if args.json else latency_table(result, sort=sort, top=top))
        return 0
    result = complexity(args.model, img=args.img, batch=args.batch, deployed=args.deployed)
    if args.json:
        print(json.dumps(result))
    else:
        top = args.top if args.top is not None else (None if args.per_layer else 15)
        sort = args.sort or ("order" if args.per_layer else "macs")
        print(profile_table(result, sort=sort, top=top))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from leannet.bench.sweep import bench, format_rows

    sweep = bench(args.models, preset=args.preset, runtimes=args.runtimes, precisions=args.precisions,
                  batches=args.batch, threads=args.threads, img=args.img, shape=args.shape, min_time=args.min_time,
                  rounds=args.rounds, retries=args.retries, out=args.out, deployed=not args.train_form,
                  force=args.force, calib=args.calib, eval_set=args.eval, progress=not args.quiet)
    if not sweep.rows:  # every cell skipped: the notes on stderr say why
        raise LeannetError("nothing to measure: no source runs on the runtimes, precisions and shapes asked "
                           "(the notes above say why)")
    if args.report:
        from leannet.bench.html import write_html_report
        from leannet.bench.report import write_report

        write_report(args.out)
        write_html_report(args.out)
    print(format_rows(sweep.rows, args.format))
    if args.format == "table":
        print(f"results: {sweep.results} ({sweep.measured} measured, {sweep.reused} reused)"
              + (f"\nreport: {sweep.results.parent / 'report.md'}, {sweep.results.parent / 'report.html'}"
                 if args.report else ""))
    return 1 if any("error" in r for r in sweep.rows) else 0  # the failed cells are on stderr


def cmd_select(args: argparse.Namespace) -> int:
    from leannet.bench.select import select

    sel = select(args.budget_ms, models=args.models + (args.model_files or []), preset=args.preset,
                 batch=args.batch, threads=args.threads, runtimes=args.runtimes, precisions=args.precisions,
                 eval_set=args.eval, calib=args.calib, max_int8_drop=args.max_int8_drop, export=args.export,
                 out=args.out, force=args.force, min_time=args.min_time, rounds=args.rounds,
                 progress=not args.quiet, random_weights=args.random_weights)
    print(sel.summary())
    return 0 if sel.pick is not None else 1


def cmd_report(args: argparse.Namespace) -> int:
    from leannet.bench.html import write_html_report
    from leannet.bench.report import write_report

    print(f"wrote {write_report(args.out, sources=args.results)}, {write_html_report(args.out, sources=args.results)}")
    return 0


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _name_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]
def cmd_export(args: argparse.Namespace) -> int:
    from leannet.deploy import export

    result = export(args.model, weights=args.weights, format=args.format, out=args.out, img=args.img,
                    batch=args.batch, dynamic_batch=args.dynamic_batch, dynamic_size=args.dynamic_size,
                    precision=args.precision, int8=args.int8, calib=args.calib, eval_set=args.eval,
                    opset=args.opset, simplify=args.simplify, random_weights=args.random_weights,
                    log=lambda msg: print(msg, file=sys.stderr))
    print(result.summary())
    return 0


def cmd_infer(args: argparse.Namespace) -> int:
    from leannet.deploy import infer

    failed = infer(args.model, args.images, weights=args.weights, topk=args.topk, runtime=args.runtime,
                   batch_size=args.batch_size, threads=args.threads, as_json=args.json,
                   progress=not args.no_progress, random_weights=args.random_weights)
    return 1 if failed else 0

# --- detect: the slim RetinaNet document detector -----------------------------------------------


def _print_result(result: dict) -> None:
    import json

    print(json.dumps(result, indent=1, default=str))


def cmd_detect_train(args: argparse.Namespace) -> int:
    from leannet.detect.train import train_from_config

    _print_result(train_from_config(args.config, args.override, resume=args.resume, strict=args.strict))
    return 0


def cmd_detect_eval(args: argparse.Namespace) -> int:
    from leannet.detect.evaluate import evaluate_weights

    _print_result(evaluate_weights(args.weights, ann=args.ann, images=args.images, config=args.config,
                                   overrides=args.override, strict=args.strict, speed=not args.no_speed,
                                   runtime=args.runtime, threads=args.threads))
    return 0


def cmd_detect_infer(args: argparse.Namespace) -> int:
    from leannet.detect.predict import infer

    path, failed = infer(args.weights, args.images, args.out, score_thr=args.score_thr, runtime=args.runtime)
    print(path)
    return 1 if failed else 0


def cmd_detect_export(args: argparse.Namespace) -> int:
    from leannet.detect.export import export_detector

    result = export_detector(args.weights, format=args.format, out=args.out, int8=args.int8, calib=args.calib,
                             ann=args.ann, images=args.images, opset=args.opset,
                             log=lambda msg: print(msg, file=sys.stderr))
    print(result.summary())
    return 0


def cmd_detect_pseudo_label(args: argparse.Namespace) -> int:
    from leannet.detect.predict import pseudo_label

    _print_result(pseudo_label(args.teacher, args.images, args.out, score_thr=args.score_thr))
    return 0


def cmd_detect_synth(args: argparse.Namespace) -> int:
    from leannet.detect.synthetic import generate

    print(generate(args.out, args.num_images, seed=args.seed, image_size=args.size, difficulty=args.difficulty))
    return 0


def _run_args(s: argparse.ArgumentParser, config_help: str, required: bool, strict: str) -> None:
    """The options every training command shares (classifier and detector configs alike)."""
    s.add_argument("-c", "--config", required=required, help=config_help)
    s.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. -o schedule.epochs=5 (repeatable)")
    s.add_argument("--resume", action="store_true", help="continue from RUN.OUT_DIR/last")
    s.add_argument("--strict", action="store_true", help=strict)


def _add_detect(sub) -> None:
    d = sub.add_parser("detect", help="slim RetinaNet document detector: train, eval, infer, export, pseudo-label")
    dsub = d.add_subparsers(dest="detect_command", metavar="COMMAND", parser_class=_Parser, required=True)

    s = dsub.add_parser("train", help="train a detector from a YAML config")
    _run_args(s, "YAML config (defaults: the slim detector on synthetic documents)", required=False,
              strict="stop at the first bad annotation")
    s.set_defaults(func=cmd_detect_train)

    runtimes = ["eager", "onnxruntime", "openvino", "executorch", "ncnn"]
    s = dsub.add_parser("eval", help="COCO mAP, params, MACs and CPU FPS of detector weights or an export")
    s.add_argument("--weights", required=True,
                   help="a detector .safetensors written by detect train, or its .onnx/.xml/.pte/.param export")
    s.add_argument("--runtime", choices=runtimes,
                   help="default: eager (PyTorch) for .safetensors, onnxruntime for .onnx, openvino for .xml; "
                   ".pte/.param run on their engine")
    s.add_argument("--ann", help="COCO annotation file (default: data.val of -c CONFIG)")
    s.add_argument("--images", help="image folder of --ann (default: the folder of --ann)")
    s.add_argument("-c", "--config", help="YAML config whose data.val to evaluate on")
    s.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE")
    s.add_argument("--strict", action="store_true", help="stop at the first bad annotation")
    s.add_argument("--no-speed", action="store_true", help="skip the batch-1 FPS measurement")
    s.add_argument("--threads", type=_positive_int, help="CPU threads for the runtime (default: its own)")
    s.set_defaults(func=cmd_detect_eval)

    s = dsub.add_parser("infer", help="draw detections on images to PNG and write JSON")
    s.add_argument("images", nargs="+", help="image files and/or folders (searched recursively)")
    s.add_argument("--weights", required=True, help="detector .safetensors, or its .onnx/.xml/.pte/.param export")
    s.add_argument("--runtime", choices=runtimes,
                   help="default: eager (PyTorch) for .safetensors, onnxruntime for .onnx, openvino for .xml; "
                   ".pte/.param run on their engine")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--score-thr", type=float, default=0.3)
    s.set_defaults(func=cmd_detect_infer)

    s = dsub.add_parser("export", help="export a detector to ONNX / OpenVINO (fp32 or INT8), ExecuTorch or ncnn, and verify it")
    s.add_argument("weights", help="detector .safetensors written by detect train")
    s.add_argument("--format", choices=["onnx", "openvino", "executorch", "ncnn"], default="onnx")
    s.add_argument("--out", help="artefact path (.onnx or .xml); default beside WEIGHTS")
    s.add_argument("--int8", action="store_true", help="post-training INT8 quantisation (needs --calib)")
    s.add_argument("--calib", help="calibration images: a folder (searched recursively) or a list file")
    s.add_argument("--ann", help="COCO file of held-out images: parity on them and mAP of PyTorch vs the artefact")
    s.add_argument("--images", help="image folder of --ann (default: the folder of --ann)")
    s.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 14; default 18)")
    s.set_defaults(func=cmd_detect_export)

    s = dsub.add_parser("pseudo-label", help="label unlabeled images with a teacher detector (COCO JSON)")
    s.add_argument("--teacher", required=True, help="teacher detector .safetensors (carries its config)")
    s.add_argument("--images", required=True, help="folder of unlabeled images")
    s.add_argument("--score-thr", type=float, default=0.5, help="keep teacher boxes scoring at least this")
    s.add_argument("--out", required=True, help="COCO JSON to write")
    s.set_defaults(func=cmd_detect_pseudo_label)

    s = dsub.add_parser("synth", help="write a synthetic document dataset (COCO JSON + JPEGs)")
    s.add_argument("--out", required=True)
    s.add_argument("-n", "--num-images", type=int, default=256)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--size", type=int, default=256, help="image side in pixels")
    s.add_argument("--difficulty", choices=["standard", "hard"], default="standard",
                   help="hard: + receipts (3 classes), stronger perspective, camera blur, low contrast, "
                   "overlapping documents")
    s.set_defaults(func=cmd_detect_synth)


# --- parser ----------------------------------------------------------------------------------


def cmd_lab(args: argparse.Namespace) -> int:
    # leannet.lab: the seeds' design rules as paired micro-benchmarks on this machine
    import json

    from leannet.lab.run import markdown, run_lab, table

    def progress(rule, verdicts) -> None:
        if args.format == "table":
            print(f"{rule.name}: " + ", ".join(f"{v.runtime} {v.ratio:.2f} {v.holds}" for v in verdicts), flush=True)

    from leannet.runtime.timing import usable_cores

    threads = args.threads or len(usable_cores())
    verdicts = run_lab(args.rules, tuple(args.runtimes), threads, args.rounds, args.round_time, progress)
    if args.format == "json":
        print(json.dumps([v.as_dict() for v in verdicts]))
    elif args.format == "md":
        print(markdown(verdicts, threads, args.rounds, args.round_time))
    else:
        print(table(verdicts))
    return 0


def _add_lab(sub) -> None:
    from leannet.lab.options import ROUND_TIME, ROUNDS, RULE_NAMES, RUNTIMES

    s = sub.add_parser("lab", help="test the seeds' design rules (ShuffleNetV2 G1-G4, PP-LCNet, MobileOne, ...) here")
    s.add_argument("rules", nargs="*", metavar="RULE", help=f"rules to run (default all): {', '.join(RULE_NAMES)}")
    s.add_argument("--runtimes", nargs="+", choices=RUNTIMES, default=list(RUNTIMES))
    s.add_argument("--threads", type=_positive_int, help="threads per runtime (default: usable cores)")
    s.add_argument("--rounds", type=_positive_int, default=ROUNDS, help=f"interleaved rounds (default {ROUNDS})")
    s.add_argument("--round-time", type=float, default=ROUND_TIME, help=f"seconds per cell per round (default {ROUND_TIME})")
    s.add_argument("--format", choices=("table", "md", "json"), default="table",
                   help="md: the verdict table with machine, versions and date (docs/lab.md)")
    s.set_defaults(func=cmd_lab)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="leannet", description="Hardware-aware efficient CNNs: model zoo, profiler, "
                "latency benchmark, deploy path, trainer.")
    p.add_argument("--version", action="version", version=f"leannet {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser("models", help="list registered models with params and MACs")
    s.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'pplcnet*'")
    s.add_argument("--no-macs", action="store_true", help="skip counting MACs (faster)")
    s.add_argument("--format", choices=["table", "markdown", "json"], default="table")
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("convert", help="convert a timm / torchvision / official checkpoint to leannet's format")
    s.add_argument("src", help="checkpoint: .safetensors, .pth/.pt/.bin/.pth.tar, or PaddleClas .pdparams")
    s.add_argument("--model", required=True, help="leannet model name (or timm alias), e.g. pplcnet_x1_0")
    s.add_argument("--out", required=True, help="output .safetensors (a .json sidecar is written beside it)")
    s.add_argument("--num-classes", type=int, default=1000, help="classes of the checkpoint's classifier")
    s.add_argument("--non-strict", action="store_true",
                   help="write even if keys are missing or unexpected (listed in the report and metadata)")
    s.add_argument("--trust-pickle", action="store_true",
                   help="allow .pdparams (Python pickles); only numpy arrays are admitted")
    s.set_defaults(func=cmd_convert)

    s = sub.add_parser("weights", help="each model's pretrained weights: source, license, top-1, cached here?")
    s.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'pplcnet*'")
    s.add_argument("--format", choices=["table", "json"], default="table")
    s.set_defaults(func=cmd_weights)

    s = sub.add_parser("train", help="train a classifier from a YAML config (torchrun-ready)")
    _run_args(s, "YAML config, e.g. configs/pplcnet_x0_25_digits.yaml", required=True,
              strict="fail on the first unreadable image")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("eval", help="top-1/top-5 of weights on a config's validation split")
    s.add_argument("-c", "--config", required=True)
    s.add_argument("--weights", required=True, help="a leannet .safetensors checkpoint")
    s.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE")
    s.add_argument("--strict", action="store_true", help="fail on the first unreadable image")
    s.set_defaults(func=cmd_eval)

    from leannet.profile.options import SORT_KEYS

    s = sub.add_parser("profile", help="params, MACs, memory access and activations, per layer")
    s.add_argument("model", help="registered name or timm alias, e.g. pplcnet_x1_0")
    s.add_argument("--img", type=int, default=224, help="input height and width (default 224)")
    s.add_argument("--batch", type=int, default=1)
    s.add_argument("--deployed", action="store_true",
                   help="profile the re-parameterised, BN-folded form (what an export runs)")
    s.add_argument("--json", action="store_true", help="print one JSON object (the Python API's result)")
    s.add_argument("--per-layer", action="store_true", help="every layer in execution order")
    s.add_argument("--sort", choices=SORT_KEYS, help="sort layers, largest first (default: macs)")
    s.add_argument("--top", type=int, help="show only the first N layers (default 15; all with --per-layer)")
    s.add_argument("--latency", action="store_true",
                   help="also measure each layer's time under --runtime's own profiler")
    s.add_argument("--runtime", choices=("eager", "onnxruntime", "openvino"), default="eager",
                   help="runtime for --latency (default eager; the others run the deployed export)")
    s.add_argument("--threads", type=int, help="threads for --latency (default: usable cores)")
    s.add_argument("--runs", type=int, default=20, help="profiled runs for --latency (default 20)")
    s.set_defaults(func=cmd_profile)

    from leannet.bench.options import DEFAULT_RUNTIMES, ENGINES, INSTALLED, PRESETS, RUNTIMES

    def measure_args(s: argparse.ArgumentParser) -> None:
        s.add_argument("--preset", choices=sorted(PRESETS), help="a named list of models, e.g. seeds")
        s.add_argument("--runtimes", type=_name_list,
                       help=f"comma-separated (default {','.join(DEFAULT_RUNTIMES)}, and the engine of each "
                       f".pte/.param/.tflite given; of {','.join(RUNTIMES)}), "
                       f"or '{INSTALLED}': every engine installed here ({','.join(ENGINES)})")
        s.add_argument("--precisions", type=_name_list, default=["fp32"],
                       help="comma-separated fp32,bf16,fp16,int8 (default fp32); a runtime runs those it supports")
        s.add_argument("--threads", type=_positive_int, help="threads for every runtime (default: usable cores)")
        s.add_argument("--min-time", type=float, default=3.0,
                       help="seconds of timed calls per cell, split over the rounds (default 3; 1 s read "
                       "5-15%% apart between two sweeps on a 2-vCPU VM, 3 s 1%%)")
        s.add_argument("--rounds", type=_positive_int, default=10,
                       help="interleaved rounds: every cell is timed once per round, in shuffled order (default 10)")
        s.add_argument("--calib", help="calibration images for INT8 (default: generated inputs, latency only)")
        s.add_argument("--eval", help="labelled images (ImageFolder or list file): measure top-1 of every cell")
        s.add_argument("--out", default="runs/bench", help="results.jsonl (appended, reused as a cache) goes here")
        s.add_argument("--force", action="store_true", help="re-measure cells already in the results file")
        s.add_argument("--quiet", action="store_true", help="no progress on stderr")

    s = sub.add_parser("bench", help="measure latency per model x runtime x precision x batch on this machine")
    s.add_argument("models", nargs="*", help="registered names, shell patterns ('pplcnet*'), checkpoints "
                   "(.safetensors) or exported artefacts (.onnx, .xml); detector files are timed as a "
                   "whole pipeline per image at their own size, batch 1")
    measure_args(s)
    s.add_argument("--batch", type=_int_list, help="comma-separated batch sizes (default 1)")
    s.add_argument("--img", type=_size, help="input size: a side (224) or HxW (256x320); default 224 for "
                   "models, an artefact's own size")
    s.add_argument("--shape", type=_int_list, metavar="N,C,H,W",
                   help="the whole input shape, e.g. 1,3,256,320 (as OpenVINO benchmark_app's -shape): "
                   "needed by artefacts with dynamic dimensions")
    s.add_argument("--retries", type=int, default=2,
                   help="re-measure contended cells at the end up to this many times (default 2)")
    s.add_argument("--train-form", action="store_true", help="benchmark the un-folded train-time form")
    s.add_argument("--report", action="store_true", help="also write report.md, PNG plots and report.html")
    s.add_argument("--format", choices=["table", "csv", "json"], default="table", help="stdout format")
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("select", help="which model, runtime and precision to ship here under a latency budget")
    s.add_argument("model_files", nargs="*", metavar="CHECKPOINT",
                   help="checkpoints (.safetensors) or artefacts to choose among, besides --models")
    s.add_argument("--budget-ms", type=float, required=True, help="latency budget per batch in milliseconds")
    s.add_argument("--models", type=_name_list, default=[], help="comma-separated names or patterns, e.g. 'pplcnet*,mobileone_s0'")
    measure_args(s)
    s.add_argument("--batch", type=_positive_int, default=1, help="batch size (default 1)")
    s.add_argument("--max-int8-drop", type=float, default=1.0,
                   help="leave out INT8 cells losing more top-1 points than this vs fp32 (default 1.0)")
    s.add_argument("--export", metavar="DIR", help="write the pick here with its published weights, as a verified "
                   "artefact with its sidecar (refused when its weights can't be had here)")
    s.add_argument("--random-weights", action="store_true",
                   help="with --export: write the pick even without its weights, random (latency only; the sidecar says so)")
    s.set_defaults(func=cmd_select)

    s = sub.add_parser("report", help="report.md + plots and report.html from results files (several machines: a column each)")
    s.add_argument("results", nargs="+", help="results.jsonl files written by bench/select")
    s.add_argument("--out", default="runs/report", help="folder for report.md, the PNGs and report.html")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("export", help="re-parameterise, fold BN, export to ONNX/OpenVINO (fp32, bf16, INT8) and verify")
    s.add_argument("model", help="registry name (its published weights, or --weights) or a leannet .safetensors checkpoint")
    s.add_argument("--weights", help="checkpoint for a registry name (a plain state_dict is fine)")
    s.add_argument("--random-weights", action="store_true",
                   help="a registry name without published weights here: export it random (latency only; the sidecar says so)")
    s.add_argument("--format", choices=["onnx", "openvino", "executorch", "ncnn", "coreml"], default="onnx")
    s.add_argument("--out", help="artefact path (.onnx, .xml, .pte or ncnn .param); default ./MODEL[-int8].<suffix>")
    s.add_argument("--img", type=_positive_int, help="square input size (default: the model's)")
    s.add_argument("--batch", type=_positive_int, default=1, help="fixed batch size (default 1)")
    s.add_argument("--dynamic-batch", action="store_true", help="symbolic batch dimension")
    s.add_argument("--dynamic-size", action="store_true", help="symbolic height and width")
    s.add_argument("--precision", choices=["f32", "fp32", "bf16"], default="fp32",
                   help="compute precision recorded for the runtime (bf16: OpenVINO only)")
    s.add_argument("--int8", action="store_true", help="post-training INT8 quantisation (needs --calib)")
    s.add_argument("--calib", help="calibration images: a folder (searched recursively) or a list file (labels optional)")
    s.add_argument("--eval", help="labelled images (ImageFolder or list file) for top-1 before/after")
    s.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 14; default 18)")
    s.add_argument("--simplify", action="store_true", help="simplify the ONNX graph with onnxslim")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("infer", help="top-k predictions for images from a model, checkpoint or exported artefact")
    s.add_argument("model", help="registry name (its published weights, or --weights), .safetensors checkpoint, "
                   ".onnx or OpenVINO .xml")
    s.add_argument("images", nargs="+", help="image files and/or folders (searched recursively)")
    s.add_argument("--weights", help="checkpoint for a registry name (a plain state_dict is fine)")
    s.add_argument("--random-weights", action="store_true",
                   help="a registry name without published weights here: run it random (its outputs mean nothing)")
    s.add_argument("--topk", type=_positive_int, default=5)
    s.add_argument("--json", action="store_true", help="one JSON object per image (path, labels, scores)")
    s.add_argument("--runtime", choices=["eager", "onnxruntime", "openvino", "executorch", "ncnn", "litert"],
                   help="default: eager (PyTorch) for models, onnxruntime for .onnx, openvino for .xml; "
                        ".pte/.param/.tflite run on their engine")
    s.add_argument("--batch-size", type=_positive_int, default=16)
    s.add_argument("--threads", type=_positive_int, help="CPU threads for the runtime")
    s.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    s.set_defaults(func=cmd_infer)

    _add_detect(sub)
    _add_lab(sub)
    return p


def _size(text: str) -> str:
    h, _, w = text.lower().partition("x")
    if not (h.isdigit() and int(h) > 0 and (not w or (w.isdigit() and int(w) > 0))):
        raise argparse.ArgumentTypeError(f"expected a side (224) or HxW (256x320), got {text!r}")
    return text.lower()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv  # honoured anywhere on the line (`leannet bench --debug ...` too)
    argv = [a for a in argv if a != "--debug"]
    try:
        args = build_parser().parse_args(argv)
        if not getattr(args, "command", None):
            build_parser().print_help()
            return 0
        return args.func(args)
    except LeannetError as e:
        if debug and not isinstance(e, UsageError):  # a usage error is one line: there is no bug to trace
            traceback.print_exc()
        print(f"leannet: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("leannet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
