import numpy as np
import pytest
from PIL import Image

from leannet.data.images import eval_transform_for, find_images, labelled_images, load_image
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
