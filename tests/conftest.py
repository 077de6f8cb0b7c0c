import os
import signal

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


@pytest.fixture(autouse=True)
def _sigchld():
    # A DataLoader with workers installs torch's SIGCHLD handler in this process and leaves it;
    # once ONNX Runtime / OpenVINO are loaded, a later test's subprocess exiting then crashed
    # pytest (SIGSEGV). Each test gets the handler it started with back.
    before = signal.getsignal(signal.SIGCHLD)
    yield
    signal.signal(signal.SIGCHLD, before)
