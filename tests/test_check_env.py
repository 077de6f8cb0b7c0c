"""scripts/check_env.py: the build stops when an install changed a pinned version."""

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_env.py"


def _run(*pins: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *pins], capture_output=True, text=True)


def test_the_installed_pins_pass():
    assert _run(f"numpy=={version('numpy')}").returncode == 0


def test_a_changed_pin_stops_with_one_line_naming_it():
    out = _run("numpy==0.0.1", "no-such-package-leannet==1.0")
    assert out.returncode == 1
    assert f"numpy {version('numpy')} is installed, 0.0.1 is pinned" in out.stderr
    assert "no-such-package-leannet is not installed" in out.stderr
