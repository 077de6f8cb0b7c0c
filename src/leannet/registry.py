"""One registry of model builders, each entry carrying the facts its paper publishes.

`register` sits next to each builder; a second registration of a name is an error (no silent
overwrite). Published numbers are stored as the paper states them, with the source, so that
docs and the benchmark report can set our measurements beside them.

A builder is a plain function taking keyword-only arguments and no `**kwargs`
(`def pplcnet_x1_0(*, num_classes: int = 1000, ...) -> PPLCNet`), importable by its name from
its family's module; `register` refuses any other shape. So a misspelt keyword is Python's own
TypeError when the builder is called directly, and `build` can name the accepted keywords
from the signature instead of reading error messages.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from leannet.errors import ConfigError, UnknownModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True, kw_only=True)
class Published:
    """Numbers from a paper or an official repository, with where they come from.

    Keyword-only: eight positional numbers in a row are easy to shift by one unnoticed."""

    source: str  # e.g. "arXiv:2109.15099 Table 2"
    params_m: float | None = None  # millions, train-time form unless noted
    macs_m: float | None = None  # millions of multiply-accumulates at `input_size`
    top1: float | None = None  # ImageNet-1k top-1 %, without distillation unless noted
    latency_ms: float | None = None
    latency_hw: str | None = None  # hardware/runtime the latency was measured on
    params_form: str = "train"  # "deployed" when the paper counts the re-parameterised model
    note: str = ""  # why our count differs from the paper's, where it does


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """What a model needs around it: preprocessing, and what the paper claims."""

    name: str
    family: str
    builder: Callable[..., Any]
    published: Published
    aliases: tuple[str, ...] = ()
    input_size: tuple[int, int, int] = (3, 224, 224)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"
    crop_pct: float = 0.875
    # "rgb", or "bgr" for weights trained on OpenCV's channel order (megvii's ShuffleNetV2
    # code, hence SNet). Scale lives in mean/std, applied to [0, 1] pixels: mean 0 and std
    # 1/255 feed 0-255 values unnormalised, as those trainers do.
    channel_order: str = "rgb"
    reparameterizable: bool = False  # has multi-branch train-time blocks
    extra: dict[str, Any] = field(default_factory=dict)

    def preprocessing(self) -> dict[str, Any]:
        return {
            "input_size": list(self.input_size),
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "crop_pct": self.crop_pct,
            "channel_order": self.channel_order,
        }


_MODELS: dict[str, ModelInfo] = {}
_ALIASES: dict[str, str] = {}


def register(
    name: str,
    *,
    family: str,
    published: Published,
    aliases: tuple[str, ...] = (),
    **cfg: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register `fn` as the builder of `name`. Duplicate names or aliases raise, and
    so does a builder that takes positional arguments or `**kwargs` (see the module docstring)."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        loose = [p.name for p in inspect.signature(fn).parameters.values()
                 if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        if loose:
            raise TypeError(f"builder of {name!r} must take keyword-only arguments and no **kwargs; "
                            f"it takes {', '.join(loose)}")
        for key in (name, *aliases):
            if key in _MODELS or key in _ALIASES:
                raise ValueError(f"model name {key!r} is registered twice")
        info = ModelInfo(name=name, family=family, builder=fn, published=published,
                         aliases=tuple(aliases), **cfg)
        _MODELS[name] = info
        for alias in aliases:
            _ALIASES[alias] = name
        return fn

    return wrap


def _load_families() -> None:
    # Importing leannet.models registers every family. The registry discovers them by name at
    # first use, as a plugin registry finds its plugins, so that it stays below the model
    # files that import it (the layer contract in pyproject.toml).
    importlib.import_module("leannet.models")


def list_models(pattern: str = "*", family: str | None = None) -> list[str]:
    """Registered names matching a shell-style `pattern` (aliases match too), sorted."""
    _load_families()
    names = set()
    for name, info in _MODELS.items():
        if family is not None and info.family != family:
            continue
        if fnmatch.fnmatch(name, pattern) or any(fnmatch.fnmatch(a, pattern) for a in info.aliases):
            names.add(name)
    return sorted(names)


def resolve(name: str) -> str:
    """The canonical name for `name` or one of its aliases."""
    _load_families()
    if name in _MODELS:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    candidates = list(_MODELS) + list(_ALIASES)
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)
    close = [_ALIASES.get(c, c) for c in close]
    hint = f"; did you mean {', '.join(dict.fromkeys(close))}?" if close else "; see `leannet models`"
    raise UnknownModelError(f"unknown model {name!r}{hint}")


def model_info(name: str) -> ModelInfo:
    return _MODELS[resolve(name)]


def builder_args(name: str) -> list[str]:
    """The keyword arguments the builder of `name` accepts, in signature order."""
    return list(inspect.signature(model_info(name).builder).parameters)


def build(name: str, **kwargs: Any) -> Any:
    """Call the registered builder of `name` with `kwargs` and attach its `ModelInfo` as
    `pretrained_cfg`. An argument the builder does not take is a one-line ConfigError naming
    it and the accepted ones (checked against the signature before the call, so a TypeError
    from inside a builder is never mistaken for a user's typo).
    (`leannet.create_model` adds weights and feature extraction on top.)"""
    info = model_info(name)
    accepted = builder_args(info.name)
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        close = [c for k in unknown for c in difflib.get_close_matches(k, accepted, n=1)]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"{info.name}: unknown argument {', '.join(map(repr, unknown))}{hint} "
                          f"(it takes {', '.join(accepted)})")
    model = info.builder(**kwargs)
    model.pretrained_cfg = info
    return model
