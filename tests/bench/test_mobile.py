"""The sweep's background exporter (leannet.bench.mobile.Exporter): a job's crash costs that job
only, a worker's answer stands in for the pre-flight, an export error arrives as raised, and
a job the worker has not started is taken back by the cell that needs it."""

from concurrent.futures import Future

import numpy as np
import pytest
import torch

import leannet
from leannet.bench.mobile import Exporter, mobile_artefact
from leannet.errors import ExportError, LeannetError
from leannet.runtime import mobile as engines
from leannet.runtime.runners import open_runner
from tests.helpers import needs

pytestmark = needs("ncnn", "pnnx")
SHAPE = (1, 3, 32, 32)


def _model():
    torch.manual_seed(0)
    return leannet.create_model("pplcnet_x0_25", num_classes=10).eval()


def test_a_crash_costs_its_job_and_a_fresh_worker_takes_the_rest(tmp_path, monkeypatch):
    # the smoke segfaults on one artefact only: the worker dies on that job, not the others
    (tmp_path / "crashsome.py").write_text(
        "import ctypes\nfrom leannet.runtime.mobile import _smoke\n\n"
        "def smoke(path, *args):\n    if 'bad' in path:\n        ctypes.string_at(0)\n    _smoke(path, *args)\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # a spawned worker takes this process's sys.path
    monkeypatch.setattr(engines, "SMOKE_TARGET", "crashsome:smoke")
    model = _model()
    with Exporter(threads=1) as ex:
        jobs = {name: ex.submit(model, tmp_path / f"{name}.param", "ncnn", "fp32", SHAPE, None)
                for name in ("first", "bad", "last")}
        assert jobs["first"].result().name == "first.param"
        with pytest.raises(LeannetError, match=r"ncnn on bad\.param: the engine crashed \(SIGSEGV\) running it once"):
            jobs["bad"].result()
        assert jobs["last"].result().is_file()
    # the worker's smoke was the pre-flight: opening the artefact spawns no child
    monkeypatch.setattr(engines, "run_isolated", lambda *a, **k: pytest.fail("pre-flown twice"))
    x = np.random.default_rng(0).standard_normal(SHAPE, dtype=np.float32)
    got = open_runner(tmp_path / "last.param", "ncnn")(x)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


def test_an_export_error_arrives_as_raised(tmp_path):
    with Exporter(threads=1) as ex:
        job = ex.submit(_model(), tmp_path / "m.param", "ncnn", "fp32", (2, 3, 32, 32), None)
        with pytest.raises(ExportError, match="ncnn runs one image at a time"):
            job.result()
    assert not (tmp_path / "m.param").exists()


class _Queued(Future):
    """A job still queued behind others: waiting for it would wait for the whole queue."""

    def result(self, timeout=None):
        pytest.fail("the cell waited for a job the worker had not started")


def test_a_job_not_started_is_taken_back(tmp_path):
    files = {("ncnn", "fp32", SHAPE): _Queued()}
    path = mobile_artefact(_model(), tmp_path, "m", "ncnn", "fp32", SHAPE, files)
    assert path.is_file() and files[("ncnn", "fp32", SHAPE)] == path


def test_an_unpicklable_model_is_exported_by_its_cell(tmp_path):
    model = _model()
    model.hook = lambda: None  # a lambda cannot cross to another process
    files = {}
    with Exporter(threads=1) as ex:
        assert mobile_artefact(model, tmp_path, "m", "ncnn", "fp32", SHAPE, files, exporter=ex) is None
    assert files == {}
    assert mobile_artefact(model, tmp_path, "m", "ncnn", "fp32", SHAPE, files).is_file()
