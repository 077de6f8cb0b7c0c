"""The layer order and the import weight of the package, held by tools rather than by review."""

import subprocess
import sys
from pathlib import Path

import pytest

from leannet.version import __version__

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}, check=True)
    return out.stdout.strip()


def test_layer_contract_and_no_cycles():
    """pyproject.toml's import-linter contracts: packages import only the layers below them,
    and no package has an import cycle inside it."""
    pytest.importorskip("importlinter", reason="import-linter is not installed (extra: dev)")
    lint = Path(sys.executable).with_name("lint-imports")
    cmd = [str(lint)] if lint.exists() else [sys.executable, "-m", "importlinter.cli"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "2 kept, 0 broken" in out.stdout


def test_import_leannet_is_lazy():
    loaded = _run("import sys, leannet; print(sorted(m for m in sys.modules if m.startswith(('leannet', 'torch'))))")
    assert loaded == "['leannet', 'leannet.version']"
    # the lazy names still resolve, and to the functions they name
    names = _run("import leannet; print(leannet.create_model.__module__, leannet.complexity.__module__, "
                 "leannet.select.__module__, callable(leannet.reparameterize))")
    assert names == "leannet.factory leannet.profile.complexity leannet.bench.select True"


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help_import_no_torch(flag):
    """The parser is built from plain data (bench.options, profile.options): answering --version or --help
    starts no torch (seconds), no torchvision and no runtime."""
    code = (f"import sys\nfrom leannet.cli import main\ntry:\n    main(['{flag}'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'numpy', 'torchvision', 'onnxruntime', 'openvino', 'onnx', 'nncf', "
            "'matplotlib', 'scipy', 'sklearn', 'skimage') if m in sys.modules))")
    printed = _run(code).splitlines()
    assert printed[-1] == "[]"
    assert flag == "--help" or printed == [f"leannet {__version__}", "[]"]
