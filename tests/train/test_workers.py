"""Training with DataLoader worker processes (`data.workers > 0`): the same run as in the main
process, an exact resume, and a data error that comes back as itself."""

import pytest
import torch
from safetensors.torch import load_file

from leannet.errors import DataError
from leannet.train import engine, fit, load_train_config
from tests.train.tiny import make_image_folder, overrides

# Random-resized crops, dropout and mixup: every random draw a worker could get wrong.
EXTRA = {"schedule.epochs": 2, "checkpoint.every_steps": 2, "run.deterministic": "true",
         "model.drop_rate": 0.2, "data.augment.mixup_alpha": 0.4}


def _fit(root, out, resume=False, **extra):
    threads = torch.get_num_threads()
    try:
        return fit(load_train_config(None, overrides(root, out, **{**EXTRA, **extra})), resume=resume)
    finally:
        torch.set_num_threads(threads)


def _assert_same_weights(a_dir, b_dir):
    a, b = load_file(str(a_dir / "last.safetensors")), load_file(str(b_dir / "last.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)


def test_two_workers_train_exactly_as_the_main_process(tiny_root, tmp_path):
    # Each sample's augmentation is a function of (seed, epoch, index), not of whichever
    # process loads it, so the weights are bit-identical.
    _fit(tiny_root, tmp_path / "w0", **{"data.workers": 0})
    _fit(tiny_root, tmp_path / "w2", **{"data.workers": 2})
    _assert_same_weights(tmp_path / "w0", tmp_path / "w2")


class _Stop(Exception):
    pass


def test_resume_with_workers_is_exact(tiny_root, tmp_path, monkeypatch):
    ref = _fit(tiny_root, tmp_path / "ref", **{"data.workers": 2})
    calls = {"n": 0}
    real = engine.set_weight_decay

    def stop_at_step_7(*args, **kwargs):  # called once per step, before the forward
        calls["n"] += 1
        if calls["n"] == 7:
            raise _Stop
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "set_weight_decay", stop_at_step_7)
    with pytest.raises(_Stop):
        _fit(tiny_root, tmp_path / "run", **{"data.workers": 2})
    monkeypatch.setattr(engine, "set_weight_decay", real)
    # the run died after its step-6 checkpoint, mid-epoch 1 (9 steps per epoch)
    resumed = _fit(tiny_root, tmp_path / "run", resume=True, **{"data.workers": 2})
    assert resumed["steps"] == ref["steps"] == 18
    _assert_same_weights(tmp_path / "ref", tmp_path / "run")


def test_data_error_in_a_worker_is_raised_as_itself(tmp_path):
    root = make_image_folder(tmp_path / "data", per_class=4, val_per_class=2)
    for p in (root / "train").rglob("*.png"):
        p.write_bytes(b"not a png")  # every training image unreadable
    with pytest.raises(DataError) as info:
        _fit(root, tmp_path / "run", **{"data.workers": 2, "data.batch_size": 4})
    message = str(info.value)
    assert type(info.value) is DataError
    assert message.startswith("every image of a batch is unreadable (first: ") and str(root) in message
    assert "\n" not in message and "DataLoader worker" not in message and "Traceback" not in message
