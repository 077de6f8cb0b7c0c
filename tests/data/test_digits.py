from collections import Counter

from PIL import Image

from leannet.data.digits import prepare_digits


def test_digits_split_is_fixed_and_stratified(tmp_path):
    root = prepare_digits(tmp_path / "digits")
    train = sorted(p.relative_to(root / "train") for p in (root / "train").rglob("*.png"))
    val = sorted(p.relative_to(root / "val") for p in (root / "val").rglob("*.png"))
    assert (len(train), len(val)) == (1437, 360)
    assert not {p.name for p in train} & {p.name for p in val}
    counts = Counter(p.parent.name for p in val)
    assert set(counts) == {str(i) for i in range(10)} and min(counts.values()) >= 35
    img = Image.open(root / "val" / val[0])
    assert img.size == (8, 8) and img.mode == "L"
    # A second call reuses the folder and a second root gets the identical split.
    assert prepare_digits(root) == root
    other = prepare_digits(tmp_path / "again")
    assert sorted(p.relative_to(other / "val") for p in (other / "val").rglob("*.png")) == val
