"""Official checkpoints, as the official model definitions name and shape them.

The key names and shapes come from running (or, for PaddleClas, reading) the official code at
a recorded commit (tests/weights/data, see tests/weights/official.py), not from leannet's own
renaming rules. Where the official code ran, it also recorded its logits for a fixed
checkpoint: leannet must load that checkpoint with every key mapped and give those logits.
Everything runs in float64, where a real difference (a swapped branch, a BN in the wrong
place) is many orders of magnitude above rounding.
"""

import pickle

import numpy as np
import pytest
import torch

import leannet
from leannet.weights import convert_and_load
from tests.weights.official import (
    DATA,
    as_torch,
    fixed_input,
    fixed_state,
    load_facts,
    state_sha256,
)

# max |logit difference| relative to the logits' scale (perturbed nets reach 1e15 in MobileOne's
# unfused form); measured: 0 for five of the six, 2.6e-15 for MobileOne-S0 unfused; a real
# difference is above 1e-3.
TOL = 1e-9

WITH_OUTPUTS = [
    "g_ghost_regnetx_032",  # issue 17: G-GhostNet against an independent reference
    "repvgg_a0_train",
    "repvgg_a0_deploy",
    pytest.param("mobileone_s0_unfused", marks=pytest.mark.slow),  # float64 depthwise: ~20 s
    "mobileone_s0_deploy",
    "tresnet_m",
]
KEYS_ONLY = [pytest.param("g_ghost_regnetx_160", marks=pytest.mark.slow), "mobileone_s4_unfused"]


def load_official(tmp_path, facts: dict, state: dict):
    """Save `state` as the official repos do (torch.save of the state dict) and load it."""
    path = tmp_path / "official.pth"
    torch.save(as_torch(state), path)
    name = facts["leannet"]
    model, report = convert_and_load(path, name, build=lambda **a: leannet.create_model(name, **a).double())
    return model.eval(), report


def assert_all_mapped(facts: dict, report) -> None:
    """Every official key lands on a model key (TResNet's fixed blur filters are dropped by
    design), and every model key is filled (only BN counters may be set to 0)."""
    src = set(facts["keys"])
    assert report.ok, report.summary()
    assert {s for s, _ in report.mapped} | set(report.dropped) == src
    assert all(k.endswith(".op.filt") for k in report.dropped)
    assert all(k.endswith(".num_batches_tracked") for k in report.filled)


@pytest.mark.parametrize("name", WITH_OUTPUTS)
def test_official_checkpoint_gives_official_logits(tmp_path, name):
    facts = load_facts(name)
    ref = facts["reference"]
    state = fixed_state(facts["keys"], ref["seed"])
    x = fixed_input(ref["seed"], tuple(ref["input_shape"]))
    assert state_sha256(state, x) == ref["sha256"], "numpy's RandomState stream changed: re-record"
    expected = np.load(DATA / ref["logits"])["logits"]

    model, report = load_official(tmp_path, facts, state)
    assert_all_mapped(facts, report)
    with torch.no_grad():
        actual = model(torch.from_numpy(x)).numpy()
        scale = max(1.0, np.abs(expected).max())
        assert np.abs(actual - expected).max() <= TOL * scale
        if name.endswith(("_train", "_unfused")):  # and re-parameterised, it still is
            deployed = leannet.reparameterize(model)(torch.from_numpy(x)).numpy()
            assert np.abs(deployed - expected).max() <= TOL * scale


@pytest.mark.parametrize("name", KEYS_ONLY)
def test_official_keys_and_shapes_convert(tmp_path, name):
    facts = load_facts(name)
    state = {k: v.astype(np.float32) if v.dtype == np.float64 else v
             for k, v in fixed_state(facts["keys"], seed=1).items()}
    _, report = load_official(tmp_path, facts, state)
    assert_all_mapped(facts, report)


@pytest.mark.parametrize("name", ["pplcnet_x1_0_paddle", "pplcnet_x0_5_paddle"])
def test_paddleclas_keys_map_and_round_trip(tmp_path, name):
    """PaddleClas PPLCNet: coverage and a round trip, not a forward reference.

    Paddle can't be installed here, so the official network can't be run: this checks that
    every key and shape PaddleClas's pp_lcnet.py defines lands on the leannet tensor of that
    shape, and that each value arrives unchanged except the FC, which is transposed from
    Paddle's (in, out) and scaled by 1 - 0.2 for Paddle's inference-time dropout. That those
    two transforms give Paddle's function is test_paddle_pplcnet_parity's job (timm reference).
    """
    facts = load_facts(name)
    state = {k: v.astype(np.float32) for k, v in fixed_state(facts["keys"], seed=2).items()}
    path = tmp_path / "PPLCNet_pretrained.pdparams"
    with open(path, "wb") as f:
        pickle.dump({**state, "StructuredToParameterName@@": {k: f"p{i}" for i, k in enumerate(state)}}, f, protocol=4)
    model, report = convert_and_load(path, facts["leannet"], trust_pickle=True)
    assert_all_mapped(facts, report)
    assert model.head.conv.bias is None
    ours = model.state_dict()
    for src, dst in report.mapped:
        expected = torch.from_numpy(state[src])
        if src == "fc.weight":
            expected = expected.t() * (1 - 0.2)
        torch.testing.assert_close(ours[dst], expected, rtol=0, atol=0, msg=f"{src} -> {dst}")
