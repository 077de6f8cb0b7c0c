"""Every shipped config validates against the schema and names a model that builds."""

from pathlib import Path

import pytest

import leannet
from leannet.registry import resolve
from leannet.train import load_train_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
FAMILIES = ("pplcnet", "ghostnet", "g_ghost", "mobileone", "repvgg", "tresnet", "snet", "mobilenetv1", "resnet50")


def test_every_family_has_a_config():
    names = " ".join(p.name for p in CONFIGS)
    assert [f for f in FAMILIES if f not in names] == []


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_validates_and_model_builds(path):
    cfg = load_train_config(path)
    assert cfg.run.out_dir.name == path.stem  # each recipe writes to its own run folder
    resolve(cfg.model.name)  # every shipped recipe names a registered model; no skip
    model = leannet.create_model(cfg.model.name, num_classes=cfg.model.num_classes or 10, drop_rate=cfg.model.drop_rate)
    assert model.num_classes == (cfg.model.num_classes or 10)
