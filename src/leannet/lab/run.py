"""`leannet lab`: time each rule's two arms on each runtime and say whether its claim holds here.

Per rule, every (arm, runtime) pair is one `timing.Cell`, and a rule's cells are timed together
in interleaved rounds (`timing.time_rounds`: fresh random order per round, contention monitor),
so drift in a busy machine hits both arms alike. ONNX Runtime and OpenVINO run the arm's
`export_onnx` (fp32, fixed shape), through the runners every benchmark uses. The ratio is
slow arm / fast arm on median latency; a verdict is marked contended when either arm's cell was.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from leannet.lab.options import ROUND_TIME, ROUNDS, RUNTIMES
from leannet.lab.rules import BY_NAME, NOISE, RULES, Rule


@dataclass
class Verdict:
    rule: Rule
    runtime: str
    fast_ms: float
    slow_ms: float
    contended: bool

    @property
    def ratio(self) -> float:
        return self.slow_ms / self.fast_ms

    @property
    def holds(self) -> str:
        """'yes', 'no' or 'no difference' (a faster-claim whose arms are within NOISE)."""
        if self.rule.max_ratio is not None:
            return "yes" if self.ratio <= self.rule.max_ratio else "no"
        if self.ratio >= 1 + NOISE:
            return "yes"
        return "no difference" if self.ratio > 1 - NOISE else "no (reversed)"

    def as_dict(self) -> dict[str, Any]:
        r = self.rule
        return {"rule": r.name, "source": r.source, "claim": r.claim, "shapes": r.shapes,
                "runtime": self.runtime, "fast_arm": r.fast[0], "slow_arm": r.slow[0],
                "fast_ms": round(self.fast_ms, 4), "slow_ms": round(self.slow_ms, 4),
                "ratio": round(self.ratio, 3), "max_ratio": r.max_ratio, "holds": self.holds,
                "contended": self.contended}


def select(names: list[str] | None) -> list[Rule]:
    if not names:
        return list(RULES)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        from leannet.errors import LeannetError

        raise LeannetError(f"unknown rule {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
    return [BY_NAME[n] for n in names]


def _runner(module, runtime: str, shape: tuple[int, int, int], threads: int, tmp: Path, tag: str):
    from leannet.runtime.runners import onnxruntime_runner, openvino_runner, torch_runner

    if runtime == "eager":
        return torch_runner(module, threads=threads)
    from leannet.deploy.onnx import export_onnx

    path = tmp / f"{tag}.onnx"
    if not path.exists():
        export_onnx(module, path, shape)
    return onnxruntime_runner(path, threads) if runtime == "onnxruntime" else openvino_runner(path, threads)


def run_lab(names: list[str] | None = None, runtimes: tuple[str, ...] = RUNTIMES, threads: int | None = None,
            rounds: int = ROUNDS, round_time: float = ROUND_TIME, progress=None) -> list[Verdict]:
    """Time every selected rule on every runtime; one `Verdict` per (rule, runtime)."""
    from leannet.runtime import timing

    threads = threads or len(timing.usable_cores())
    verdicts: list[Verdict] = []
    with tempfile.TemporaryDirectory(prefix="leannet-lab-") as tmp:
        tmp = Path(tmp)
        for rule in select(names):
            arms = dict(zip(("fast", "slow"), rule.arms(), strict=True))
            cells = []
            for runtime in runtimes:
                for arm, module in arms.items():
                    shape = rule.input_of(arm)
                    runner = _runner(module, runtime, shape, threads, tmp, f"{rule.name}_{arm}")
                    x = np.random.default_rng(0).standard_normal((1, *shape), dtype=np.float32)
                    cells.append(timing.Cell((runtime, arm), runner.bind(x)))
            timing.time_rounds(cells, rounds=rounds, round_time=round_time)
            stats = {c.key: timing.summarise(c, threads) for c in cells}
            for runtime in runtimes:
                f, s = stats[(runtime, "fast")], stats[(runtime, "slow")]
                verdicts.append(Verdict(rule, runtime, f["median_ms"], s["median_ms"],
                                        bool(f["contended"] or s["contended"])))
            if progress is not None:
                progress(rule, verdicts[-len(runtimes):])
    return verdicts


def machine_line(threads: int) -> dict[str, Any]:
    """CPU model, its ISA features, cores, versions and date: the sweep's environment record."""
    from leannet.bench.results import environment

    env = environment(threads)
    keep = ("torch", "onnxruntime", "openvino")
    return {"cpu": env["cpu"], "isa": env["cpu_features"], "cores": env["usable_cores"],
            "versions": {k: v for k, v in env["versions"].items() if k in keep},
            "fingerprint": env["fingerprint"], "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def markdown(verdicts: list[Verdict], threads: int, rounds: int, round_time: float) -> str:
    m = machine_line(threads)
    contended = sum(v.contended for v in verdicts)
    lines = [
        f"Machine: **{m['cpu']}**, {m['cores']} usable cores, ISA {', '.join(m['isa']) or '-'}; "
        f"{threads} threads; " + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + f"; {m['date']}.",
        f"Effort: {rounds} interleaved rounds x {round_time:g} s per cell, batch 1, fp32. Ratio = slow arm / "
        f"fast arm (median ms). A 'faster' claim holds at ratio >= {1 + NOISE:.2f}; a 'costs little' "
        "claim holds at ratio <= its bound."
        + (f" **{contended} of {len(verdicts)} verdicts ran beside other work (†): re-run on a quiet machine.**"
           if contended else " No cell was contended."),
        "",
    ]
    runtimes = list(dict.fromkeys(v.runtime for v in verdicts))
    by = {(v.rule.name, v.runtime): v for v in verdicts}
    rules = list(dict.fromkeys(v.rule for v in verdicts))
    lines += ["| rule | source | claim | " + " | ".join(f"{rt}: ratio, holds?" for rt in runtimes) + " |",
              "|---" * (3 + len(runtimes)) + "|"]
    for r in rules:
        cells = []
        for rt in runtimes:
            v = by.get((r.name, rt))
            cells.append("-" if v is None else f"{v.ratio:.2f} {v.holds}{' †' if v.contended else ''}")
        bound = f" (holds at ratio <= {r.max_ratio:.2f})" if r.max_ratio else ""
        lines.append(f"| {r.name} | {r.source} | {r.claim}{bound} | " + " | ".join(cells) + " |")
    lines += ["", "Arms and median latency (ms):", "",
              "| rule | shapes | fast arm | slow arm | " + " | ".join(f"{rt} fast / slow" for rt in runtimes) + " |",
              "|---" * (4 + len(runtimes)) + "|"]
    for r in rules:
        cells = [f"{by[(r.name, rt)].fast_ms:.3f} / {by[(r.name, rt)].slow_ms:.3f}" if (r.name, rt) in by else "-"
                 for rt in runtimes]
        lines.append(f"| {r.name} | {r.shapes} | {r.fast[0]} | {r.slow[0]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(verdicts: list[Verdict]) -> str:
    import io

    from rich.console import Console
    from rich.table import Table

    t = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("rule", "runtime", "fast arm", "ms", "slow arm", "ms", "ratio", "holds"):
        t.add_column(col, justify="right" if col in ("ms", "ratio") else "left")
    for v in verdicts:
        bound = f" (<={v.rule.max_ratio:.2f})" if v.rule.max_ratio else ""
        t.add_row(v.rule.name, v.runtime, v.rule.fast[0], f"{v.fast_ms:.3f}", v.rule.slow[0], f"{v.slow_ms:.3f}",
                  f"{v.ratio:.2f}{bound}", v.holds + (" (contended)" if v.contended else ""))
    buf = io.StringIO()
    Console(file=buf, width=150, no_color=True).print(t)
    return buf.getvalue()
