"""leannet's weight format is a `.safetensors` file whose metadata holds a JSON record
(`{"arch": ..., "preprocessing": ..., ...}`) so the file alone rebuilds the model.

Other formats are read without executing code: `.pth/.pt/.bin` only through
`torch.load(weights_only=True)`, which refuses any pickled object that is not a tensor or a
plain container. PaddleClas `.pdparams` files are plain pickles: they are read only when the
caller says it trusts the file, and even then through an unpickler that can build numpy
arrays and nothing else.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from leannet.errors import WeightsError
from leannet.fileio import atomic_path

META_KEY = "leannet"


def save_weights(model: nn.Module | dict[str, torch.Tensor], path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write a state dict (or a module's) and `meta` atomically to `path` (.safetensors)."""
    state = model.state_dict() if isinstance(model, nn.Module) else model
    # safetensors refuses shared storage; contiguous clones make every tensor its own.
    tensors = {k: v.detach().contiguous().clone() for k, v in state.items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(meta or {})})
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON record stored with a leannet `.safetensors` file ({} when there is none)."""
    from safetensors import safe_open

    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({_first_line(e)})") from None
    return json.loads(meta.get(META_KEY, "{}"))


def load_state_dict(path: str | Path, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Read a checkpoint's tensors without running code from it.

    Accepts `.safetensors` and torch zip/legacy files; a training checkpoint that nests the
    weights under "state_dict", "model", "model_ema" or "module" is unwrapped. `.pdparams`
    (PaddlePaddle) needs `trust_pickle=True`, see `load_pdparams`.
    """
    path = _existing(path)
    if path.suffix == ".pdparams":
        return load_pdparams(path, trust_pickle)
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as e:
            raise WeightsError(f"{path}: corrupt or truncated safetensors file ({_first_line(e)})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise WeightsError(
            f"{path}: refused to load: the file holds pickled objects other than tensors "
            f"({_first_line(e)}); convert it to safetensors from a trusted environment"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise WeightsError(f"{path}: corrupt or truncated checkpoint ({_first_line(e)})") from None
    return _unwrap(obj, path)


class _Refused(pickle.UnpicklingError):
    pass


class _NumpyOnly(pickle.Unpickler):
    """Builds numpy arrays (and the dicts holding them); refuses every other global, so a
    pickle's `__reduce__` can't name a function to call."""

    ALLOWED = frozenset({
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),  # numpy < 2 module path
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),  # pickle protocol 5
        ("numpy._core.numeric", "_frombuffer"),
        ("collections", "OrderedDict"),
    })

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("_codecs", "encode"):
            return _latin1  # how pickle protocol 2 stores an array's bytes
        if (module, name) not in self.ALLOWED:
            raise _Refused(f"the file names '{module}.{name}', which is not a numpy array")
        return super().find_class(module, name)


def _latin1(text: str, encoding: str = "utf-8") -> bytes:
    if encoding not in ("latin1", "latin-1"):
        raise _Refused(f"the file calls _codecs.encode with {encoding!r}, not an array's latin1 bytes")
    return text.encode("latin1")


# `paddle.save` adds this map of structured names -> Paddle's internal parameter names.
_PADDLE_NAME_TABLE = "StructuredToParameterName@@"


def load_pdparams(path: str | Path, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """A PaddlePaddle `.pdparams` state dict (a pickle of numpy arrays) as torch tensors.

    Pickles can run code, so this needs `trust_pickle=True`; even then only numpy arrays are
    admitted (any other global in the file stops the load before it is called).
    """
    import numpy as np

    path = _existing(path)
    if not trust_pickle:
        raise WeightsError(
            f"{path}: .pdparams files are Python pickles; load them only if you trust the file, "
            "with `leannet convert --trust-pickle` (numpy arrays only are admitted)"
        )
    try:
        with open(path, "rb") as f:
            obj = _NumpyOnly(f).load()
    except _Refused as e:
        raise WeightsError(f"{path}: refused to load: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise WeightsError(f"{path}: corrupt or truncated pickle ({_first_line(e)})") from None
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: expected a dict of arrays, found {type(obj).__name__}")
    obj.pop(_PADDLE_NAME_TABLE, None)
    bad = next((k for k, v in obj.items() if not isinstance(v, np.ndarray)), None)
    if bad is not None:
        raise WeightsError(f"{path}: entry {bad!r} is a {type(obj[bad]).__name__}, not an array")
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in obj.items()}


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "model", "model_ema", "module", "params"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    # DataParallel/DDP checkpoints prefix every key with "module.".
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def load_weights(model: nn.Module, path: str | Path, strict: bool = True) -> nn.Module:
    """Load a leannet-layout checkpoint into `model`; mismatches name the first offending key."""
    state = load_state_dict(path)
    check_state_dict(model, state, source=str(path), strict=strict)
    model.load_state_dict(state, strict=strict)
    return model


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str, strict: bool = True) -> None:
    own = model.state_dict()
    for k, v in own.items():  # in model order, so "first" means first in the network
        if k in state and state[k].shape != v.shape:
            raise WeightsError(
                f"{source}: shape mismatch at {k!r}: model expects {tuple(v.shape)}, "
                f"checkpoint has {tuple(state[k].shape)}"
            )
    if strict:
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"{len(missing)} missing (first {missing[0]!r})")
            if unexpected:
                parts.append(f"{len(unexpected)} unexpected (first {unexpected[0]!r})")
            raise WeightsError(f"{source}: keys do not match the model: {', '.join(parts)}")


def _existing(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    return path


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__
