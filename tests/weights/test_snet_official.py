"""ThunderNet's official SNet146 checkpoint layout (qinzheng93/ThunderNet snet-training),
checked against facts recorded from the official model definition (tests/weights/data/):
its key names and shapes, and its outputs for a fixed perturbed checkpoint."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import leannet
from leannet.weights import convert_and_load
from tests.weights.snet_official import perturbed_official_state

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def official_shapes() -> dict[str, list[int]]:
    return json.loads((DATA / "snet146_official_keys.json").read_text())


@pytest.fixture(scope="module")
def recorded() -> dict[str, np.ndarray]:
    with np.load(DATA / "snet146_official_outputs.npz") as f:
        return dict(f)


@pytest.fixture(scope="module")
def loaded(official_shapes, tmp_path_factory):
    # As train.py saves it: DataParallel's "module." keys under "state_dict", .pth.tar.
    state = perturbed_official_state(official_shapes)
    path = tmp_path_factory.mktemp("snet") / "snet146-300000.pth.tar"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    model, report = convert_and_load(path, "snet146", build=lambda **a: leannet.create_model("snet146", **a).double())
    return model.eval(), report


def _input() -> torch.Tensor:
    # The recording script's input: BGR-like values in 0-255, as the official trainer feeds.
    return torch.from_numpy(np.random.default_rng(0).uniform(0, 255, (2, 3, 224, 224)))


def test_every_official_key_maps_to_a_tensor_of_the_same_shape(official_shapes, loaded):
    model, report = loaded
    assert report.ok and report.layout == "ThunderNet snet-training (official SNet)"
    assert len(report.mapped) == len(official_shapes) == len(model.state_dict())
    ours = model.state_dict()
    for src, dst in report.mapped:
        assert list(ours[dst].shape) == official_shapes[src], (src, dst)
    # The stride-2 unit of stage 2: projection keeps 24 channels, the main branch makes 108.
    assert official_shapes["stage.0.0.branch_left.2.weight"] == [24, 24, 1, 1]
    assert official_shapes["stage.0.0.branch.5.weight"] == [108, 66, 1, 1]
    assert "classifier.0.bias" not in official_shapes


def test_perturbed_official_checkpoint_gives_the_official_outputs(loaded, recorded):
    model, _ = loaded
    with torch.no_grad():
        stage4 = model.forward_intermediates(_input())[3]
        logits = model.forward_head(model.final(stage4))  # = model(x), one pass instead of two
    expected = torch.from_numpy(recorded["logits"])
    torch.testing.assert_close(logits, expected, rtol=1e-9, atol=1e-9 * expected.abs().max().item())
    # Features in the official channel order (ThunderNet's detector reads stage outputs).
    ref4 = torch.from_numpy(recorded["stage4"])
    torch.testing.assert_close(stage4[:1], ref4, rtol=1e-9, atol=1e-9 * ref4.abs().max().item())


def test_deployed_form_gives_the_official_outputs(loaded, recorded):
    deployed = leannet.reparameterize(loaded[0])
    with torch.no_grad():
        logits = deployed(_input()[:1])
    expected = torch.from_numpy(recorded["logits"][:1])
    torch.testing.assert_close(logits, expected, rtol=1e-9, atol=1e-9 * expected.abs().max().item())
