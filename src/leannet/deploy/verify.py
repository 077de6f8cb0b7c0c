"""Does an artefact compute what the PyTorch model computes? Run both on the same inputs.

fp32 artefacts must match to `FP32_TOL` in max |logit difference|, scaled by the logits'
magnitude when it exceeds 1 (float32 rounding grows with it: a BN-calibrated random
MobileOne-S0 with logits up to 11 differs from its own float64 forward by 1.8e-4), or the
export fails; bf16
and INT8 artefacts cannot, so for them the figure that matters is top-1 agreement with the
PyTorch model on real images (and top-1 accuracy when labels are known).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from torch import nn

from leannet.deploy.artefact import Runner, run_all, torch_runner
from leannet.errors import ExportError

FP32_TOL = 1e-4


@dataclass
class Verification:
    precision: str
    runtime: str
    n: int  # inputs compared
    max_abs_diff: float
    ref_max_abs: float  # largest |logit| of the PyTorch model, the scale of the tolerance
    top1_agreement: float  # fraction of inputs whose arg-max matches PyTorch's

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return (f"{self.runtime} {self.precision} vs PyTorch on {self.n} inputs: max |diff| "
                f"{self.max_abs_diff:.2e}, top-1 agreement {100 * self.top1_agreement:.1f}%")


def compare(runner: Runner, model: nn.Module, inputs: np.ndarray) -> Verification:
    ref = run_all(torch_runner(model), inputs)
    got = run_all(runner, inputs)
    return Verification(runner.precision, runner.runtime, len(inputs),
                        float(np.abs(got - ref).max()), float(np.abs(ref).max()),
                        float((got.argmax(1) == ref.argmax(1)).mean()))


def verify(runner: Runner, model: nn.Module, inputs: np.ndarray, tol: float = FP32_TOL) -> Verification:
    """Compare, and fail an fp32 artefact whose logits differ from PyTorch's by more than
    `tol` x max(1, largest |logit|)."""
    v = compare(runner, model, inputs)
    limit = tol * max(1.0, v.ref_max_abs)
    if runner.precision == "fp32" and not v.max_abs_diff <= limit:  # `not <=` also catches NaN
        raise ExportError(f"exported model does not match PyTorch: max |logit difference| "
                          f"{v.max_abs_diff:.3g} > {limit:.3g} ({runner.runtime}, fp32, logits up to "
                          f"{v.ref_max_abs:.3g})")
    return v


def top1_accuracy(runner: Runner, inputs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in percent."""
    return float(100.0 * (run_all(runner, inputs).argmax(1) == labels).mean())
