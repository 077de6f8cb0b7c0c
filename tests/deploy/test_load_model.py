"""`load_model` builds the model from the arguments the checkpoint's metadata records; it never
guesses the class count from tensor shapes."""

import pytest
import torch

import leannet
from leannet.deploy.artefact import load_model
from leannet.errors import WeightsError
from leannet.weights import save_weights


def _saved(tmp_path, meta, **model_args):
    torch.manual_seed(0)
    model = leannet.create_model("pplcnet_x0_25", **model_args)
    return model, save_weights(model, tmp_path / "w.safetensors", meta=meta)


def test_num_classes_and_model_args_come_from_metadata(tmp_path):
    # head_bias is PaddleClas's head conv without bias / timm's with: only the metadata says
    # which, and loading the wrong one would be a key mismatch.
    model, path = _saved(tmp_path, {"arch": "pplcnet_x0_25", "num_classes": 7, "model_args": {"head_bias": True}},
                         num_classes=7, head_bias=True)
    loaded = load_model(path)
    assert loaded.model.head.fc.out_features == 7 and loaded.classes == [str(i) for i in range(7)]
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(loaded.model(x), model.eval()(x), rtol=0, atol=0)


def test_older_convert_files_record_num_classes_under_config(tmp_path):
    _, path = _saved(tmp_path, {"arch": "pplcnet_x0_25", "config": {"num_classes": 4}}, num_classes=4)
    assert load_model(path).model.head.fc.out_features == 4


def test_weights_without_num_classes_need_it_explicitly(tmp_path):
    _, path = _saved(tmp_path, {}, num_classes=6)
    with pytest.raises(WeightsError, match="records no num_classes; pass num_classes="):
        load_model("pplcnet_x0_25", path)
    assert load_model("pplcnet_x0_25", path, num_classes=6).model.head.fc.out_features == 6


def test_explicit_num_classes_that_contradicts_metadata_fails(tmp_path):
    _, path = _saved(tmp_path, {"arch": "pplcnet_x0_25", "num_classes": 7}, num_classes=7)
    with pytest.raises(WeightsError, match="records num_classes=7, not 3"):
        load_model(path, num_classes=3)
