"""The calibration set of INT8 exports: which images, how many, in what batches (known answers
on tiny generated images; the quantisation itself is tests/deploy/test_quantize.py)."""

import numpy as np
import pytest


def test_calibration_paths_spread_a_limit_evenly_over_the_set(tmp_path):
    from PIL import Image

    from leannet.deploy.quantize import calibration_paths
    from leannet.errors import DataError

    for i in range(11):
        Image.new("RGB", (4, 4)).save(tmp_path / f"{i:02d}.png")
    every = sorted(tmp_path.glob("*.png"))
    # 4 of 11, evenly: positions 0, 10/3, 20/3, 10 rounded -> 0, 3, 7, 10 (first and last kept)
    assert calibration_paths(tmp_path, limit=4) == [every[i] for i in (0, 3, 7, 10)]
    assert calibration_paths(tmp_path, limit=11) == every
    with pytest.raises(DataError, match="no such calibration folder or list file"):
        calibration_paths(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no calibration images found"):
        calibration_paths(tmp_path / "empty")


def test_calibration_inputs_fail_when_no_image_is_readable(tmp_path):
    from leannet.deploy.quantize import calibration_inputs
    from leannet.errors import DataError

    for i in range(2):
        (tmp_path / f"{i}.png").write_bytes(b"")
    pre = {"input_size": [3, 8, 8], "mean": [0, 0, 0], "std": [1, 1, 1]}
    with pytest.raises(DataError, match=r"none of the 2 calibration images could be read \(.*0\.png"):
        calibration_inputs(tmp_path, pre)


def test_chunks_fill_a_fixed_batch_with_repeats_from_the_start():
    from leannet.deploy.quantize import _chunks

    x = np.arange(5)[:, None]
    assert [c.ravel().tolist() for c in _chunks(x, 2)] == [[0, 1], [2, 3], [4, 0]]
    assert [c.ravel().tolist() for c in _chunks(x, 3)] == [[0, 1, 2], [3, 4, 0]]
    assert [c.ravel().tolist() for c in _chunks(x, None)] == [[0], [1], [2], [3], [4]]  # dynamic batch: one by one


def test_calibration_inputs_take_the_limit_and_name_the_set_they_skipped_in(tmp_path, caplog):
    import logging

    from PIL import Image

    from leannet.deploy.quantize import calibration_inputs

    for i in range(3):
        Image.new("RGB", (8, 8), (100 * i, 0, 0)).save(tmp_path / f"{i}.png")
    pre = {"input_size": [3, 8, 8], "mean": [0, 0, 0], "std": [1, 1, 1]}
    x = calibration_inputs(tmp_path, pre, limit=2)  # 2 of 3, evenly: the first and the last
    assert x.shape == (2, 3, 8, 8)
    assert x[:, 0, 0, 0] * 255 == pytest.approx([0, 200], abs=0.5)
    (tmp_path / "1.png").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="leannet.data"):
        assert len(calibration_inputs(tmp_path, pre)) == 2
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [f"calibration set {tmp_path}"]
