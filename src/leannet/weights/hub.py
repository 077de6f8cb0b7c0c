"""`create_model(name, pretrained=...)`: find the checkpoint, download it, convert it once,
cache the result and check it on every load.

`pretrained` may be:
- `True`: the model's default source (`leannet.weights.sources`);
- `"hf-hub:ORG/REPO"` or `"hf-hub:ORG/REPO@REVISION"`: a Hugging Face repo (its
  `model.safetensors`, else `pytorch_model.bin`);
- a timm tag, `"lcnet_100.ra2_in1k"`: the same as `"hf-hub:timm/lcnet_100.ra2_in1k"`;
- a URL: downloaded with torch.hub (a `name-<hex>.pth` file name's hex is checked against the
  start of the file's sha256, as torch.hub does for torchvision);
- a path: read (and converted) in place, nothing cached.

Downloads land in their usual caches, so files already fetched by timm or torchvision are
reused: Hugging Face's (`$HF_HOME/hub`; its lock files, revision pinning, and its temporary
download files removed on failure) and torch.hub's (`$TORCH_HOME/hub/checkpoints`, written
to a temporary name, checked, then renamed). The converted leannet file goes to
`$LEANNET_HOME/weights/<model>/<source>@<revision>.safetensors` with `.json` metadata and a
`.sha256` record beside it; every load re-hashes the file against that record.

Offline (`HF_HUB_OFFLINE=1`, or no network): the caches serve; with nothing cached, one line
names the file expected and the `leannet convert` command that makes it from a checkpoint
copied by other means. The environment is read at each call, not at import.

`published_weights(name)` is the one answer to "this registry name with its published
weights" (select, export, infer, bench): the verified file, its provenance (the commit fetched)
and the top-1 published for that very checkpoint; `download=False` asks the caches only, for
callers that must not wait on the network (bench). A model without them is built with random
weights only on the user's word, and every record then says `RANDOM_WEIGHTS`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from torch import nn

from leannet.errors import DownloadError, UnknownModelError, WeightsError
from leannet.fileio import sha256, write_text
from leannet.weights.sources import WeightSource, weight_source

CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".tar", ".pdparams", ".ckpt")
_TIMM_TAG = re.compile(r"[A-Za-z0-9_]+\.[A-Za-z0-9_]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def leannet_home() -> Path:
    return Path(os.environ.get("LEANNET_HOME", "~/.cache/leannet")).expanduser()


def cache_path(name: str, source: WeightSource) -> Path:
    """Where the converted weights of `source` for model `name` live."""
    if source.kind == "none":
        return leannet_home() / f"{name}.safetensors"  # where a user-made checkpoint goes
    return leannet_home() / "weights" / name / f"{source.cache_stem}.safetensors"


def offline() -> bool:
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE or _true(os.environ.get("HF_HUB_OFFLINE"))


def _true(value: str | None) -> bool:
    return (value or "").strip().upper() in ("1", "ON", "YES", "TRUE")


# --- `pretrained=...` -> a file convert_and_load reads ----------------------------------------


def parse_pretrained(name: str, spec: str | Path) -> WeightSource | Path:
    """A `pretrained=` string as a source to download, or a local path."""
    if isinstance(spec, Path):
        return spec
    for prefix in ("hf-hub:", "hf_hub:"):
        if spec.startswith(prefix):
            repo, _, rev = spec[len(prefix):].partition("@")
            if repo.count("/") != 1:
                raise WeightsError(f"{spec!r}: expected hf-hub:ORG/REPO or hf-hub:ORG/REPO@REVISION")
            return WeightSource("hf", repo, revision=rev or None)
    if spec.startswith(("http://", "https://")):
        filename = PurePosixPath(urlparse(spec).path).name
        # torch.hub's convention (torchvision's files): `name-<hex>.ext`, the hex starting the
        # file's sha256. Fewer than 8 digits is more likely a step count than a hash.
        prefix = m.group(1) if (m := re.search(r"-([a-f0-9]{8,})\.", filename)) else ""
        return WeightSource("url", spec, sha256=prefix)
    path = Path(spec).expanduser()
    if path.exists() or path.suffix in CHECKPOINT_SUFFIXES or not _TIMM_TAG.fullmatch(spec):
        return path
    _check_timm_tag(name, spec)
    return WeightSource("hf", f"timm/{spec}")


def _check_timm_tag(name: str, tag: str) -> None:
    from leannet.registry import resolve

    arch = tag.partition(".")[0]
    try:
        owner = resolve(arch)
    except UnknownModelError:
        return  # a timm name leannet doesn't alias: the converter decides
    if owner != name:
        raise WeightsError(f"timm tag {tag!r} holds weights for {owner}, not {name}")


def pretrained_file(name: str, pretrained: bool | str | Path, download: bool = True) -> Path:
    """The checkpoint `create_model(name, pretrained=...)` loads: a path as given, or the
    verified converted file in `$LEANNET_HOME` (downloaded and converted first if needed;
    `download=False` takes only what the caches hold, as offline)."""
    if pretrained is True:
        source = weight_source(name)
    else:
        parsed = parse_pretrained(name, pretrained)  # type: ignore[arg-type]
        if isinstance(parsed, Path):
            return parsed
        source = parsed
    return fetch(name, source, download)


RANDOM_WEIGHTS = "random (latency only)"  # what every record says of a model with no trained weights


@dataclass(frozen=True)
class Published:
    """A model's published weights as found here: the verified file, where it came from (a
    pinned `hf-hub:ORG/REPO@COMMIT`, the URL, or the source's label for a user-converted file)
    and the top-1 its publisher reports for exactly this checkpoint."""

    path: Path
    provenance: str
    sha256: str
    top1: float | None
    top1_source: str


def published_weights(name: str, download: bool = True) -> Published:
    """The default published weights of model `name` (`pretrained=True`), from the caches or,
    with `download`, the hub. Raises a one-line WeightsError/DownloadError saying why there
    are none here and how to get them."""
    source = weight_source(name)
    path = fetch(name, source, download)
    origin = _origin(path) or {}
    if origin.get("repo") and origin.get("commit"):
        provenance = f"hf-hub:{origin['repo']}@{origin['commit']}"
    else:
        provenance = origin.get("url") or source.label
    return Published(path, provenance, sha256(path), source.top1, source.top1_source)


def fetch(name: str, source: WeightSource, download: bool = True) -> Path:
    """Make sure the converted weights of `source` for `name` are cached; return their path.
    `download=False`: the caches only, no request (as `HF_HUB_OFFLINE=1`)."""
    target = cache_path(name, source)
    if not source.automatic:
        # A file the user converted: at the keyed path, or (as before sources existed) at
        # $LEANNET_HOME/<name>.safetensors.
        for path in dict.fromkeys([target, cache_path(name, replace(source, kind="none"))]):
            if path.is_file():
                verify(path)
                return path
        raise WeightsError(_manual_message(name, source, target))
    # A pinned revision or a URL can't change: a verified converted file is the answer.
    immutable = source.kind == "url" or bool(source.revision)
    if immutable and target.is_file():
        verify(target)
        return target
    try:
        raw, origin = _download(source, download)
    except _Unavailable as e:
        if target.is_file():  # offline with an unpinned revision: the last one converted
            verify(target)
            return target
        raise DownloadError(
            f"{name}: {e}, and no converted weights at {target}; make them from a copy of "
            f"{_what(source)} with `leannet convert CHECKPOINT --model {name} --out {target}`"
        ) from None
    if target.is_file() and _origin(target) == origin:
        verify(target)
        return target
    _check_download(raw, source)
    _convert(name, raw, target, origin)
    return target


def _what(source: WeightSource) -> str:
    return f"{source.filename} of {source.label}" if source.kind == "hf" else source.label


def _manual_message(name: str, source: WeightSource, target: Path) -> str:
    convert = f"`leannet convert CHECKPOINT --model {name} --out {target}"
    if source.kind == "none":
        return (f"{name}: no public checkpoint ({source.note}); put a leannet checkpoint at "
                f"{target}, e.g. {convert}`")
    if source.trust_pickle:
        return (f"{name}: its published weights are a Python pickle ({source.label}), never opened "
                f"without your word: download it, then {convert} --trust-pickle`")
    return (f"{name}: leannet can't convert the published checkpoint ({source.label}) yet; "
            f"convert a checkpoint leannet reads with {convert}`")


# --- the sha256 record beside each converted file --------------------------------------------


def _hash_file(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def record_hash(path: Path) -> str:
    digest = sha256(path)
    write_text(_hash_file(path), f"{digest}  {path.name}\n")  # sha256sum's format
    return digest


def verify(path: Path) -> None:
    """Check `path` against its `.sha256` record. A file put there by hand (e.g. with the
    `leannet convert` command an offline error suggests) has none yet: it is recorded now."""
    record = _hash_file(path)
    if not record.is_file():
        record_hash(path)
        return
    expected = record.read_text().split()[0] if record.read_text().strip() else ""
    actual = sha256(path)
    if actual != expected:
        raise WeightsError(
            f"{path}: sha256 {actual[:16]}... does not match the {expected[:16]}... recorded when it "
            f"was written (changed or damaged on disk); delete it and {record.name} to convert it again"
        )


def _origin(path: Path) -> dict[str, Any] | None:
    from leannet.weights.io import read_metadata

    try:
        source = read_metadata(path).get("source", {})
    except WeightsError:
        return None
    return {k: source.get(k) for k in ("repo", "revision", "commit", "url")} if source else None


def _convert(name: str, raw: Path, target: Path, origin: dict[str, Any]) -> None:
    from leannet.weights.convert import convert_checkpoint

    # Strict: a key that doesn't land stops here and nothing is written.
    convert_checkpoint(raw, name, target, origin=origin)
    record_hash(target)


# --- downloads ------------------------------------------------------------------------------


class _Unavailable(Exception):
    """Offline, or the server can't be reached, and the download cache doesn't have the file."""


def _download(source: WeightSource, download: bool = True) -> tuple[Path, dict[str, Any]]:
    _no_tqdm_monitor()
    if source.kind == "hf":
        return _hf_download(source, download)
    return _url_download(source, download), {"repo": None, "revision": None, "commit": None, "url": source.location}


def _no_tqdm_monitor() -> None:
    """Download bars without tqdm's monitor thread. Started by a bar, that thread outlives it,
    waking every 10 s for tqdm's multiprocessing lock; in this project's test runs it aborted
    the process (SIGABRT in that acquire) during a later, unrelated computation, which a
    benchmark sweep after a download must not risk. A bar then refreshes only as it advances."""
    with contextlib.suppress(ImportError):
        import tqdm

        tqdm.tqdm.monitor_interval = 0


def _network_errors() -> tuple[type[BaseException], ...]:
    # huggingface_hub's transport changed across versions (requests, httpx, httpx2); none of
    # their base errors is an OSError, so each installed one is caught by name.
    errors: list[type[BaseException]] = [OSError]
    for module in ("httpx2", "httpx", "requests"):
        mod = sys.modules.get(module)
        base = getattr(mod, "HTTPError", None) or getattr(mod, "RequestException", None)
        if isinstance(base, type) and issubclass(base, BaseException):
            errors.append(base)
    return tuple(errors)


def _resolves(endpoint: str) -> bool:
    """Whether the endpoint's host name resolves. A machine without network fails this at once,
    where huggingface_hub would retry a request five times with back-off (~20 s) first."""
    import socket

    host = urlparse(endpoint).hostname
    if not host:
        return True  # not ours to judge: the request says what is wrong
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        return False
    return True


def _hf_options(download: bool = True) -> dict[str, Any]:
    """Cache, endpoint and offline switch from the environment as it is now (huggingface_hub
    reads them once, at import)."""
    from huggingface_hub import constants

    env = os.environ
    cache = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    if not cache:
        cache = str(Path(env["HF_HOME"]).expanduser() / "hub") if env.get("HF_HOME") else constants.HF_HUB_CACHE
    endpoint = (env.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
    return {"cache_dir": cache, "endpoint": endpoint, "local_files_only": offline() or not download}


def _hf_download(source: WeightSource, download: bool = True) -> tuple[Path, dict[str, Any]]:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    opts = _hf_options(download)
    unresolved = not opts["local_files_only"] and not _resolves(opts["endpoint"])
    if unresolved:  # no network: the caches may still serve, without ~20 s of retries first
        opts["local_files_only"] = True
    revision = source.revision or "main"
    kw = dict(repo_id=source.location, revision=revision, **opts)
    where = f"{source.label} ({opts['endpoint']})"
    names = [source.filename] + (["pytorch_model.bin"] if source.filename == "model.safetensors" else [])
    path = None
    for i, filename in enumerate(names):
        last = i == len(names) - 1
        try:
            path = Path(hf_hub_download(filename=filename, **kw))
            break
        except (LocalEntryNotFoundError, OfflineModeIsEnabled):
            # Online, this means the server can't be reached (after huggingface_hub's retries,
            # ~20 s): the next file name would wait as long for the same answer.
            if last or not opts["local_files_only"]:
                why = ("downloads not asked for" if not download
                       else f"{urlparse(opts['endpoint']).hostname} does not resolve (no network?)" if unresolved
                       else "offline (HF_HUB_OFFLINE=1)" if opts["local_files_only"]
                       else f"{opts['endpoint']} can't be reached")
                raise _Unavailable(f"{why} and {source.label} is not in the Hugging Face cache") from None
        except EntryNotFoundError:
            if last:
                raise DownloadError(f"{where}: no {' or '.join(names)} in the repository (HTTP 404)") from None
        except RepositoryNotFoundError:
            raise DownloadError(f"{where}: no such repository, or it is private or gated (HTTP 401/404)") from None
        except RevisionNotFoundError:
            raise DownloadError(f"{where}: no revision {revision!r} in the repository (HTTP 404)") from None
        except _network_errors() as e:
            raise DownloadError(f"{where}: download of {filename} failed ({_first_line(e)})") from None
    assert path is not None
    # timm's config.json names the architecture: it lets the converter refuse a look-alike.
    try:
        hf_hub_download(filename="config.json", **kw)
    except (EntryNotFoundError, *_network_errors()):
        pass
    commit = path.parent.name  # snapshots/<commit>/<file>
    return path, {"repo": source.location, "revision": revision, "commit": commit, "url": None}


def _url_download(source: WeightSource, download: bool = True) -> Path:
    import urllib.error

    import torch.hub

    filename = PurePosixPath(urlparse(source.location).path).name or "download"
    dst = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if dst.is_file():
        return dst
    if offline() or not download:
        why = "offline (HF_HUB_OFFLINE=1)" if download else "downloads not asked for"
        raise _Unavailable(f"{why} and {filename} is not in {dst.parent}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    # Download under a temporary name, check it, then rename: torch.hub.download_url_to_file
    # checks a hash prefix but not the length, and urllib accepts a connection closed early.
    tmp = dst.with_name(f".{uuid.uuid4().hex[:8]}.{filename}")
    try:
        torch.hub.download_url_to_file(source.location, str(tmp), hash_prefix=source.sha256 or None,
                                       progress=sys.stderr.isatty())
        if tmp.suffix != ".pdparams":
            from leannet.weights.io import load_state_dict

            load_state_dict(tmp)  # a cut-off zip or safetensors file fails here
        os.replace(tmp, dst)
    except urllib.error.HTTPError as e:
        raise DownloadError(f"{source.location}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        if dst.is_file():
            return dst
        raise _Unavailable(f"{urlparse(source.location).netloc} can't be reached ({e.reason})") from None
    except RuntimeError as e:  # torch.hub: 'invalid hash value (expected "...", got "...")'
        raise DownloadError(f"{source.location}: sha256 check failed: {_first_line(e)}") from None
    except WeightsError as e:
        raise DownloadError(f"{source.location}: the download is damaged ({_first_line(e).split(': ', 1)[-1]})") from None
    except OSError as e:
        raise DownloadError(f"{source.location}: download failed ({_first_line(e)})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def _check_download(raw: Path, source: WeightSource) -> None:
    """A Hugging Face blob is named by its ETag, which for an LFS file is its sha256; a table
    row may also record a hash. A file that doesn't match is removed from the cache."""
    blob = raw.resolve()
    expected = source.sha256 or (blob.name if _SHA256.fullmatch(blob.name) else "")
    if not expected:
        return
    actual = sha256(blob)
    if not actual.startswith(expected):
        for p in {raw, blob}:
            p.unlink(missing_ok=True)
        raise DownloadError(
            f"{source.label}: {raw.name} has sha256 {actual[:16]}..., expected {expected[:16]}... "
            "(damaged in transit or on disk); removed it from the cache, try again"
        )


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


# --- `leannet weights` ------------------------------------------------------------------------


def weight_rows(pattern: str = "*") -> list[dict[str, Any]]:
    """One row per registered model matching `pattern`: its source and whether it is cached."""
    from leannet.registry import list_models

    rows = []
    for name in list_models(pattern):
        source = weight_source(name)
        target = cache_path(name, source)
        legacy = cache_path(name, replace(source, kind="none"))
        cached = target.is_file() or (not source.automatic and legacy.is_file())
        rows.append({
            "name": name,
            "source": source.label,
            "kind": source.kind,
            "revision": source.revision,
            "license": source.license or None,
            "top1": source.top1,
            "top1_source": source.top1_source or None,
            "layout": source.layout,
            "convertible": source.convertible,
            "automatic": source.automatic,
            "cached": cached,
            "path": str(target),
            "note": source.note or None,
        })
    return rows


def _short(label: str) -> str:
    if not label.startswith(("http://", "https://")):
        return label
    url = urlparse(label)
    return f"{url.netloc}/.../{PurePosixPath(url.path).name}"


def _how(row: dict[str, Any]) -> str:
    """What `pretrained=True` does for this model when nothing is cached."""
    if row["automatic"]:
        return "downloads"
    if row["kind"] == "none":
        return "no public checkpoint"
    if not row["convertible"]:
        return "no converter yet"
    return "convert --trust-pickle"


def weights_cell(name: str) -> str:
    """A model's default source in one markdown cell (docs/models.md)."""
    source = weight_source(name)
    if source.kind == "none":
        return f"none: {source.note}"
    top1 = f", top-1 {source.top1:g}" if source.top1 is not None else ""
    how = "" if source.automatic else f" ({_how({'automatic': False, 'kind': source.kind, 'convertible': source.convertible})})"
    return f"`{_short(source.label)}` ({source.license}{top1}){how}"


def weights_table(pattern: str = "*", fmt: str = "table") -> str:
    rows = weight_rows(pattern)
    if fmt == "json":
        return json.dumps(rows, indent=1)
    if not rows:
        return f"no model matches {pattern!r}"
    cols = ["name", "source", "license", "top-1", "cached", "pretrained=True"]
    body = [[r["name"], _short(r["source"]), r["license"] or "-",
             "-" if r["top1"] is None else f"{r['top1']:g}", "yes" if r["cached"] else "no", _how(r)]
            for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip() for cells in [cols, *body]]
    return "\n".join(lines)


def load_pretrained(build: Callable[..., nn.Module], name: str, pretrained: bool | str | Path,
                    reset_head: bool = False) -> nn.Module:
    """Weights for `create_model(..., pretrained=...)`: True (the model's default source),
    "hf-hub:ORG/REPO[@REV]", a timm tag, a URL, or a path; see `leannet.weights.hub`.

    Downloads are converted once and cached in `$LEANNET_HOME`; a path in another layout
    (timm, torchvision, official repos) is converted on load; `.pdparams` pickles are refused
    here (convert them once, explicitly). `reset_head=True` keeps the built model's fresh
    classifier (fine-tuning on another class count); otherwise the class counts must agree.
    """
    from leannet.weights.convert import convert_and_load

    return convert_and_load(pretrained_file(name, pretrained), name, build=build, reset_head=reset_head)[0]
