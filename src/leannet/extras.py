"""Optional dependencies: which extra brings which package, and one error that says so.

The core install (`pip install leannet`) creates, profiles, converts and benchmarks models in
PyTorch. Everything else is an extra, named in the README's Install section:
`deploy` (ONNX, ONNX Runtime, OpenVINO, NNCF), `report` (plots, rank correlations and the HTML report),
`data` (the built-in digits and synthetic documents), `detect`, `train`, `dev`,
`mobile` (ExecuTorch, ncnn + pnnx, LiteRT, coremltools), `all`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from leannet.errors import LeannetError

EXTRA = {  # importable name -> the extra that installs it
    "onnx": "deploy", "onnxscript": "deploy", "onnxruntime": "deploy", "openvino": "deploy",
    "nncf": "deploy", "onnxslim": "deploy",
    "matplotlib": "report", "scipy": "report", "plotly": "report",
    "sklearn": "data", "skimage": "data",
    "pycocotools": "detect",
    "timm": "dev", "fvcore": "dev",
    "executorch": "mobile", "ncnn": "mobile", "pnnx": "mobile", "ai_edge_litert": "mobile",
    "coremltools": "mobile",
}


class MissingExtraError(LeannetError):
    """A feature whose optional dependency is not installed."""


def require(module: str, what: str) -> ModuleType:
    """Import `module` (a top-level name), or say which extra to install for `what`."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = EXTRA.get(module.split(".")[0], "all")
        raise MissingExtraError(f"{what} needs {module.split('.')[0]}, which is not installed: "
                                f"pip install 'leannet[{extra}]'") from None
