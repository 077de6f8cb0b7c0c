"""Facts recorded from the official model definitions, and the fixed checkpoints they were
recorded with.

tests/weights/data/<name>.json holds, for one official model variant, its state_dict keys and
shapes in the official code's order, the repository, commit and builder they come from, and
(where the official code could be run) the logits it gave for `fixed_state` of those keys on
`fixed_input`. The recording was done once, outside this repository, by running the official
file (a stand-in InPlaceABN for TResNet, whose CUDA extension isn't installable here; a torch
port of the layer names for PaddleClas, whose Paddle isn't); only the facts are kept.

The checkpoint itself is not stored (tens of MB): it is a pure function of the keys, shapes
and a seed, drawn with numpy's legacy RandomState, whose stream numpy keeps frozen across
versions. The recorded sha256 of the drawn values catches a change in that stream before it
could pass for a parity failure.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).parent / "data"

# the fixed blur of TResNet's anti-aliased downsampling (a buffer, not a learned weight)
_BLUR = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]) / 16


def load_facts(name: str) -> dict:
    facts = json.loads((DATA / f"{name}.json").read_text())
    facts["keys"] = {k: tuple(s) for k, s in facts["keys"]}
    return facts


def _is_norm(key: str, keys: dict) -> bool:
    module = key.rpartition(".")[0]
    return f"{module}.running_var" in keys or f"{module}._variance" in keys


def fixed_state(keys: dict[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    """A checkpoint with exactly `keys`, every value away from any init (a dropped or
    misplaced tensor shows), scaled so a deep net's activations neither vanish nor overflow.

    float64: conv/linear weights N(0, 2/fan_in) (fan_in = prod(shape[1:])); norm weights
    +-(1 + N(0, 0.1^2)), biases N(0, 0.1^2); running means N(0, 0.1^2), variances U[0.5, 1.5);
    counters 7; TResNet's blur buffers their fixed values.
    """
    rs = np.random.RandomState(seed)
    out = {}
    for key, shape in keys.items():
        leaf = key.rpartition(".")[2]
        if leaf == "num_batches_tracked":
            out[key] = np.array(7, dtype=np.int64)
        elif leaf == "filt":
            out[key] = np.broadcast_to(_BLUR, shape).copy()
        elif leaf in ("running_var", "_variance"):
            out[key] = 0.5 + rs.random_sample(shape)
        elif leaf in ("running_mean", "_mean") or leaf == "bias":
            out[key] = 0.1 * rs.standard_normal(shape)
        elif _is_norm(key, keys):  # norm weight, either sign (InPlaceABN uses |w|)
            sign = np.where(rs.random_sample(shape) < 0.5, -1.0, 1.0)
            out[key] = sign * (1 + 0.1 * rs.standard_normal(shape))
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
            out[key] = np.sqrt(2 / fan_in) * rs.standard_normal(shape)
    return out


def fixed_input(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.RandomState(seed + 1).standard_normal(shape)


def state_sha256(state: dict[str, np.ndarray], x: np.ndarray) -> str:
    h = hashlib.sha256()
    for key, value in state.items():
        h.update(key.encode())
        h.update(np.ascontiguousarray(value).tobytes())
    h.update(x.tobytes())
    return h.hexdigest()


def as_torch(state: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.array(v, order="C")) for k, v in state.items()}
