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


def cmd_train(args: argparse.Namespace) -> int:
    from leannet.train import train_from_config

    train_from_config(args.config, args.override, resume=args.resume, strict=args.strict)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from leannet.train.loop import evaluate_from_config, format_metrics

    print(format_metrics(evaluate_from_config(args.config, args.weights, args.override, strict=args.strict)))
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

    s = sub.add_parser("train", help="train a classifier from a YAML config (torchrun-ready)")
    s.add_argument("-c", "--config", required=True, help="YAML config, e.g. configs/pplcnet_x0_25_digits.yaml")
    s.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. -o optim.lr=0.2 (repeatable)")
    s.add_argument("--resume", action="store_true", help="continue from RUN.OUT_DIR/last")
    s.add_argument("--strict", action="store_true", help="fail on the first unreadable image")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("eval", help="top-1/top-5 of weights on a config's validation split")
    s.add_argument("-c", "--config", required=True)
    s.add_argument("--weights", required=True, help="a leannet .safetensors checkpoint")
    s.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE")
    s.add_argument("--strict", action="store_true", help="fail on the first unreadable image")
    s.set_defaults(func=cmd_eval)
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
