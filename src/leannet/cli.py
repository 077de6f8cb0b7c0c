"""`leannet` command line: parse, call the library, print. No logic lives here.

User errors (LeannetError, a bad option) print one line to stderr and exit 2; `--debug`
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from leannet import __version__
from leannet.errors import LeannetError


class UsageError(LeannetError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage + message; we want one line
        raise UsageError(f"{self.prog}: {message} (see --help)")


# --- commands: each is one call into the library ------------------------------------------


def cmd_models(args: argparse.Namespace) -> int:
    from leannet.report import models_table

    print(models_table(args.pattern, with_macs=not args.no_macs, fmt=args.format))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from leannet.deploy import export

    result = export(args.model, weights=args.weights, format=args.format, out=args.out, img=args.img,
                    batch=args.batch, dynamic_batch=args.dynamic_batch, dynamic_size=args.dynamic_size,
                    precision=args.precision, int8=args.int8, calib=args.calib, eval_set=args.eval,
                    opset=args.opset, simplify=args.simplify,
                    log=lambda msg: print(msg, file=sys.stderr))
    print(result.summary())
    return 0


def cmd_infer(args: argparse.Namespace) -> int:
    from leannet.deploy import infer

    failed = infer(args.model, args.images, weights=args.weights, topk=args.topk, runtime=args.runtime,
                   batch_size=args.batch_size, threads=args.threads, as_json=args.json,
                   progress=not args.no_progress)
    return 1 if failed else 0


# --- parser ----------------------------------------------------------------------------------


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

    s = sub.add_parser("export", help="re-parameterise, fold BN, export to ONNX/OpenVINO (fp32, bf16, INT8) and verify")
    s.add_argument("model", help="registry name (with --weights) or a leannet .safetensors checkpoint")
    s.add_argument("--weights", help="checkpoint for a registry name")
    s.add_argument("--format", choices=["onnx", "openvino"], default="onnx")
    s.add_argument("--out", help="artefact path (.onnx or .xml); default ./MODEL[-int8].onnx|.xml")
    s.add_argument("--img", type=_positive_int, help="square input size (default: the model's)")
    s.add_argument("--batch", type=_positive_int, default=1, help="fixed batch size (default 1)")
    s.add_argument("--dynamic-batch", action="store_true", help="symbolic batch dimension")
    s.add_argument("--dynamic-size", action="store_true", help="symbolic height and width")
    s.add_argument("--precision", choices=["f32", "fp32", "bf16"], default="fp32",
                   help="compute precision recorded for the runtime (bf16: OpenVINO only)")
    s.add_argument("--int8", action="store_true", help="post-training INT8 quantisation (needs --calib)")
    s.add_argument("--calib", help="calibration images: ImageFolder, folder or list file")
    s.add_argument("--eval", help="labelled images (ImageFolder or list file) for top-1 before/after")
    s.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 14; default 18)")
    s.add_argument("--simplify", action="store_true", help="simplify the ONNX graph with onnxslim")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("infer", help="top-k predictions for images from a model, checkpoint or exported artefact")
    s.add_argument("model", help="registry name (+ --weights), .safetensors checkpoint, .onnx or OpenVINO .xml")
    s.add_argument("images", nargs="+", help="image files and/or folders (searched recursively)")
    s.add_argument("--weights", help="checkpoint for a registry name")
    s.add_argument("--topk", type=_positive_int, default=5)
    s.add_argument("--json", action="store_true", help="one JSON object per image (path, labels, scores)")
    s.add_argument("--runtime", choices=["torch", "onnxruntime", "openvino"],
                   help="default: torch for models, onnxruntime for .onnx, openvino for .xml")
    s.add_argument("--batch-size", type=_positive_int, default=16)
    s.add_argument("--threads", type=_positive_int, help="CPU threads for the runtime")
    s.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    s.set_defaults(func=cmd_infer)
    return p


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
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        if not getattr(args, "command", None):
            build_parser().print_help()
            return 0
        return args.func(args)
    except LeannetError as e:
        if debug:
            traceback.print_exc()
        print(f"leannet: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("leannet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
