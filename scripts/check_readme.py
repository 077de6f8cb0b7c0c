"""Run the README's cheap `leannet` commands end to end, each in a fresh process, in a
temporary folder with its own empty `$LEANNET_HOME` and the Hugging Face hub offline.

`tests/test_readme.py` checks that every README command *parses*; this checks that the cheap
ones (those that need no input file, no network and no minutes of CPU) also *run* and exit 0.
Not part of `make test`: it starts a Python process per command (a few seconds each).

    python scripts/check_readme.py            # the cheap commands of README.md
    python scripts/check_readme.py --list     # which commands it would run, and which it skips
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.test_readme import README, _leannet_argv, shell_commands  # noqa: E402

# Sub-commands that need no input file, no network and little CPU. Others (bench, select,
# export, infer, train, detect, report, convert) read files or take minutes: parsed by the test only.
CHEAP = {"models", "weights", "profile"}
TIMEOUT_S = 120  # per command; `leannet models` counts MACs of every matching model


def cheap(argv: list[str]) -> bool:
    return argv[:1] == ["--help"] or argv[:1] == ["--version"] or (bool(argv) and argv[0] in CHEAP)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--list", action="store_true", help="print what would run and what is skipped")
    args = p.parse_args()

    commands = [a for a in map(_leannet_argv, shell_commands(README)) if a is not None]
    run = [a for a in commands if cheap(a)]
    if args.list:
        for a in commands:
            print(("run   " if cheap(a) else "skip  ") + "leannet " + " ".join(a))
        return 0

    failed = 0
    with tempfile.TemporaryDirectory(prefix="leannet-readme-") as tmp:
        env = dict(os.environ, LEANNET_HOME=str(Path(tmp) / "home"), HF_HUB_OFFLINE="1",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])))
        for a in run:
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "leannet", *a], cwd=tmp, env=env,
                                  capture_output=True, text=True, timeout=TIMEOUT_S)
            status = "ok  " if proc.returncode == 0 else f"FAIL ({proc.returncode})"
            print(f"{status} {time.perf_counter() - t0:5.1f} s  leannet {' '.join(a)}")
            if proc.returncode != 0:
                failed += 1
                print("    " + (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1])
    print(f"{len(run) - failed} of {len(run)} ran; {len(commands) - len(run)} skipped (need files, network or minutes)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
