"""What a run reports: a rich progress bar (loss, lr, img/s, ETA) on a terminal, one line
per epoch on stdout, `steps.csv` and `metrics.csv` in the run folder, and TensorBoard scalars.

Only rank 0 creates a `RunLogger` that writes; other ranks get a silent one.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

log = logging.getLogger("leannet.train")


class CsvLog:
    """Append-only CSV whose columns are fixed by the first row. On resume, rows after the
    resumed step are dropped so the file matches the run's actual history."""

    def __init__(self, path: Path, keep_until_step: int | None = None):
        self.path = path
        self.fields: list[str] | None = None
        if path.is_file():
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
            if rows:
                self.fields = list(rows[0].keys())
            if keep_until_step is None:
                rows = []
                self.fields = None
            else:
                rows = [r for r in rows if int(float(r.get("step", 0))) <= keep_until_step]
            with open(path, "w", newline="") as f:
                if self.fields:
                    w = csv.DictWriter(f, fieldnames=self.fields)
                    w.writeheader()
                    w.writerows(rows)

    def write(self, row: dict[str, Any]) -> None:
        new = self.fields is None
        if new:
            self.fields = list(row)
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: _fmt(row.get(k)) for k in self.fields})


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else ("" if v is None else v)


class RunLogger:
    def __init__(self, out_dir: Path | None, *, tensorboard: bool = True, progress: bool = True,
                 resume_step: int | None = None):
        """`out_dir=None` makes a silent logger (non-zero ranks)."""
        self.enabled = out_dir is not None
        self.console = Console(highlight=False)
        err = Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"), TimeRemainingColumn(),
            console=err, disable=not (self.enabled and progress and err.is_terminal), transient=True)
        self._task = None
        self.tb = None
        if not self.enabled:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        self.steps = CsvLog(out_dir / "steps.csv", resume_step)
        self.metrics = CsvLog(out_dir / "metrics.csv", resume_step)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.warning("tensorboard is not installed (pip install 'leannet[train]'); "
                            "writing CSV logs only")
            else:
                self.tb = SummaryWriter(str(out_dir / "tb"), purge_step=resume_step)

    # progress bar --------------------------------------------------------------------------
    def start_epoch(self, description: str, total: int, completed: int = 0) -> None:
        if self._task is None:
            self._progress.start()
            self._task = self._progress.add_task(description, total=total, completed=completed, stats="")
        else:
            self._progress.reset(self._task, total=total, completed=completed, description=description, stats="")

    def advance(self, n: int = 1, **stats: float) -> None:
        if self._task is not None:
            text = "  ".join(f"{k} {_short(v)}" for k, v in stats.items())
            self._progress.update(self._task, advance=n, stats=text)

    # records -------------------------------------------------------------------------------
    def step(self, step: int, **values: Any) -> None:
        if not self.enabled:
            return
        self.steps.write({"step": step, **values})
        if self.tb is not None:
            for k, v in values.items():
                if isinstance(v, int | float) and k != "epoch":
                    self.tb.add_scalar(f"train/{k}", v, step)

    def epoch(self, step: int, **values: Any) -> None:
        if not self.enabled:
            return
        self.metrics.write({"step": step, **values})
        if self.tb is not None:
            for k, v in values.items():
                if isinstance(v, int | float) and k != "epoch":
                    self.tb.add_scalar(f"epoch/{k}", v, step)
            self.tb.flush()

    def print(self, text: str) -> None:
        if self.enabled:  # stdout: while the bar is live, rich redirects stdout above it
            self.console.print(text)

    def close(self) -> None:
        if self._task is not None:
            self._progress.stop()
            self._task = None
        if self.tb is not None:
            self.tb.close()
            self.tb = None


def _short(v: float) -> str:
    return f"{v:.3g}" if isinstance(v, float) and (abs(v) < 1e-2 or abs(v) >= 1e4) else (
        f"{v:.4f}" if isinstance(v, float) else str(v))
