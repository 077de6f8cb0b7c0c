import pytest
import torch

import leannet
from leannet.errors import WeightsError
from leannet.train.checkpoint import checkpoint_paths, read_training_state, save_checkpoint


def test_roundtrip(tmp_path):
    model = leannet.create_model("pplcnet_x0_25", num_classes=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    opt.step()
    state = {"step": 7, "optimizer": opt.state_dict(), "rng": torch.get_rng_state(), "config": {"lr": 0.1}}
    save_checkpoint(tmp_path / "last", model, state, meta={"arch": "pplcnet_x0_25"})
    weights, tstate, meta = read_training_state(tmp_path / "last")
    assert meta["arch"] == "pplcnet_x0_25" and meta["step"] == 7 and tstate["config"] == {"lr": 0.1}
    torch.testing.assert_close(weights["head.fc.weight"], model.head.fc.weight)
    opt2 = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt2.load_state_dict(tstate["optimizer"])
    # the momentum buffers come back bit for bit, one per parameter, and the RNG state too
    before, after = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert sorted(after) == sorted(before) and len(after) == len(list(model.parameters()))
    for k in before:
        torch.testing.assert_close(after[k]["momentum_buffer"], before[k]["momentum_buffer"], rtol=0, atol=0)
    assert opt2.state_dict()["param_groups"] == opt.state_dict()["param_groups"]
    assert torch.equal(tstate["rng"], torch.get_rng_state())


def test_mismatched_pair_is_detected(tmp_path):
    model = leannet.create_model("pplcnet_x0_25", num_classes=3)
    save_checkpoint(tmp_path / "last", model, {"step": 1}, meta={})
    _, state_path = checkpoint_paths(tmp_path / "last")
    torch.save({"step": 2}, state_path)  # as if the run died after writing only the state
    with pytest.raises(WeightsError, match="different steps"):
        read_training_state(tmp_path / "last")


def test_missing_state(tmp_path):
    with pytest.raises(WeightsError, match="no training state"):
        read_training_state(tmp_path / "nothing")


def test_kill_between_state_and_weights_falls_back_to_previous_state(tmp_path):
    model = leannet.create_model("pplcnet_x0_25", num_classes=3)
    save_checkpoint(tmp_path / "last", model, {"step": 1, "tag": "one"}, meta={})
    save_checkpoint(tmp_path / "last", model, {"step": 2, "tag": "two"}, meta={})
    _weights, state_path = checkpoint_paths(tmp_path / "last")
    # Reproduce a kill after the state of step 3 is written but before its weights: the
    # weights on disk are step 2, and the kept previous state is step 2.
    import os
    os.replace(state_path, tmp_path / "last.prev.state.pt")
    torch.save({"step": 3, "tag": "three"}, state_path)
    _, state, meta = read_training_state(tmp_path / "last")
    assert meta["step"] == 2 and state["tag"] == "two"
