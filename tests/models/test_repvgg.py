"""RepVGG-A0: the deployed form equals the train form, and both match timm and the paper."""

import pytest
import torch

import leannet
from leannet.profile.complexity import count_macs
from leannet.registry import model_info
from tests.helpers import assert_close_rel
from tests.models.rep_checks import (
    assert_compiles,
    assert_reparameterized_equals_float32,
    assert_single_branch,
    count,
    from_timm,
    fvcore_macs,
    shapes,
)

NAME = "repvgg_a0"


def test_reparameterized_equals_train_form_float32():
    assert_reparameterized_equals_float32(NAME)


def test_deployed_is_single_branch_and_original_untouched():
    model = leannet.create_model(NAME)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    deployed = leannet.reparameterize(model)
    assert_single_branch(deployed)
    # A plain VGG: every block is one 3x3 conv.
    assert {m.reparam_conv.kernel_size for m in deployed.modules() if hasattr(m, "reparam_conv")} == {(3, 3)}
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_inference_mode_builds_the_deployed_layout():
    built = leannet.create_model(NAME, inference_mode=True)
    assert shapes(built) == shapes(leannet.reparameterize(leannet.create_model(NAME)))


def test_architecture_a0():
    model = leannet.create_model(NAME)
    # Table 2/3: depths [2, 4, 14, 1]; widths 64a, 128a, 256a, 512b with a=0.75, b=2.5; stem min(64, 64a).
    assert [len(s) for s in model.stages] == [2, 4, 14, 1]
    assert [f.channels for f in model.feature_info] == [48, 96, 192, 1280]
    assert model.stem.out_chs == 48
    # The identity branch exists exactly where the block keeps its shape.
    blocks = [b for s in model.stages for b in s]
    assert sum(b.identity is not None for b in blocks) == sum(len(s) - 1 for s in model.stages)


def test_params_train_vs_deployed():
    import timm

    info = model_info(NAME)
    train = count(leannet.create_model(NAME))
    deployed = count(leannet.create_model(NAME, inference_mode=True))
    assert train == count(timm.create_model(NAME, pretrained=False))
    # Counted outside this project: open-mmlab/mmpretrain configs/repvgg/README.md prints
    # RepVGG-A0 as 9.11M (train) | 8.31M (deploy). (Its FLOPs, 1.52G | 1.36G, come from a
    # counter that adds pooling and element-wise ops, so they are not compared as MACs.)
    assert round(train / 1e6, 2) == 9.11
    assert round(deployed / 1e6, 2) == 8.31
    # what the registry shows users agrees with the counts above
    assert (info.extra["params_train_m"], info.extra["params_deployed_m"]) == (
        round(train / 1e6, 2), round(deployed / 1e6, 2))
    # Table 4 prints 8.30M for the deployed form; we count 8.309M (the paper truncates).
    assert abs(deployed / 1e6 - info.published.params_m) < 0.01


def test_macs_match_fvcore_and_paper():
    model = leannet.create_model(NAME, inference_mode=True)
    macs = count_macs(model)
    assert macs == fvcore_macs(model)  # exactly, no tolerance
    # Table 4 prints 1.4 (billions, rounded to 0.1B): anything in [1.35, 1.45) agrees.
    assert abs(macs / 1e6 - model_info(NAME).published.macs_m) < 50


def test_matches_timm():
    ref, ours = from_timm(NAME)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        assert_close_rel(ours.double()(x), ref.double()(x), rel=1e-9)


@pytest.mark.parametrize("deployed", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_torch_compile(deployed):
    assert_compiles(NAME, deployed)
