"""Fine-tuning pretrained weights on another class count needs `model.head_reset=true`; nothing
is dropped silently (the old loader skipped every tensor whose shape differed)."""

import pytest
import torch

import leannet
from leannet.errors import ConfigError, WeightsError
from leannet.train import fit, load_train_config
from leannet.train.loop import build_model
from leannet.weights import read_metadata, save_weights
from tests.train.tiny import CLASSES, overrides


@pytest.fixture
def imagenet_like(tmp_path):
    """A 'pretrained' pplcnet_x0_25 with 5 classes (the tiny set has 3)."""
    torch.manual_seed(0)
    model = leannet.create_model("pplcnet_x0_25", num_classes=5)
    return save_weights(model, tmp_path / "pre.safetensors", meta={"arch": "pplcnet_x0_25", "num_classes": 5})


def _cfg(tiny_root, tmp_path, pretrained, **extra):
    return load_train_config(None, overrides(tiny_root, tmp_path / "run", **{"model.pretrained": str(pretrained),
                                                                              **extra}))


def test_another_class_count_fails_without_head_reset(tiny_root, tmp_path, imagenet_like):
    cfg = _cfg(tiny_root, tmp_path, imagenet_like)
    with pytest.raises(WeightsError, match=r"head.fc.weight': model expects \(3, 1280\), checkpoint has \(5, 1280\)"
                                           r".*model.head_reset"):
        build_model(cfg, CLASSES)


def test_head_reset_loads_everything_but_the_classifier(tiny_root, tmp_path, imagenet_like):
    cfg = _cfg(tiny_root, tmp_path, imagenet_like, **{"model.head_reset": "true"})
    torch.manual_seed(1)
    model = build_model(cfg, CLASSES)
    pre = leannet.weights.load_state_dict(imagenet_like)
    for k, v in model.state_dict().items():
        if k.startswith("head.fc."):
            assert v.shape[0] == CLASSES
        else:
            assert torch.equal(v, pre[k]), k


def test_head_reset_without_pretrained_is_a_config_error():
    with pytest.raises(ConfigError, match="head_reset=true needs pretrained"):
        load_train_config(None, ["model.head_reset=true"])


def test_a_pretrained_file_missing_a_body_key_fails(tiny_root, tmp_path):
    state = leannet.create_model("pplcnet_x0_25", num_classes=5).state_dict()
    del state["stem.bn.weight"]
    path = save_weights(state, tmp_path / "cut.safetensors", meta={"arch": "pplcnet_x0_25", "num_classes": 5})
    cfg = _cfg(tiny_root, tmp_path, path, **{"model.head_reset": "true"})
    with pytest.raises(WeightsError, match=r"1 missing \(first 'stem.bn.weight'\)"):
        build_model(cfg, CLASSES)


def test_fine_tune_run_with_head_reset(tiny_root, tmp_path, imagenet_like):
    cfg = _cfg(tiny_root, tmp_path, imagenet_like, **{"model.head_reset": "true", "schedule.epochs": 1,
                                                     "schedule.warmup_epochs": 0})
    fit(cfg)
    meta = read_metadata(tmp_path / "run" / "last.safetensors")
    assert meta["num_classes"] == CLASSES  # the run's own checkpoint records the new head


def test_resume_puts_its_own_weights_back_strictly(tiny_root, tmp_path):
    cfg = load_train_config(None, overrides(tiny_root, tmp_path / "run", **{"schedule.epochs": 1,
                                                                          "schedule.warmup_epochs": 0}))
    fit(cfg)
    last = tmp_path / "run" / "last.safetensors"
    state, meta = leannet.weights.load_state_dict(last), read_metadata(last)
    del state["stages.1.0.dw.bn.running_mean"]
    save_weights(state, last, meta=meta)  # same step: the state file still matches it
    with pytest.raises(WeightsError, match=r"last.safetensors: keys do not match the model: 1 missing"):
        fit(cfg, resume=True)
