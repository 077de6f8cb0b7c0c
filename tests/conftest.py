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
    # No test may read or write the user's real caches, nor reach the network: offline, a
    # registry name's published weights are "not here" at once (a real download attempt with
    # no network waits ~30 s in huggingface_hub's retries). tests/weights/test_hub.py's
    # `caches` fixture goes online against a loopback server.
    monkeypatch.setenv("LEANNET_HOME", str(tmp_path / "leannet_home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "_hub_dir", None)


@pytest.fixture(autouse=True)
def _sigchld():
    # A DataLoader with workers installs torch's SIGCHLD handler in this process and leaves it;
    # once ONNX Runtime / OpenVINO are loaded, a later test's subprocess exiting then crashed
    # pytest (SIGSEGV). Each test gets the handler it started with back.
    before = signal.getsignal(signal.SIGCHLD)
    yield
    signal.signal(signal.SIGCHLD, before)
