import json

import pytest
import torch
from PIL import Image

from leannet.detect.data import CocoDetection, load_coco
from leannet.errors import DataError


def _write(tmp_path, images, annotations, categories=({"id": 3, "name": "card"}, {"id": 7, "name": "page"}),
           files=None):
    for img in images:
        if files is None or img["file_name"] in files:
            Image.new("RGB", (img["width"], img["height"]), (200, 10, 10)).save(tmp_path / img["file_name"])
    path = tmp_path / "ann.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": list(categories)}))
    return path


def _img(i, w=40, h=30):
    return {"id": i, "file_name": f"{i}.png", "width": w, "height": h}


def _ann(i, image_id, bbox, cat=3):
    return {"id": i, "image_id": image_id, "category_id": cat, "bbox": bbox}


@pytest.fixture
def bad_set(tmp_path):
    images = [_img(1), _img(2), _img(3), _img(4)]
    anns = [
        _ann(10, 1, [2, 2, 10, 10]),  # good
        _ann(11, 9, [2, 2, 10, 10]),  # unknown image
        _ann(12, 1, [2, 2, 10, 10], cat=5),  # unknown category
        _ann(13, 1, [5, 5, 0, 8]),  # zero width
        _ann(14, 1, [50, 40, 10, 10]),  # wholly outside the 40x30 image
        _ann(15, 2, [30, 20, 20, 20], cat=7),  # sticks out: clipped to 30,20,40,30
        _ann(16, 3, [1, 1, 5, 5]),  # image 3's file is missing
    ]  # image 4: no boxes
    return _write(tmp_path, images, anns, files={"1.png", "2.png", "4.png"})


def test_bad_annotations_are_skipped_and_counted(bad_set):
    coco, report = load_coco(bad_set)
    assert [a["id"] for a in coco["annotations"]] == [10, 15]
    assert [i["id"] for i in coco["images"]] == [1, 2]
    assert dict(report.counts) == {"missing_file": 1, "unknown_image": 1, "unknown_category": 1,
                                   "zero_area": 1, "outside": 1, "clipped": 1, "empty": 1}
    clipped = next(a for a in coco["annotations"] if a["id"] == 15)
    assert clipped["bbox"] == [30.0, 20.0, 10.0, 10.0]
    text = report.summary()
    for phrase in ("annotation 11: image_id 9 is not in 'images'", "annotation 12: category_id 5 is not in "
                   "'categories'", "annotation 13: box [5, 5, 0, 8] has zero area",
                   "annotation 14: box [50, 40, 10, 10] lies outside its 40x30 image", "image 4: has no boxes",
                   "image 3: file", "does not exist", "1 clipped"):
        assert phrase in text


def test_strict_names_the_first_offender(bad_set):
    # Image files are checked before annotations, so the missing file comes first.
    with pytest.raises(DataError, match=r"image 3: file .*3.png does not exist \(--strict\)"):
        load_coco(bad_set, strict=True)


def test_strict_on_each_kind(tmp_path):
    cases = {
        "category_id 5": [_ann(1, 1, [2, 2, 10, 10], cat=5)],
        "annotation 1: box .* has zero area": [_ann(1, 1, [2, 2, 10, 0])],
        "annotation 1: box .* lies outside": [_ann(1, 1, [-20, 2, 10, 10])],
        "annotation 1: box .* sticks out": [_ann(1, 1, [35, 2, 10, 10])],
        "image 1: has no boxes": [],
    }
    for i, (message, anns) in enumerate(cases.items()):
        d = tmp_path / str(i)
        d.mkdir()
        with pytest.raises(DataError, match=message + r".*\(--strict\)"):
            load_coco(_write(d, [_img(1)], anns), strict=True)


def test_keep_empty_keeps_background_images(tmp_path):
    coco, report = load_coco(_write(tmp_path, [_img(1), _img(2)], [_ann(1, 1, [2, 2, 10, 10])]), keep_empty=True)
    assert len(coco["images"]) == 2 and not report.counts


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"images": [], "annotations": []}', "has no 'categories'"),
    ('{"images": [{"id": 1}], "annotations": [], "categories": [{"id": 1}]}', "image 1 has no 'file_name'"),
    ('[1, 2]', "expected a COCO object"),
])
def test_malformed_files(tmp_path, content, message):
    path = tmp_path / "a.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_coco(path)


def test_nothing_usable_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no usable images"):
        load_coco(_write(tmp_path, [_img(1)], []))


def test_dataset_targets(tmp_path):
    path = _write(tmp_path, [_img(1), _img(2)], [_ann(1, 1, [2, 3, 10, 12], cat=7), _ann(2, 2, [1, 1, 5, 5])])
    ds = CocoDetection(path)
    assert ds.class_names == ["card", "page"]  # sorted by category id: label 0 = id 3, 1 = id 7
    img, target = ds[0]
    assert img.shape == (3, 30, 40) and img.dtype == torch.float32 and img.min() >= 0 and img.max() <= 1
    assert target["boxes"].tolist() == [[2.0, 3.0, 12.0, 15.0]]
    assert target["labels"].tolist() == [1]
    assert int(target["image_id"]) == 1
    flipped = CocoDetection(path, hflip=1.0)[0]
    assert flipped[1]["boxes"].tolist() == [[28.0, 3.0, 38.0, 15.0]]
    assert torch.equal(flipped[0], img.flip(-1))


def test_unreadable_image_is_skipped_counted_and_left_out_of_map(tmp_path):
    from leannet.data.datasets import Skipped
    from leannet.detect.data import collate
    from leannet.detect.evaluate import evaluate

    path = _write(tmp_path, [_img(1), _img(2), _img(3)], [_ann(i, i, [2, 2, 10, 10]) for i in (1, 2, 3)])
    (tmp_path / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    ds = CocoDetection(path)
    bad = ds[1]
    assert isinstance(bad, Skipped) and bad.path == str(tmp_path / "2.png") and "2.png" in bad.reason
    images, targets, skipped = collate([ds[0], ds[1], ds[2]])
    assert len(images) == len(targets) == 2 and skipped == [str(tmp_path / "2.png")]
    assert [int(t["image_id"]) for t in targets] == [1, 3]

    def perfect(imgs):  # finds every ground-truth box (all are [2, 2, 12, 12], class 0)
        return [{"boxes": torch.tensor([[2.0, 2.0, 12.0, 12.0]]), "scores": torch.tensor([0.9]),
                 "labels": torch.tensor([0])} for _ in imgs]

    seen: list[str] = []
    # The unreadable image's box would count as a miss (mAP 2/3) were it kept in the truth.
    assert evaluate(perfect, ds, batch_size=3, skipped=seen)["map50"] == pytest.approx(1.0)
    assert seen == [str(tmp_path / "2.png")]
    with pytest.raises(DataError, match=r"2\.png: .*(corrupt|not an image)"):
        CocoDetection(path, strict=True)[1]
    with pytest.raises(DataError, match="every image of a batch is unreadable"):
        collate([ds[1]])


def test_exif_rotated_photo_matches_boxes_in_displayed_coordinates(tmp_path):
    # A phone photo: stored sideways (40x30 pixels) with EXIF orientation 6; shown upright
    # (30 wide, 40 tall), which is what the COCO size and box describe.
    shown = Image.new("RGB", (30, 40), (255, 255, 255))
    shown.paste((255, 0, 0), (5, 20, 15, 35))  # the document, at x 5..15, y 20..35 as displayed
    stored = shown.transpose(Image.Transpose.ROTATE_90)  # exif_transpose of orientation 6 undoes this
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "1.jpg", exif=exif, quality=95)
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "1.jpg", "width": 30, "height": 40}],
                               "annotations": [_ann(1, 1, [5, 20, 10, 15])], "categories": [{"id": 3}]}))
    img, target = CocoDetection(ann)[0]
    assert img.shape == (3, 40, 30)
    assert target["boxes"].tolist() == [[5.0, 20.0, 15.0, 35.0]]
    inside = img[:, 22:33, 7:13]
    assert inside[0].mean() > 0.9 and inside[1].mean() < 0.1  # red under the box
    assert img[1, :18].mean() > 0.9  # white above it


def _rotated_photo(tmp_path, orientation=6):
    """A phone photo stored sideways (40x30 pixels) with an EXIF orientation that swaps axes,
    displayed 30 wide and 40 tall with a red document at x 5..15, y 20..35."""
    shown = Image.new("RGB", (30, 40), (255, 255, 255))
    shown.paste((255, 0, 0), (5, 20, 15, 35))
    stored = shown.transpose(Image.Transpose.ROTATE_90)  # exif_transpose of orientation 6 undoes this
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(tmp_path / "1.jpg", exif=exif, quality=95)
    return shown


def test_json_with_the_stored_size_of_a_rotated_photo_keeps_displayed_boxes(tmp_path):
    # Annotation tools show the photo upright and draw boxes on it, but may record the size
    # from the file header: 40x30, the displayed size transposed. The boxes must come out as
    # drawn, not clipped to 40x30 nor stretched by 30/40 and 40/30.
    _rotated_photo(tmp_path)
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "1.jpg", "width": 40, "height": 30}],
                               "annotations": [_ann(1, 1, [5, 20, 10, 15]), _ann(2, 1, [2, 2, 20, 10])],
                               "categories": [{"id": 3}]}))
    ds = CocoDetection(ann)
    assert not ds.report.counts  # nothing clipped: y 20..35 is inside the displayed 40 rows
    img, target = ds[0]
    assert img.shape == (3, 40, 30)
    assert target["boxes"].tolist() == [[5.0, 20.0, 15.0, 35.0], [2.0, 2.0, 22.0, 12.0]]
    inside = img[:, 22:33, 7:13]
    assert inside[0].mean() > 0.9 and inside[1].mean() < 0.1  # red under the first box
    # Boxes that all fit the JSON size leave loading nothing to notice: decoding catches it.
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "1.jpg", "width": 40, "height": 30}],
                               "annotations": [_ann(2, 1, [2, 2, 20, 10])], "categories": [{"id": 3}]}))
    assert CocoDetection(ann)[0][1]["boxes"].tolist() == [[2.0, 2.0, 22.0, 12.0]]


def test_transposed_size_without_exif_rotation_is_still_rescaled(tmp_path):
    # The same transposed sizes without an orientation tag: the JSON is simply wrong about the
    # size, and the boxes are scaled to the pixels, as for any other size mismatch.
    Image.new("RGB", (30, 40)).save(tmp_path / "1.png")
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "1.png", "width": 40, "height": 30}],
                               "annotations": [_ann(1, 1, [4, 3, 20, 15])], "categories": [{"id": 3}]}))
    _, target = CocoDetection(ann)[0]
    assert torch.allclose(target["boxes"], torch.tensor([[4 * 30 / 40, 3 * 40 / 30, 24 * 30 / 40, 18 * 40 / 30]]))


def test_flip_is_a_function_of_seed_epoch_and_index(tmp_path):
    images = [_img(i, w=12, h=8) for i in range(1, 9)]
    path = _write(tmp_path, images, [_ann(i, i, [1, 1, 4, 4]) for i in range(1, 9)])

    def flips(seed, epoch, order=range(8), rng_seed=0):
        ds = CocoDetection(path, hflip=0.5, seed=seed)
        ds.set_epoch(epoch)
        torch.manual_seed(rng_seed)  # the global RNG must not matter
        return {i: ds[i][1]["boxes"][0, 0].item() != 1.0 for i in order}

    base = flips(0, 0)
    assert 0 < sum(base.values()) < 8  # some flipped, some not
    assert flips(0, 0, rng_seed=123) == base
    assert flips(0, 0, order=reversed(range(8))) == base  # any order, as workers or a resume read them
    assert flips(0, 1) != base and flips(1, 0) != base
    # The decision is the one classification's augmentation would take for the same sample.
    from leannet.data.datasets import sample_seed

    for i, flipped in base.items():
        expected = torch.rand((), generator=torch.Generator().manual_seed(sample_seed(0, 0, i))) < 0.5
        assert flipped == bool(expected)


def test_flips_are_the_same_in_worker_processes(tmp_path):
    from torch.utils.data import DataLoader

    from leannet.detect.data import collate

    path = _write(tmp_path, [_img(i, w=12, h=8) for i in range(1, 7)], [_ann(i, i, [1, 1, 4, 4]) for i in range(1, 7)])
    ds = CocoDetection(path, hflip=0.5, seed=3)
    ds.set_epoch(2)

    def boxes(workers):
        torch.manual_seed(workers)
        loader = DataLoader(ds, batch_size=2, num_workers=workers, collate_fn=collate)
        return [t["boxes"].tolist() for _, targets, _ in loader for t in targets]

    assert boxes(2) == boxes(0)


def test_hard_synthetic_split_has_its_own_folder_and_three_classes(tmp_path):
    from leannet.detect.config import DataConfig, SplitConfig, SyntheticConfig
    from leannet.detect.data import make_dataset, split_files

    cfg = DataConfig(root=str(tmp_path))
    std = SplitConfig(synthetic=SyntheticConfig(num_images=2, seed=0, image_size=64))
    hard = SplitConfig(synthetic=SyntheticConfig(num_images=2, seed=0, image_size=64, difficulty="hard"))
    assert split_files(std, cfg)[0].parent.name == "synthetic_seed0_n2_64px"  # as before: sets are reused
    assert split_files(hard, cfg)[0].parent.name == "synthetic_seed0_n2_64px_hard"
    assert make_dataset(hard, cfg, train=False).class_names == ["card", "page", "receipt"]
    assert make_dataset(std, cfg, train=False).class_names == ["card", "page"]
