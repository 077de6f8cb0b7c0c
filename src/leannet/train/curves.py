"""Validation curves of finished runs, as a PNG: did a run plateau, or was it still rising
when it stopped? (A comparison against a model that had not converged says little.)"""

from __future__ import annotations

import csv
from pathlib import Path

from leannet.errors import DataError
from leannet.extras import require
from leannet.fileio import atomic_path


def read_curve(run_dir: str | Path, metric: str) -> list[tuple[int, float]]:
    """(epoch, metric) per evaluated epoch, from a run folder's metrics.csv."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        raise DataError(f"{path}: no such file (is {run_dir} a training run folder?)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and metric not in rows[0]:
        raise DataError(f"{path}: no column {metric!r}; it has {', '.join(rows[0])}")
    return [(int(float(r["epoch"])), float(r[metric])) for r in rows if r.get(metric) not in (None, "")]


def plot_curves(runs: dict[str, str | Path], metric: str, out: str | Path, title: str = "") -> dict[str, list]:
    """One line per run (label -> run folder), best epoch marked; returns the plotted series."""
    matplotlib = require("matplotlib", "training curves")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {label: read_curve(d, metric) for label, d in runs.items()}
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, pts in series.items():
        if not pts:
            continue
        xs, ys = zip(*pts, strict=True)
        line, = ax.plot(xs, ys, marker=".", label=label)
        best = max(range(len(ys)), key=ys.__getitem__)
        ax.scatter([xs[best]], [ys[best]], s=80, facecolors="none", edgecolors=line.get_color())
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(title or f"validation {metric} per epoch (circle: best)")
    ax.grid(alpha=0.3)
    ax.legend()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return series
