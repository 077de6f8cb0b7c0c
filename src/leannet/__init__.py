"""leannet: hardware-aware efficient CNNs, chosen by measured latency.

The top level is lazy (PEP 562): `import leannet` loads nothing but this file and the
version; `leannet.create_model` and friends import their module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from leannet.version import __version__

_LAZY = {
    "create_model": "leannet.factory",
    "list_models": "leannet.registry",
    "reparameterize": "leannet.deploy.reparam",
    "complexity": "leannet.profile.complexity",
    "select": "leannet.bench.select",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'leannet' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
