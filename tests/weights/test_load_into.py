"""`load_into`, the one way user weights enter a model: every key and shape checked, a new
classifier only when asked for (`reset_head=True`), nothing dropped silently."""

import pytest
import torch

import leannet
from leannet.errors import WeightsError
from leannet.weights import load_into, save_weights
from leannet.weights.io import classifier_keys, model_args

HEAD = ("head.fc.weight", "head.fc.bias")


def _pair(src_classes: int = 5, dst_classes: int = 3, name: str = "pplcnet_x0_25"):
    torch.manual_seed(0)
    src = leannet.create_model(name, num_classes=src_classes)
    torch.manual_seed(1)  # another init, so "loaded" and "kept" are told apart
    dst = leannet.create_model(name, num_classes=dst_classes)
    return src.state_dict(), dst


def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_shape_mismatch_is_an_error_naming_the_head_and_the_fix():
    state, model = _pair()
    before = _snapshot(model)
    with pytest.raises(WeightsError) as e:
        load_into(model, state, source="ckpt")
    msg = str(e.value)
    assert "\n" not in msg
    assert "shape mismatch at 'head.fc.weight': model expects (3, 1280), checkpoint has (5, 1280)" in msg
    assert "reset_head=True" in msg and "model.head_reset" in msg
    # Checked before copying: a refused load leaves the model as it was.
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_reset_head_loads_the_body_bit_for_bit_and_keeps_a_fresh_head():
    state, model = _pair()
    fresh = _snapshot(model)
    report = load_into(model, state, source="ckpt", reset_head=True)
    assert report.reset == HEAD
    assert set(report.loaded) == set(state) - set(HEAD)
    assert not report.missing and not report.ignored
    own = model.state_dict()
    for k, v in own.items():
        assert torch.equal(v, fresh[k] if k in HEAD else state[k]), k


def test_reset_head_means_a_fresh_head_even_when_the_class_counts_agree():
    # reset_head is a decision ("train a new classifier"), not a fallback for mismatches.
    state, model = _pair(3, 3)
    state = {k: v + 1 if k in HEAD else v for k, v in state.items()}  # told apart from any init
    fresh = _snapshot(model)
    assert load_into(model, state, source="ckpt", reset_head=True).reset == HEAD
    for k in HEAD:
        assert torch.equal(model.state_dict()[k], fresh[k])


def test_reset_head_on_a_torchvision_adapter_uses_its_own_classifier_name():
    state, model = _pair(name="shufflenetv2_x0_5")
    assert classifier_keys(model) == ("fc", "fc.")
    report = load_into(model, state, source="ckpt", reset_head=True)
    assert report.reset == ("fc.weight", "fc.bias")
    assert torch.equal(model.state_dict()["conv5.0.weight"], state["conv5.0.weight"])


@pytest.mark.parametrize("reset_head", [False, True])
def test_a_checkpoint_missing_one_body_key_fails(reset_head):
    state, model = _pair(3, 3)
    dropped = "stages.2.0.pw.bn.running_var"
    assert dropped in state
    del state[dropped]
    with pytest.raises(WeightsError, match=rf"1 missing \(first '{dropped}'\)"):
        load_into(model, state, source="ckpt", reset_head=reset_head)


def test_an_unexpected_key_fails():
    state, model = _pair(3, 3)
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError, match=r"1 unexpected \(first 'extra.weight'\)"):
        load_into(model, state, source="ckpt")


def test_reset_head_does_not_excuse_a_body_mismatch():
    # Width 0.25 vs 0.35: only the head may differ, so this is an error, without the hint.
    state = leannet.create_model("pplcnet_x0_35", num_classes=5).state_dict()
    model = leannet.create_model("pplcnet_x0_25", num_classes=3)
    with pytest.raises(WeightsError, match=r"shape mismatch at 'stages\.0\.0\.pw\.conv\.weight'") as e:
        load_into(model, state, source="ckpt", reset_head=True)
    assert "reset_head" not in str(e.value)


def test_create_model_pretrained_needs_reset_head_for_another_class_count(tmp_path):
    state, _ = _pair()
    path = save_weights(state, tmp_path / "w.safetensors", meta={"arch": "pplcnet_x0_25", "num_classes": 5})
    with pytest.raises(WeightsError, match="reset_head=True"):
        leannet.create_model("pplcnet_x0_25", num_classes=3, pretrained=path)
    model = leannet.create_model("pplcnet_x0_25", num_classes=3, pretrained=path, reset_head=True)
    assert model.head.fc.out_features == 3
    assert torch.equal(model.state_dict()["head.conv.weight"], state["head.conv.weight"])


def test_model_args_come_from_metadata_then_from_the_classifier_shape():
    assert model_args({"num_classes": 7, "model_args": {"head_bias": True}}, "w") == {
        "num_classes": 7, "head_bias": True}
    assert model_args({"config": {"num_classes": 4}}, "w") == {"num_classes": 4}  # older convert files
    assert model_args({}, "w", num_classes=9) == {"num_classes": 9}
    # a plain state_dict: the classifier tensor's rows say the count; metadata and caller win over it
    assert model_args({}, "w", from_tensors=10) == {"num_classes": 10}
    assert model_args({"num_classes": 7}, "w", from_tensors=10) == {"num_classes": 7}
    with pytest.raises(WeightsError, match="neither the metadata nor a classifier tensor"):
        model_args({"arch": "pplcnet_x0_25"}, "w")
    with pytest.raises(WeightsError, match="records num_classes=7, not 9"):
        model_args({"num_classes": 7}, "w", num_classes=9)


# One model per family (the big ones slow): the keys `reset_head` skips must be exactly the ones whose
# shapes depend on the class count (an independent reading of "the classifier").
FAMILY_SAMPLES = ["ghostnet_x0_5", "mobilenetv3_small_x1_0", "pplcnet_x0_25", "shufflenetv2_x0_5", "snet49",
                  *(pytest.param(n, marks=pytest.mark.slow) for n in (
                      "g_ghost_regnetx_032", "mobilenetv1_x1_0", "mobilenetv2_x1_0", "mobileone_s0",
                      "repvgg_a0", "tresnet_m"))]


@pytest.mark.parametrize("name", FAMILY_SAMPLES)
def test_each_family_names_exactly_its_class_dependent_keys(name):
    a = leannet.create_model(name, num_classes=3).state_dict()
    b = leannet.create_model(name, num_classes=4)
    by_shape = {k for k, v in a.items() if v.shape != b.state_dict()[k].shape}
    assert by_shape
    report = load_into(b, a, source=name, reset_head=True)
    assert set(report.reset) == by_shape


def test_reset_head_through_a_converted_timm_checkpoint(tmp_path):
    # create_model(pretrained=<timm file>) converts the layout, then loads through load_into.
    timm = pytest.importorskip("timm", reason="timm (the `dev` extra) makes the foreign checkpoint")
    from safetensors.torch import save_file

    torch.manual_seed(0)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model("lcnet_050", num_classes=5).state_dict().items()},
              str(path))
    with pytest.raises(WeightsError, match=r"'head.fc.weight': model expects \(3, 1280\).*reset_head=True"):
        leannet.create_model("pplcnet_x0_5", num_classes=3, pretrained=path)
    model = leannet.create_model("pplcnet_x0_5", num_classes=3, pretrained=path, reset_head=True)
    ours = leannet.create_model("pplcnet_x0_5", num_classes=5, pretrained=path).state_dict()  # the same file, whole
    assert model.head.fc.out_features == 3
    for k, v in model.state_dict().items():
        assert k in HEAD or torch.equal(v, ours[k]), k


def test_a_headless_checkpoint_names_the_missing_head_and_the_fix():
    # A backbone saved with num_classes=0 lacks the classifier: an error unless reset_head.
    state, model = _pair(0, 3)
    with pytest.raises(WeightsError, match=r"2 missing \(first 'head.fc.weight'\); pass reset_head=True"):
        load_into(model, state, source="ckpt")
    assert load_into(model, state, source="ckpt", reset_head=True).reset == HEAD
