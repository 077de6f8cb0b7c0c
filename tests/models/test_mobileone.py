"""MobileOne S0-S4: the deployed form equals the train form, and both match timm and the paper."""

import pytest
import torch

import leannet
from leannet.layers import SqueezeExcite
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

VARIANTS = [f"mobileone_s{i}" for i in range(5)]


def test_registered():
    assert leannet.list_models("mobileone*") == VARIANTS
    assert all(model_info(n).reparameterizable for n in VARIANTS)


# S1-S4 in the slow tier: the contract test checks every variant in float64 by default.
@pytest.mark.parametrize("name", [VARIANTS[0], *(pytest.param(n, marks=pytest.mark.slow) for n in VARIANTS[1:])])
def test_reparameterized_equals_train_form_float32(name):
    assert_reparameterized_equals_float32(name)


@pytest.mark.parametrize("name", VARIANTS)
def test_deployed_is_single_branch_and_original_untouched(name):
    model = leannet.create_model(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    deployed = leannet.reparameterize(model)
    assert_single_branch(deployed)
    assert model.training and not deployed.training
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.stem.conv_kxk is not None and model.stem.reparam_conv is None


@pytest.mark.parametrize("name", VARIANTS)
def test_inference_mode_builds_the_deployed_layout(name):
    built = leannet.create_model(name, inference_mode=True)
    assert shapes(built) == shapes(leannet.reparameterize(leannet.create_model(name)))
    assert_single_branch(built)


def test_inference_mode_loads_a_reparameterized_state_dict():
    deployed = leannet.reparameterize(leannet.create_model("mobileone_s0", num_classes=10))
    built = leannet.create_model("mobileone_s0", num_classes=10, inference_mode=True).eval()
    built.load_state_dict(deployed.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(built(x), deployed(x), rtol=0, atol=0)


def test_s0_params_train_vs_deployed():
    # The numbers users mix up: 5.29M to train, 2.08M to ship (k=4 branches collapse).
    import timm

    model = leannet.create_model("mobileone_s0")
    assert count(model) == count(timm.create_model("mobileone_s0", pretrained=False))
    assert round(count(model) / 1e6, 2) == 5.29
    deployed = leannet.reparameterize(model)
    assert round(count(deployed) / 1e6, 2) == 2.08
    assert count(deployed) == count(leannet.create_model("mobileone_s0", inference_mode=True))


# Counted outside this project: open-mmlab/mmpretrain configs/mobileone/README.md prints the
# deployed params to 0.01M; the paper's Table 9 rounds them to 0.1M. (Its FLOPs column is left
# out: mmpretrain's counter adds pooling and element-wise ops, so it is not a MAC count.)
MMPRETRAIN_PARAMS_M = {"mobileone_s0": 2.08, "mobileone_s1": 4.76, "mobileone_s2": 7.81,
                       "mobileone_s3": 10.08, "mobileone_s4": 14.84}


@pytest.mark.parametrize("name", VARIANTS)
def test_params_match_independent_tables(name):
    import timm

    info = model_info(name)
    train = count(leannet.create_model(name))
    deployed = count(leannet.create_model(name, inference_mode=True))
    # the train form: timm's definition, tensor count for tensor count (no published table)
    assert train == count(timm.create_model(name, pretrained=False))
    assert round(deployed / 1e6, 2) == MMPRETRAIN_PARAMS_M[name]
    assert round(deployed / 1e6, 1) == info.published.params_m  # Table 9
    # what the registry shows users agrees with the counts above
    assert (info.extra["params_train_m"], info.extra["params_deployed_m"]) == (
        round(train / 1e6, 2), round(deployed / 1e6, 2))


@pytest.mark.parametrize("name", VARIANTS)
def test_macs_match_the_paper(name):
    # Table 9's FLOPs are fvcore counts of the deployed form, i.e. MACs.
    macs = count_macs(leannet.create_model(name, inference_mode=True)) / 1e6
    assert macs == pytest.approx(model_info(name).published.macs_m, rel=0.01)


@pytest.mark.parametrize("name", ["mobileone_s0", pytest.param("mobileone_s4", marks=pytest.mark.slow)])
def test_macs_match_fvcore(name):
    model = leannet.create_model(name, inference_mode=True)
    assert count_macs(model) == fvcore_macs(model)  # exactly, no tolerance


@pytest.mark.parametrize("name", ["mobileone_s0", pytest.param("mobileone_s4", marks=pytest.mark.slow)])
def test_matches_timm(name):
    ref, ours = from_timm(name)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        assert_close_rel(ours.double()(x), ref.double()(x), rel=1e-9)


def test_se_only_in_s4():
    for name in VARIANTS[:4]:
        assert not any(isinstance(m, SqueezeExcite) for m in leannet.create_model(name).modules())
    s4 = leannet.create_model("mobileone_s4")
    se = [m for m in s4.modules() if isinstance(m, SqueezeExcite)]
    # Last 5 of 10 pairs in stage 3 and the one pair of stage 4, on both blocks of each pair.
    assert len(se) == 2 * (5 + 1)
    assert all(m.conv_reduce.out_channels == int(m.conv_reduce.in_channels * 0.0625) for m in se)
    assert all(isinstance(m.gate, torch.nn.Sigmoid) for m in se)


@pytest.mark.parametrize("deployed", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_torch_compile(deployed):
    assert_compiles("mobileone_s0", deployed)
