"""Runners leave the caller's model as it was."""

import numpy as np

import leannet
from leannet.runtime.runners import torch_runner


def test_building_a_runner_leaves_the_callers_module_in_its_mode():
    """Issue 32 (10b): a model in training mode stays in training mode (its BatchNorm keeps
    updating for the caller); the runner still runs it in eval mode."""
    model = leannet.create_model("pplcnet_x0_25").train()
    runner = torch_runner(model)
    assert model.training and all(m.training for m in model.modules())
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32)
    assert np.array_equal(runner(x), runner(x[::-1].copy())[::-1])  # eval: rows do not mix in BatchNorm
    eval_model = leannet.create_model("pplcnet_x0_25").eval()
    torch_runner(eval_model)
    assert not eval_model.training
