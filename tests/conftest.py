import os
import signal

# torch.compile's first compiles (a fresh machine has no Inductor cache) fork a pool of compile
# workers by default, which compete with the other xdist worker for the 2 cores; compile in-process.
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")

import pytest
import torch

from leannet.weights.hub import _no_tqdm_monitor

# Tests are small; two threads per process keep the suite predictable on a 2-core machine.
torch.set_num_threads(int(os.environ.get("LEANNET_TEST_THREADS", "2")))

# No tqdm monitor thread in any test (leannet turns it off for its own downloads; coremltools'
# and other bars would start it): under two xdist workers its lock acquire aborted the worker
# (SIGABRT in tqdm/_monitor.py) in 2 of 4 full runs on 2026-12-07.
_no_tqdm_monitor()


@pytest.fixture(scope="session")
def built_once(tmp_path_factory):
    """`built_once(name, build)`: `build(folder)` fills a new folder and returns a JSON-able
    value; under pytest-xdist the first worker to ask builds it and the others read it (one
    fixture that trains a model costs 20 s per worker otherwise). Returns (folder, value)."""
    import json

    from filelock import FileLock

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    # under xdist every worker's basetemp is a child of this run's own folder
    root = tmp_path_factory.getbasetemp().parent if worker else tmp_path_factory.getbasetemp()

    def get(name, build):
        folder, done = root / f"shared-{name}", root / f"shared-{name}.json"
        with FileLock(str(root / f"shared-{name}.lock")):
            if not done.is_file():
                folder.mkdir()
                done.write_text(json.dumps(build(folder)))
        return folder, json.loads(done.read_text())

    return get


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


# --- the browser tier (tests marked `browser`: report.html in headless Chromium) -------------------
# Part of `make test` where Debian's chromium is installed; elsewhere its tests are skipped, and
# the summary says so in one line instead of counting them as passed.
CHROMIUM = os.environ.get("LEANNET_CHROMIUM", "/usr/bin/chromium")
_BROWSER_SKIPPED = pytest.StashKey[tuple[int, str]]()


def browser_missing() -> str | None:
    """Why the browser tier cannot run here, or None."""
    import importlib.util

    if not os.path.exists(CHROMIUM):
        return f"no chromium at {CHROMIUM} (enable: apt-get install -y chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (enable: pip install -e '.[dev]')"
    return None


def pytest_collection_modifyitems(config, items):
    browser = [item for item in items if "browser" in item.keywords]
    reason = browser_missing() if browser else None
    if reason:
        for item in browser:
            item.add_marker(pytest.mark.skip(reason=f"browser tier: {reason}"))
        config.stash[_BROWSER_SKIPPED] = (len(browser), reason)


@pytest.hookimpl(trylast=True)  # after the other summary sections, just above the short test summary
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    n, reason = config.stash.get(_BROWSER_SKIPPED, (0, ""))
    if n:
        terminalreporter.write_line(f"BROWSER TIER DID NOT RUN: {n} tests of report.html skipped, {reason}",
                                    yellow=True, bold=True)
