"""A perturbed checkpoint in the layout of ThunderNet's official SNet146, made the same way
by the test and by the script that recorded the official model's outputs for it
(tests/weights/data/README.md): numpy's PCG64 stream is fixed across versions, so the values
need not be stored."""

import numpy as np
import torch

SEED = 146


def perturbed_official_state(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """Every tensor of the official state dict (in `shapes`' order) drawn from one seeded
    stream: convs He-scaled, BN affine and statistics away from their defaults, float32 as the
    official checkpoint stores them."""
    rng = np.random.default_rng(SEED)
    state = {}
    for key, shape in shapes.items():
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            state[key] = torch.tensor(0, dtype=torch.long)
            continue
        if leaf == "running_var":
            v = rng.uniform(0.5, 2.0, shape)
        elif leaf in ("running_mean", "bias"):
            v = rng.uniform(-0.2, 0.2, shape)
        elif len(shape) == 1:  # a BN weight
            v = rng.uniform(0.5, 1.5, shape)
        else:  # conv or linear weight
            fan_in = int(np.prod(shape[1:]))
            v = rng.standard_normal(shape) * np.sqrt((2.0 if len(shape) == 4 else 1.0) / fan_in)
        state[key] = torch.from_numpy(v.astype(np.float32))
    return state
