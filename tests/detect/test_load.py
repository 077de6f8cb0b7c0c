"""`load_detector` puts weights in through `load_into`: a file missing one tensor is an error
naming it, and a whole file reproduces the saved detector exactly."""

import pytest
import torch

from leannet.detect.config import ModelConfig
from leannet.detect.model import build_detector, detector_meta, load_detector
from leannet.errors import WeightsError
from leannet.weights import save_weights


def _saved(tmp_path, drop=None):
    cfg = ModelConfig(backbone="pplcnet_x0_25", fpn_channels=16, head_channels=16, image_size=64)
    torch.manual_seed(0)
    state = build_detector(cfg).state_dict()
    if drop:
        del state[drop]
    return state, save_weights(state, tmp_path / "det.safetensors", meta=detector_meta(cfg, ["a", "b"]))


def test_whole_file_round_trips(tmp_path):
    state, path = _saved(tmp_path)
    torch.manual_seed(1)
    model, classes = load_detector(str(path))
    assert classes == ["a", "b"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_a_missing_tensor_is_an_error(tmp_path):
    key = "head.classification_head.cls_logits.weight"
    _, path = _saved(tmp_path, drop=key)
    with pytest.raises(WeightsError, match=rf"1 missing \(first '{key}'\)"):
        load_detector(str(path))
