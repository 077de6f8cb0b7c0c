"""A benchmark's results file: one JSON row per measured cell, and the environment every row
records (CPU, threads, versions) with its fingerprint, the cache key's part that says
whether a row is still valid on this machine. Shared by the sweep (`leannet.bench.sweep`)
and the report (`leannet.bench.report`), so neither imports the other.

Beside the results files, the machine keeps one record of its own: the fastest probe
(`timing.Probe`) seen per environment fingerprint, under `$LEANNET_HOME`, so that a sweep into
any results folder is judged against the machine's best speed, not only against rows that
happen to share its folder (`machine_probe`, `record_machine_probe`)."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from leannet.fileio import write_text
from leannet.runtime import timing
from leannet.version import __version__

MACHINE_PROBES = "machine_probes.json"  # under $LEANNET_HOME: {fingerprint: fastest probe ms}
KEY = ("source", "runtime", "precision", "batch", "img", "threads", "deployed", "fingerprint")


def default_threads() -> int:
    return len(timing.usable_cores())


def cpuinfo() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo ("model name", "flags", "cpu MHz", ...);
    {} where there is no such file (not Linux). The one reader of it for the sweep and the
    machine's limits."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if not key.strip() and fields:  # the blank line after the first processor
                break
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


# The mobile engines' packages: their versions are part of the environment only where installed,
# so an environment without them keeps the fingerprint it had before they were recorded.
MOBILE_DISTS = ("executorch", "ncnn", "pnnx", "ai-edge-litert")


def environment(threads: int) -> dict[str, Any]:
    """What a timing depends on besides the model: CPU, cores, threads, versions."""
    info = cpuinfo()
    cpu = info.get("model name") or platform.processor() or platform.machine()
    flags = set(info.get("flags", "").split())
    versions = {"python": platform.python_version(), "torch": torch.__version__, "leannet": __version__}
    for dist in ("onnxruntime", "openvino", "nncf", "onnx", "numpy", *MOBILE_DISTS):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    env = {
        "cpu": cpu,
        "cpu_features": sorted(flags & {"avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16",
                                        "amx_int8", "neon"}),
        "logical_cores": os.cpu_count(),
        "usable_cores": default_threads(),
        "threads": threads,
        "host": platform.node(),
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "os": platform.platform(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "versions": versions,
        "timing_method": timing.METHOD,
    }
    env["fingerprint"] = fingerprint(env)
    return env


def fingerprint(env: dict[str, Any]) -> str:
    """A short hash of what makes a timing valid here: same CPU, flags, threads, versions and
    the same way of timing (`timing.METHOD`)."""
    keep = {k: env.get(k) for k in ("cpu", "cpu_features", "usable_cores", "threads", "gpu")}
    keep["versions"] = {k: v for k, v in env["versions"].items() if k != "python"}
    if env.get("timing_method", 1) != 1:  # method 1's fingerprints stay as they were computed
        keep["timing_method"] = env["timing_method"]
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:12]


def row_key(row: dict[str, Any]) -> tuple:
    return tuple(row.get(k) for k in KEY)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a results file; a line cut short by an interruption is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def drop_partial_line(path: Path) -> None:
    """Cut a last line left unfinished by a kill, so the next row starts on a line of its own."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        os.truncate(path, data.rfind(b"\n") + 1)


def append_rows(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    # Appending lines and fsyncing keeps every finished row; a crash mid-write leaves at most
    # one partial last line, which read_rows skips.
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def machine_file() -> Path:
    from leannet.weights.hub import leannet_home

    return leannet_home() / MACHINE_PROBES


def _machine_probes() -> dict[str, float]:
    path = machine_file()
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        warnings.warn(f"{path}: unreadable ({type(e).__name__}); the machine's fastest probe is set "
                      "afresh by this sweep (delete the file to silence this)", stacklevel=3)
        return {}
    if not isinstance(record, dict):
        warnings.warn(f"{path}: not a JSON object; the machine's fastest probe is set afresh by this sweep",
                      stacklevel=3)
        return {}
    return {k: float(v) for k, v in record.items() if isinstance(v, int | float) and v > 0}


def machine_probe(env_key: str) -> float | None:
    """The fastest probe ms this machine has on record for environment `env_key`, or None."""
    return _machine_probes().get(env_key)


def record_machine_probe(env_key: str, probe_ms: float) -> None:
    """Put `probe_ms` on record for `env_key` if it is the fastest yet (written atomically: a
    kill mid-write leaves the old record)."""
    record = _machine_probes()
    if probe_ms < record.get(env_key, float("inf")):
        record[env_key] = probe_ms
        write_text(machine_file(), json.dumps(record, indent=1, sort_keys=True) + "\n")
