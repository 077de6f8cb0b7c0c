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


def cmd_convert(args: argparse.Namespace) -> int:
    from leannet.weights import convert_checkpoint

    report = convert_checkpoint(args.src, args.model, args.out, strict=not args.non_strict,
                                trust_pickle=args.trust_pickle, num_classes=args.num_classes)
    print(report.summary())
    print(f"wrote {args.out}")
    return 0


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
    return p


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
