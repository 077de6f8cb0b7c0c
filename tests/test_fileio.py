"""Atomic writes keep the usual permissions, and importing leannet leaves the umask alone."""

import os
import subprocess
import sys
from pathlib import Path

from leannet.fileio import _umask, write_text

SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        assert _umask() == 0o027
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640  # not mkstemp's 0600


def test_import_does_not_set_the_umask():
    """A umask set at import (even set and restored) races with other threads' files; watch
    every os.umask call while leannet and its file module import."""
    code = ("import os\ncalls = []\nreal = os.umask\nos.umask = lambda m: calls.append(m) or real(m)\n"
            "import leannet, leannet.fileio\nprint(calls)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": SRC}).stdout.strip()
    assert out == "[]"
