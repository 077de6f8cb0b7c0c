"""Fail when the project's environment is not the one it pins: `pip check` finds a broken
requirement, or an installed version differs from a pin given on the command line
(`python scripts/check_env.py torch==2.14.1 torchvision==0.29.1`, the Makefile's TORCH_SPEC).

Some optional tools (the LiteRT converter, for one) downgrade packages beside this project's
pins when installed into its environment; this check makes such a change stop the build with
one line instead of passing silently. Run by `make` after every install, so CI runs it too."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version


def main(pins: list[str]) -> int:
    bad = []
    for pin in pins:
        name, _, want = pin.partition("==")
        try:
            have = version(name)
        except PackageNotFoundError:
            bad.append(f"{name} is not installed (pinned {want})")
            continue
        # a local build tag (2.14.1+cpu) is the pinned release
        if want and have.split("+")[0] != want:
            bad.append(f"{name} {have} is installed, {want} is pinned")
    check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    if check.returncode != 0:
        bad += [line for line in check.stdout.splitlines() if line.strip()]
    for line in bad:
        print(f"check_env: {line}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
