"""A benchmark's results file: one JSON row per measured cell, and the environment every row
records (CPU, threads, versions) with its fingerprint, the cache key's part that says
whether a row is still valid on this machine. Shared by the sweep (`latency`) and the
report (`report`), so neither imports the other."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from leannet.runtime import timing
from leannet.version import __version__

KEY = ("source", "runtime", "precision", "batch", "img", "threads", "deployed", "fingerprint")


def default_threads() -> int:
    return len(timing.usable_cores())


def environment(threads: int) -> dict[str, Any]:
    """What a timing depends on besides the model: CPU, cores, threads, versions."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                cpu = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    versions = {"python": platform.python_version(), "torch": torch.__version__, "leannet": __version__}
    for dist in ("onnxruntime", "openvino", "nncf", "onnx", "numpy"):
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
