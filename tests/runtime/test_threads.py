"""PyTorch's thread count comes back after a scope, also when the scope raises."""

import numpy as np
import pytest
import torch

from leannet.runtime.runners import torch_runner
from leannet.runtime.threads import torch_threads


@pytest.fixture
def three_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield
    torch.set_num_threads(before)


def test_threads_are_restored_after_an_exception(three_threads):
    with pytest.raises(RuntimeError, match="boom"), torch_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 3
    with torch_threads(None):  # None leaves the count alone
        assert torch.get_num_threads() == 3


def test_torch_runner_threads_hold_only_during_its_calls(three_threads):
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(torch.get_num_threads())
            if x.sum() > 1e9:
                raise ValueError("too big")
            return x * 2

    run = torch_runner(Probe(), threads=1)
    assert np.array_equal(run(np.ones((1, 2), np.float32)), np.full((1, 2), 2, np.float32))
    with pytest.raises(ValueError):
        run(np.full((1, 2), 1e10, np.float32))
    assert seen == [1, 1] and torch.get_num_threads() == 3


def test_training_restores_threads_when_it_fails(three_threads, tmp_path):
    from leannet.errors import DataError
    from leannet.train.engine import train

    class Cfg:  # the engine reads run.* first, then fails on the empty dataset
        class run:
            threads, out_dir, seed, deterministic = 1, str(tmp_path), 0, False

    class Task:
        batch_size, train_set = 2, []

    class Dist:
        rank, world_size = 0, 1

    with pytest.raises(DataError, match="empty dataset"):
        train(Task(), Cfg(), Dist())
    assert torch.get_num_threads() == 3
