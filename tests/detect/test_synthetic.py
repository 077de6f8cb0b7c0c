import json

import numpy as np

from leannet.detect.data import load_coco
from leannet.detect.synthetic import CATEGORIES, generate, render


def test_same_seed_same_image_and_boxes():
    a, b = render(7, 3, 96), render(7, 3, 96)
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert a.boxes == b.boxes


def test_other_seed_or_index_differs():
    a = np.asarray(render(7, 3, 96).image)
    assert not np.array_equal(a, np.asarray(render(8, 3, 96).image))
    assert not np.array_equal(a, np.asarray(render(7, 4, 96).image))


def test_image_depends_only_on_seed_and_index(tmp_path):
    # A 2-image set is a prefix of a 4-image set: held-out sets are just other seeds.
    small = json.loads(generate(tmp_path / "a", 2, seed=5, image_size=64).read_text())
    big = json.loads(generate(tmp_path / "b", 4, seed=5, image_size=64).read_text())
    assert small["images"] == big["images"][:2]
    first = [a for a in big["annotations"] if a["image_id"] <= 2]
    assert small["annotations"] == first
    for name in ("images/000000.jpg", "images/000001.jpg"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_generated_set_is_valid_coco(tmp_path):
    ann = generate(tmp_path, 8, seed=0, image_size=96)
    coco, report = load_coco(ann)
    assert not report.counts, report.summary()  # every box inside, positive, known category
    assert len(coco["images"]) == 8
    assert {a["category_id"] for a in coco["annotations"]} <= {c["id"] for c in CATEGORIES}
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        assert x >= 0 and y >= 0 and x + w <= 96 and y + h <= 96 and w > 4 and h > 4


def test_existing_set_is_reused(tmp_path):
    ann = generate(tmp_path, 2, seed=0, image_size=64)
    stamp = ann.stat().st_mtime_ns
    generate(tmp_path, 2, seed=0, image_size=64)
    assert ann.stat().st_mtime_ns == stamp
    generate(tmp_path, 3, seed=0, image_size=64)  # different parameters: rewritten
    assert len(json.loads(ann.read_text())["images"]) == 3
