import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from leannet.data.images import (
    UNLABELED,
    eval_transform_for,
    find_images,
    labelled_images,
    list_file,
    load_image,
)
from leannet.errors import DataError


def test_sixteen_bit_is_rescaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "r.png")
    rgb = np.asarray(load_image(tmp_path / "r.png"))
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    expected = np.round(ramp / 65535 * 255).astype(np.uint8)
    assert np.array_equal(rgb[..., 0], expected)  # convert("RGB") would give 255 almost everywhere


def test_modes_become_rgb(tmp_path):
    base = Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8))
    base.convert("CMYK").save(tmp_path / "c.jpg")
    base.convert("L").save(tmp_path / "g.png")
    base.convert("RGBA").save(tmp_path / "a.png")
    base.convert("P").save(tmp_path / "p.gif", transparency=0)
    for name in ("c.jpg", "g.png", "a.png", "p.gif"):
        img = load_image(tmp_path / name)
        assert img.mode == "RGB" and img.size == (30, 20), name


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20))
    exif = img.getexif()
    exif[0x0112] = 6  # rotated 90 degrees: the displayed image is 20 wide, 40 high
    img.save(tmp_path / "o.jpg", exif=exif)
    assert load_image(tmp_path / "o.jpg").size == (20, 40)


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "not an image"),
    (b"hello", "not an image"),
])
def test_bad_files_raise_with_reason(tmp_path, content, reason):
    (tmp_path / "x.png").write_bytes(content)
    with pytest.raises(DataError, match=reason):
        load_image(tmp_path / "x.png")


def test_eval_transform_resizes_then_crops():
    pre = {"input_size": [3, 32, 32], "mean": [0, 0, 0], "std": [1, 1, 1], "interpolation": "bicubic", "crop_pct": 0.5}
    img = Image.new("RGB", (100, 50), (255, 0, 0))
    x = eval_transform_for(pre)(img)
    assert x.shape == (3, 32, 32) and x[0].min() > 0.99 and x[1].max() < 0.01


def test_list_file_and_folder(tmp_path):
    for c in ("a", "b"):
        (tmp_path / "root" / c).mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(tmp_path / "root" / c / "1.png")
    s = labelled_images(tmp_path / "root")
    assert s.classes == ["a", "b"] and s.labels == [0, 1]
    (tmp_path / "list.txt").write_text("root/b/1.png 1\n\nroot/a/1.png 0\n")
    s = labelled_images(tmp_path / "list.txt", classes=["a", "b"])
    assert s.labels == [1, 0] and s.paths[0] == tmp_path / "root" / "b" / "1.png"
    assert len(find_images([tmp_path / "root"])) == 2
    with pytest.raises(DataError, match="not one of the model's classes"):
        labelled_images(tmp_path / "root", classes=["a", "c"])


def _tree(root):
    """An ImageFolder whose files test every rule of the one reader: a nested folder, an
    upper-case suffix, a GIF, a non-image, a class folder reached through a symlink, and class
    names whose string order ('a-x' < 'a/sub') differs from their path order."""
    files = ["a/1.png", "a/2.GIF", "a/sub/3.jpg", "a-x/4.bmp", "elsewhere/5.gif"]
    for f in files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(root / f, format=Image.registered_extensions()[Path(f).suffix.lower()])
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "train").mkdir()
    for c in ("a", "a-x"):
        (root / c).rename(root / "train" / c)
    (root / "train" / "c").symlink_to(root / "elsewhere", target_is_directory=True)
    return [root / "train" / f for f in ("a/1.png", "a/2.GIF", "a/sub/3.jpg", "a-x/4.bmp", "c/5.gif")]


def test_every_tool_gets_the_same_files_from_a_folder(tmp_path, monkeypatch):
    from leannet.deploy.quantize import calibration_paths
    from leannet.detect import export as detect_export
    from leannet.detect import pipeline, predict
    from leannet.train.config import load_train_config
    from leannet.train.loop import load_samples
    from tests.train.tiny import overrides

    expected = _tree(tmp_path / "data")
    shutil.copytree(tmp_path / "data" / "train", tmp_path / "data" / "val", symlinks=True)
    train_dir = tmp_path / "data" / "train"

    cfg = load_train_config(None, overrides(tmp_path / "data", tmp_path / "run"))
    train, _ = load_samples(cfg.data, None)
    assert train.paths == expected and train.labels == [0, 0, 0, 1, 2]  # training
    assert labelled_images(train_dir).items == train.items  # export/bench --eval
    assert calibration_paths(train_dir) == expected  # export calibration
    assert find_images([train_dir]) == expected  # leannet infer

    class NoDetector:  # detect infer's file list, without a model
        classes = ["x"]

        def __call__(self, images):
            return [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0)}]

    monkeypatch.setattr(pipeline, "open_detector", lambda *a, **k: NoDetector())
    assert [r[0] for r in predict.detect_files("unused.safetensors", train_dir)] == expected

    read: list[Path] = []
    monkeypatch.setattr("leannet.detect.data.read_image", lambda p: read.append(Path(p)) or torch.zeros(3, 4, 4))
    detect_export._read_folder(train_dir, 100)  # detect export calibration
    assert read == expected


def test_every_tool_gets_the_same_files_from_a_list(tmp_path):
    from leannet.deploy.quantize import calibration_paths
    from leannet.train.config import load_train_config
    from leannet.train.loop import load_samples
    from tests.train.tiny import overrides

    expected = _tree(tmp_path)
    lines = ["# path label", "train/a-x/4.bmp\t1", "", "train/a/2.GIF 0", "train/c/5.gif  2", "train/a/1.png 0"]
    for name in ("train_list.txt", "val_list.txt"):
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    cfg = load_train_config(None, overrides(tmp_path, tmp_path / "run", **{"data.kind": "list"}))
    train, _ = load_samples(cfg.data, None)
    order = [expected[i] for i in (3, 1, 4, 0)]  # a list keeps its own order
    assert train.paths == order and train.labels == [1, 0, 2, 0] and train.classes == ["0", "1", "2"]
    assert labelled_images(tmp_path / "train_list.txt").items == train.items
    assert calibration_paths(tmp_path / "train_list.txt") == order


def test_a_bare_path_is_an_error_for_training_and_unlabeled_for_calibration(tmp_path):
    from leannet.deploy.quantize import calibration_paths
    from leannet.train.config import load_train_config
    from leannet.train.loop import load_samples
    from tests.train.tiny import overrides

    expected = _tree(tmp_path)
    (tmp_path / "train_list.txt").write_text("train/a/1.png 0\ntrain/a/sub/3.jpg\n")
    (tmp_path / "val_list.txt").write_text("train/a/1.png 0\n")
    cfg = load_train_config(None, overrides(tmp_path, tmp_path / "run", **{"data.kind": "list"}))
    with pytest.raises(DataError, match=r"train_list\.txt:2: expected 'relative/path\.jpg LABEL', got "
                                        r"'train/a/sub/3\.jpg' \(a bare path is unlabeled"):
        load_samples(cfg.data, None)
    with pytest.raises(DataError, match=r"train_list\.txt:2: .*bare path"):
        labelled_images(tmp_path / "train_list.txt")  # export --eval
    assert list_file(tmp_path / "train_list.txt", allow_unlabeled=True).labels == [0, UNLABELED]
    assert calibration_paths(tmp_path / "train_list.txt") == [expected[0], expected[2]]
