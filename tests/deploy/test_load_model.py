"""`load_model` builds the model from the arguments the checkpoint records: its metadata, else
(a plain state_dict) the classifier tensor's shape; a registry name alone means its published
weights, and random ones only when asked."""

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


def test_a_plain_state_dict_takes_its_class_count_from_the_classifier(tmp_path):
    # safetensors.torch.save_file writes no metadata: the classifier's shape says 6 classes.
    from safetensors.torch import save_file

    model = leannet.create_model("pplcnet_x0_25", num_classes=6).eval()
    path = tmp_path / "plain.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    loaded = load_model("pplcnet_x0_25", path)
    assert loaded.model.head.fc.out_features == 6 and loaded.classes == [str(i) for i in range(6)]
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(loaded.model(x), model(x), rtol=0, atol=0)
    assert loaded.weights == str(path) and len(loaded.weights_sha256) == 64 and loaded.top1 is None
    assert load_model("pplcnet_x0_25", path, num_classes=6).model.head.fc.out_features == 6


def test_a_registry_name_alone_needs_its_published_weights(tmp_path):
    # Offline with nothing cached (the tests' default): one line saying why and what to do.
    with pytest.raises(WeightsError) as e:
        load_model("pplcnet_x0_5")
    text = str(e.value)
    assert "\n" not in text and "offline" in text and "leannet convert" in text and "--random-weights" in text
    loaded = load_model("pplcnet_x0_5", random_weights=True)
    assert loaded.random and loaded.weights == "random (latency only)" and loaded.top1 is None


def test_explicit_num_classes_that_contradicts_metadata_fails(tmp_path):
    _, path = _saved(tmp_path, {"arch": "pplcnet_x0_25", "num_classes": 7}, num_classes=7)
    with pytest.raises(WeightsError, match="records num_classes=7, not 3"):
        load_model(path, num_classes=3)


def test_a_checkpoint_saved_from_random_weights_stays_random(tmp_path):
    # select --export --random-weights on a PyTorch runtime writes such a file; infer must say so.
    _, path = _saved(tmp_path, {"arch": "pplcnet_x0_25", "num_classes": 1000, "weights": "random (latency only)"})
    assert load_model(path).random
