import pickle

import pytest
import torch

import leannet
from leannet.errors import WeightsError
from leannet.weights import load_state_dict, read_metadata, save_weights


def test_roundtrip_with_metadata(tmp_path):
    model = leannet.create_model("pplcnet_x0_25", num_classes=3)
    path = save_weights(model, tmp_path / "w.safetensors", meta={"arch": "pplcnet_x0_25"})
    assert read_metadata(path) == {"arch": "pplcnet_x0_25"}
    again = leannet.create_model("pplcnet_x0_25", num_classes=3, pretrained=path)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[k], v)
    assert not list(tmp_path.glob(".*.tmp")), "temporary file left behind"


class _Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_pickled_object_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "x": _Evil()}, path)
    with pytest.raises(WeightsError, match="refused to load"):
        load_state_dict(path)
    assert "code ran" not in capsys.readouterr().out


def test_plain_pickle_refused(tmp_path):
    path = tmp_path / "evil.pkl.pth"
    path.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(WeightsError, match=r"evil.pkl.pth: (refused|corrupt)"):
        load_state_dict(path)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_truncated_file_one_line_error(tmp_path, suffix):
    model = leannet.create_model("pplcnet_x0_25")
    good = tmp_path / f"good{suffix}"
    if suffix == ".safetensors":
        save_weights(model, good)
    else:
        torch.save(model.state_dict(), good)
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(WeightsError, match="corrupt or truncated") as e:
        load_state_dict(bad)
    assert "\n" not in str(e.value)


def test_shape_mismatch_names_key(tmp_path):
    path = save_weights(leannet.create_model("pplcnet_x0_25", num_classes=3), tmp_path / "w.safetensors")
    with pytest.raises(WeightsError, match=r"shape mismatch at 'head.fc.weight': model expects \(1000, 1280\)"):
        leannet.create_model("pplcnet_x0_25", pretrained=path)


def test_missing_cache_says_what_to_do():
    with pytest.raises(WeightsError, match="leannet convert"):
        leannet.create_model("pplcnet_x0_25", pretrained=True)
