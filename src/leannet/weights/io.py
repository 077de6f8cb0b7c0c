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
from collections.abc import Mapping
from dataclasses import dataclass
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


RESET_HEAD_HINT = "pass reset_head=True (model.head_reset=true in a train config) to train a new classifier"


@dataclass(frozen=True)
class LoadReport:
    """What `load_into` put into a model. `reset`: the classifier keys left at their fresh
    initialisation (reset_head=True); `missing`/`ignored`: model keys the checkpoint lacked and
    checkpoint keys the model has no place for, both empty unless strict=False."""

    source: str
    loaded: tuple[str, ...]
    reset: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()


def classifier_keys(model: nn.Module) -> tuple[str, str]:
    """(module path, state-dict prefix) of the layer `model.reset_classifier` replaces, read off
    the model contract's `get_classifier()` (leannet and timm models both have it)."""
    get = getattr(model, "get_classifier", None)
    if get is None:
        raise WeightsError(f"{type(model).__name__} does not name its classifier (no get_classifier()); "
                           "it can only load weights whole, without reset_head")
    layer = get()
    path = next((name for name, m in model.named_modules() if m is layer), None)
    if not path:  # "" would be the whole model: resetting it would load nothing
        raise WeightsError(f"{type(model).__name__}.get_classifier() returned no layer of the model")
    return path, path + "."


def load_into(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    source: str,
    reset_head: bool = False,
    strict: bool = True,
) -> LoadReport:
    """The one way user weights enter a model: every key and shape checked before anything is
    copied, so a failed load leaves `model` untouched.

    A shape mismatch, a missing key or an unexpected key is a WeightsError naming the first
    offending key (in model order). `reset_head=True` (fine-tuning on another class count)
    leaves the classifier (`model.get_classifier()`) at its fresh initialisation and ignores
    the checkpoint's tensors under that name, whatever their shapes; nothing else may differ.
    `strict=False` (only `leannet convert --non-strict`) tolerates missing and unexpected keys
    and lists them in the report; shapes are checked regardless.
    """
    own = model.state_dict()
    reset: tuple[str, ...] = ()
    skipped_state: set[str] = set()
    if reset_head:
        _, prefix = classifier_keys(model)
        reset = tuple(k for k in own if k.startswith(prefix))
        skipped_state = {k for k in state if k.startswith(prefix)}
    body = {k: v for k, v in own.items() if k not in reset}
    for k, v in body.items():  # in model order, so "first" means first in the network
        if k in state and state[k].shape != v.shape:
            hint = f"; {RESET_HEAD_HINT}" if not reset_head and _is_head(model, k) else ""
            raise WeightsError(
                f"{source}: shape mismatch at {k!r}: model expects {tuple(v.shape)}, "
                f"checkpoint has {tuple(state[k].shape)}{hint}"
            )
    missing = tuple(k for k in body if k not in state)
    ignored = tuple(k for k in state if k not in body and k not in skipped_state)
    if strict and (missing or ignored):
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first {missing[0]!r})")
        if ignored:
            parts.append(f"{len(ignored)} unexpected (first {ignored[0]!r})")
        hint = f"; {RESET_HEAD_HINT}" if missing and not reset_head and _is_head(model, missing[0]) else ""
        raise WeightsError(f"{source}: keys do not match the model: {', '.join(parts)}{hint}")
    loaded = tuple(k for k in body if k in state)
    # strict=False on torch's side only because the reset and missing keys were decided above.
    model.load_state_dict({k: state[k] for k in loaded}, strict=False)
    return LoadReport(source, loaded, reset, missing, ignored)


def _is_head(model: nn.Module, key: str) -> bool:
    try:
        return key.startswith(classifier_keys(model)[1])
    except WeightsError:
        return False


def load_weights(model: nn.Module, path: str | Path, *, reset_head: bool = False) -> nn.Module:
    """Load a leannet-layout checkpoint file into `model` through `load_into`."""
    load_into(model, load_state_dict(path), source=str(path), reset_head=reset_head)
    return model


def model_args(meta: Mapping[str, Any], source: str, num_classes: int | None = None,
               from_tensors: int | None = None) -> dict[str, Any]:
    """The constructor arguments a checkpoint implies: `num_classes` plus the metadata's
    `model_args` (what the weights imply, e.g. PP-LCNet's head_bias).

    The class count is, in order: the explicit `num_classes`, the one the metadata records
    (every save_weights caller writes it: training, `leannet convert`, the hub cache), else
    `from_tensors`, the rows of the checkpoint's classifier weight (`classifier_classes`): a
    plain state_dict (`safetensors.torch.save_file`) says its class count in that shape. An
    explicit count the metadata contradicts is an error (loading would fail at the classifier
    anyway, with a less useful message)."""
    recorded = recorded_classes(meta)
    if recorded is not None and num_classes is not None and int(recorded) != num_classes:
        raise WeightsError(f"{source}: the metadata records num_classes={recorded}, not {num_classes}")
    n = num_classes if num_classes is not None else recorded if recorded is not None else from_tensors
    if n is None:
        raise WeightsError(f"{source}: neither the metadata nor a classifier tensor says how many classes "
                           "the checkpoint has; rewrite it with `leannet convert --num-classes N`")
    return {**meta.get("model_args", {}), "num_classes": int(n)}


def recorded_classes(meta: Mapping[str, Any]) -> int | None:
    """The class count a checkpoint's metadata records (top level, or a training config's)."""
    config = meta.get("config")
    n = meta.get("num_classes", config.get("num_classes") if isinstance(config, Mapping) else None)
    return None if n is None else int(n)


def classifier_classes(model: nn.Module, state: Mapping[str, torch.Tensor]) -> int | None:
    """The class count `state` was trained for, read off its classifier weight (the layer
    `model.get_classifier()` names: rows of a Linear, output channels of a 1x1 conv); None when
    the checkpoint has no tensor there."""
    try:
        _, prefix = classifier_keys(model)
    except WeightsError:
        return None
    weight = state.get(prefix + "weight")
    return int(weight.shape[0]) if weight is not None and weight.dim() >= 1 else None


def _existing(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    return path


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__
