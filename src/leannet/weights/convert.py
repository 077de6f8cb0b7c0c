"""Checkpoints from other code bases -> leannet state dicts, by declarative rules.

A `Layout` describes one source (timm's `lcnet_*`, PaddleClas's PPLCNet, apple's MobileOne,
...): the keys that identify it, regex renames applied in order (sed-like), an optional
block renumbering (the k-th source block becomes the k-th block of our model), per-tensor
transforms (a transposed FC, a folded dropout, a BN epsilon re-expressed), and the
constructor arguments its weights imply (a bias on PP-LCNet's head conv). The tables live in
`leannet.weights.layouts`; this module only applies them and reports what it did.

A layout that is a *different network* under a familiar name carries `refuse`: converting it
would load without error and compute something else, so it raises instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from leannet.errors import WeightsError
from leannet.fileio import sha256, write_text
from leannet.registry import build as build_model
from leannet.registry import model_info
from leannet.weights.io import LoadReport, load_into, load_state_dict, read_metadata, save_weights
from leannet.weights.layouts import DIFFERENT_NETWORKS, LAYOUTS
from leannet.weights.rules import Blocks, Layout


@dataclass
class Report:
    """What a conversion did; `mapped` pairs each source key with ours."""

    layout: str
    mapped: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # model keys the checkpoint lacks
    unexpected: list[tuple[str, str]] = field(default_factory=list)  # (source, renamed)
    filled: list[str] = field(default_factory=list)  # BN counters a source doesn't keep
    dropped: list[str] = field(default_factory=list)
    model_args: dict[str, Any] = field(default_factory=dict)
    loaded: LoadReport | None = None  # what `load_into` did (reset head keys among it)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unexpected

    def summary(self) -> str:
        lines = [f"layout: {self.layout}",
                 f"mapped: {len(self.mapped)} tensors"
                 + (f" (+{len(self.filled)} BN counters set to 0)" if self.filled else "")
                 + (f" ({len(self.dropped)} fixed buffers dropped)" if self.dropped else "")]
        if self.model_args:
            lines.append("model arguments: " + ", ".join(f"{k}={v!r}" for k, v in self.model_args.items()))
        lines.append(f"missing: {len(self.missing)}" + "".join(f"\n  {k}" for k in self.missing))
        lines.append(f"unexpected: {len(self.unexpected)}"
                     + "".join(f"\n  {s}" + (f" (as {t})" if t != s else "") for s, t in self.unexpected))
        return "\n".join(lines)


def _natural(key: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key))


def _module(key: str) -> tuple[str, str]:
    module, _, leaf = key.rpartition(".")
    return module, leaf


def _renumber(keys: list[str], blocks: Blocks, model_keys: list[str], source: str) -> dict[str, str]:
    """Old key -> new key for every key inside a block (others are left out)."""

    def prefixes(ks: list[str], pattern: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for k in ks:
            if m := re.match(pattern, k):
                out.setdefault(m.group(0), []).append(k)
        return out

    src = prefixes(keys, blocks.source)
    dst = prefixes(model_keys, blocks.target)  # dicts keep first-seen (model) order
    src_order = sorted(src, key=_natural)
    if len(src_order) != len(dst):
        raise WeightsError(f"{source}: the checkpoint has {len(src_order)} blocks, the model has "
                           f"{len(dst)}: is it another variant of the network?")
    renamed = {}
    for s, d in zip(src_order, dst, strict=True):
        if not blocks.inner:
            renamed.update({k: d + k[len(s):] for k in src[s]})
            continue
        s_mods = list(dict.fromkeys(_module(k[len(s):])[0] for k in src[s]))
        d_mods = list(dict.fromkeys(_module(k[len(d):])[0] for k in dst[d]))
        order = next((o for o in blocks.inner if set(s_mods) <= set(o)), None)
        if order is None:
            raise WeightsError(f"{source}: block {s!r} has modules {s_mods} that no known block type has")
        s_mods.sort(key=order.index)
        if len(s_mods) != len(d_mods):
            raise WeightsError(f"{source}: block {s!r} has {len(s_mods)} layers, the model's "
                               f"{d!r} has {len(d_mods)}")
        to = dict(zip(s_mods, d_mods, strict=True))
        for k in src[s]:
            module, leaf = _module(k[len(s):])
            renamed[k] = f"{d}{to[module]}.{leaf}"
    return renamed


def convert_state_dict(
    state: Mapping[str, torch.Tensor], model: nn.Module, layout: Layout, source: str = "checkpoint"
) -> tuple[dict[str, torch.Tensor], Report]:
    """Apply `layout` to `state` for `model`; returns our state dict and a report.

    Keys are not checked against the model here beyond the report: `load_into` does that
    (and names the first offending key and shapes).
    """
    if layout.refuse:
        raise WeightsError(f"{source}: {layout.refuse}")
    report = Report(layout.name)
    keys = [k for k in state if not any(re.search(p, k) for p in layout.drop)]
    report.dropped = [k for k in state if k not in keys]
    names = {}
    for k in keys:
        new = k
        for pattern, repl in layout.rename:
            new = re.sub(pattern, repl, new)
        names[k] = new
    model_keys = list(model.state_dict())
    if layout.blocks:
        moved = _renumber(list(names.values()), layout.blocks, model_keys, source)
        names = {k: moved.get(v, v) for k, v in names.items()}
    if len(set(names.values())) != len(names):
        dup = next(v for v in names.values() if list(names.values()).count(v) > 1)
        raise WeightsError(f"{source}: two checkpoint keys map to {dup!r}; layout {layout.name!r} is wrong here")
    renamed = {names[k]: state[k] for k in keys}
    out = {}
    for k, v in renamed.items():
        for pattern, fn in layout.transforms:
            if re.search(pattern, k):
                v = fn(k, v, renamed)
        out[k] = v
    own = set(model_keys)
    for k in model_keys:
        if k not in out and k.endswith(".num_batches_tracked"):
            # Not learned and unused in eval; PaddleClas and InPlaceABN don't keep it.
            out[k] = torch.tensor(0, dtype=torch.long)
            report.filled.append(k)
    report.mapped = [(k, names[k]) for k in keys if names[k] in own]
    report.unexpected = [(k, names[k]) for k in keys if names[k] not in own]
    report.missing = [k for k in model_keys if k not in out]
    report.model_args = layout.implied_args(list(state))
    return out, report


# --- files -> models --------------------------------------------------------------------------


def detect_layout(state: Mapping[str, torch.Tensor], model: nn.Module, family: str, source: str) -> Layout:
    """The layout of `state` among those known for `family`; leannet's own when the model's
    first key is there (torchvision's checkpoints, for the wrapped baselines)."""
    keys = list(state)
    for layout in LAYOUTS:
        if layout.family == family and layout.matches(keys):
            return layout
    if next(iter(model.state_dict())) in state:
        return Layout("leannet", family, detect=())
    # a family whose own table has a row named "leannet" (PP-LCNet) would list it twice
    known = ", ".join(dict.fromkeys(["leannet", *(la.name for la in LAYOUTS if la.family == family)]))
    other = [f"{la.name} ({la.family})" for la in LAYOUTS if la.family != family and la.matches(keys)]
    hint = f"; it looks like {' or '.join(other)}" if other else ""
    first = keys[0] if keys else None
    raise WeightsError(f"{source}: unknown checkpoint layout for a {family} model (first key {first!r}; "
                       f"known: {known}){hint}")


def convert_and_load(
    path: str | Path,
    name: str,
    build: Callable[..., nn.Module] | None = None,
    strict: bool = True,
    trust_pickle: bool = False,
    reset_head: bool = False,
) -> tuple[nn.Module, Report]:
    """Build model `name` and load the checkpoint at `path` into it, converting its layout
    (leannet's own layout converts to itself), through `load_into`.

    `build(**args)` makes the model (default: `create_model(name)`); it is called again with
    the arguments the checkpoint implies (e.g. `head_bias=True`) when there are any.
    `reset_head=True` keeps the built model's fresh classifier (another class count).
    """
    info = model_info(name)
    build = build or (lambda **args: build_model(info.name, **args))
    path = Path(path).expanduser()
    source = str(path)
    state = load_state_dict(path, trust_pickle=trust_pickle)
    meta = read_metadata(path) if path.suffix == ".safetensors" else {}
    if meta.get("arch") and model_info(meta["arch"]).name != info.name:
        raise WeightsError(f"{source}: holds weights for {meta['arch']!r}, not {info.name!r}")
    _refuse_different_network(path)
    model = build()
    layout = detect_layout(state, model, info.family, source)
    args = {**meta.get("model_args", {}), **layout.implied_args(list(state))}
    if args:
        model = build(**args)
    converted, report = convert_state_dict(state, model, layout, source)
    report.model_args = args
    report.loaded = load_into(model, converted, source=source, reset_head=reset_head, strict=strict)
    return model, report


def _refuse_different_network(path: Path) -> None:
    """A Hugging Face snapshot's config.json names the timm architecture; some share keys with
    a layout we convert but are other networks, and loading them would fail silently."""
    import fnmatch

    config = path.parent / "config.json"
    if not config.is_file():
        return
    try:
        arch = json.loads(config.read_text()).get("architecture", "")
    except (json.JSONDecodeError, AttributeError, OSError, UnicodeDecodeError):
        return
    for pattern, why in DIFFERENT_NETWORKS.items():
        if isinstance(arch, str) and fnmatch.fnmatch(arch, pattern):
            raise WeightsError(f"{path}: timm's {arch!r} is a different network ({why})")


def convert_checkpoint(
    src: str | Path,
    name: str,
    out: str | Path,
    strict: bool = True,
    trust_pickle: bool = False,
    num_classes: int = 1000,
    origin: dict[str, Any] | None = None,
) -> Report:
    """`leannet convert`: write `src` as a leannet checkpoint (`out`, safetensors) for model
    `name`, plus `out` with a `.json` suffix holding the same metadata for people and tools.

    Strict (the default): any missing or unexpected key is an error and nothing is written.
    Non-strict: keys the checkpoint lacks keep the model's initial values and are listed in
    the metadata under "missing". `origin` (where `src` was downloaded from: repo, revision,
    commit, URL) is recorded under "source".
    """
    info = model_info(name)
    src, out = Path(src).expanduser(), Path(out).expanduser()
    if out.suffix != ".safetensors":
        raise WeightsError(f"{out}: the output must be a .safetensors file")
    model, report = convert_and_load(
        src, info.name, build=lambda **args: build_model(info.name, num_classes=num_classes, **args),
        strict=strict, trust_pickle=trust_pickle)
    meta = {
        "arch": info.name,
        "num_classes": num_classes,
        "model_args": report.model_args,
        "config": {"num_classes": num_classes, **report.model_args},
        "preprocessing": info.preprocessing(),
        "source": {"file": src.name, "layout": report.layout, "sha256": sha256(src), **(origin or {})},
        "missing": report.missing,
    }
    save_weights(model, out, meta=meta)
    write_text(out.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")
    return report

