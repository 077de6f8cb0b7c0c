"""List files, unreadable images, empty datasets and out-of-range labels."""

import logging

import pytest
import torch
from PIL import Image

from leannet.data import ImageDataset, collate, image_folder, list_file, load_image
from leannet.errors import DataError
from leannet.train import fit, load_train_config
from leannet.train.loop import load_samples
from tests.train.tiny import make_image_folder, overrides


def _png(path, value=128, size=8, mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (size, size), value).save(path)


def test_list_file_paddleclas_layout(tmp_path):
    for i in range(3):
        _png(tmp_path / "jpg" / f"image_{i}.png", 50 * i)
    (tmp_path / "train_list.txt").write_text("jpg/image_0.png 0\njpg/image_1.png 2\n\n# comment\njpg/image_2.png 1\n")
    s = list_file(tmp_path / "train_list.txt")
    assert s.items == [(str(tmp_path / "jpg" / f"image_{i}.png"), y) for i, y in ((0, 0), (1, 2), (2, 1))]
    assert s.classes == ["0", "1", "2"]
    ds = ImageDataset(s.items, lambda im: (im.mode, im.getpixel((0, 0))))
    assert ds[1] == (("RGB", (50, 50, 50)), 2)  # grayscale read as RGB, pixel values kept


def test_list_file_config_trains(tmp_path):
    root = make_image_folder(tmp_path / "folder", per_class=8, val_per_class=2)
    for split in ("train", "val"):
        lines = [f"{p.relative_to(root)} {p.parent.name}" for p in sorted((root / split).rglob("*.png"))]
        (root / f"{split}_list.txt").write_text("\n".join(lines) + "\n")
    cfg = load_train_config(None, overrides(root, tmp_path / "run", **{"data.kind": "list", "schedule.epochs": 1,
                                                                        "schedule.warmup_epochs": 0}))
    train, val = load_samples(cfg.data, None)
    assert len(train.items) == 24 and len(val.items) == 6 and train.classes == ["0", "1", "2"]
    threads = torch.get_num_threads()
    try:
        summary = fit(cfg)
    finally:
        torch.set_num_threads(threads)
    assert summary["steps"] == 3 and (tmp_path / "run" / "best.safetensors").is_file()


@pytest.mark.parametrize("line, message", [
    ("a.png 7", r"train_list.txt:2: label 7 is outside the class range \[0, 3\)"),
    ("a.png -1", r"train_list.txt:2: label -1 is outside the class range"),
    ("a.png", r"train_list.txt:2: expected 'relative/path.jpg LABEL', got 'a.png' \(a bare path is unlabeled"),
    ("a.png cat", r"train_list.txt:2: expected 'relative/path.jpg LABEL'"),
])
def test_list_file_bad_lines(tmp_path, line, message):
    (tmp_path / "train_list.txt").write_text(f"a.png 0\n{line}\n")
    with pytest.raises(DataError, match=message):
        list_file(tmp_path / "train_list.txt", classes=["0", "1", "2"])


def test_image_folder_with_more_classes_than_the_model(tmp_path):
    root = make_image_folder(tmp_path / "f", per_class=2, val_per_class=1)
    cfg = load_train_config(None, overrides(root, tmp_path / "run", **{"model.num_classes": 2}))
    with pytest.raises(DataError, match=r"has 3 classes but model.num_classes=2: labels 2..2 are outside"):
        load_samples(cfg.data, 2)


def test_empty_datasets(tmp_path):
    (tmp_path / "f" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="empty dataset"):
        image_folder(tmp_path / "f")
    (tmp_path / "list.txt").write_text("\n# nothing\n")
    with pytest.raises(DataError, match=r"list\.txt: empty dataset"):
        list_file(tmp_path / "list.txt")
    with pytest.raises(DataError, match="no such dataset folder"):
        image_folder(tmp_path / "missing")


def test_unreadable_image_is_skipped_and_logged_or_strict(tmp_path, caplog):
    good, bad = tmp_path / "0" / "good.png", tmp_path / "0" / "bad.png"
    _png(good)
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DataError, match=r"bad.png: (not an image|corrupt or truncated)"):
        load_image(bad)
    ds = ImageDataset([(str(good), 0), (str(bad), 0)], lambda im: torch.zeros(1))
    with caplog.at_level(logging.WARNING, logger="leannet.data"):
        x, y, skipped = collate([ds[0], ds[1]])
    assert x.shape == (1, 1) and y.tolist() == [0] and skipped == [str(bad)]
    assert str(bad) in caplog.text
    strict = ImageDataset([(str(bad), 0)], lambda im: im, strict=True)
    with pytest.raises(DataError, match=r"bad\.png: (not an image|corrupt or truncated)"):
        strict[0]


def test_training_counts_skipped_images_and_strict_fails(tmp_path):
    root = make_image_folder(tmp_path / "f", per_class=8, val_per_class=2)
    (root / "train" / "1" / "zz_truncated.png").write_bytes((root / "train" / "1" / "000.png").read_bytes()[:40])
    base = {"schedule.epochs": 1, "schedule.warmup_epochs": 0, "data.batch_size": 5}
    threads = torch.get_num_threads()
    try:
        summary = fit(load_train_config(None, overrides(root, tmp_path / "run", **base)))
        assert summary["skipped_unique"] == [str(root / "train" / "1" / "zz_truncated.png")]
        assert summary["skipped_images"] == 1  # 25 images, 5 full batches: seen once
        with pytest.raises(DataError, match=r"zz_truncated.png: (not an image|corrupt or truncated)"):
            fit(load_train_config(None, overrides(root, tmp_path / "strict", **base, **{"data.strict": "true"})))
    finally:
        torch.set_num_threads(threads)
