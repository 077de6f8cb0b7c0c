import os

import pytest
import torch

# Tests are small; two threads per process keep the suite predictable on a 2-core machine.
torch.set_num_threads(int(os.environ.get("LEANNET_TEST_THREADS", "2")))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _leannet_home(tmp_path, monkeypatch):
    # No test may read or write the user's real cache.
    monkeypatch.setenv("LEANNET_HOME", str(tmp_path / "leannet_home"))
