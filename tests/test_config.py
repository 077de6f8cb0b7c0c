import pytest
from pydantic import Field

from leannet.config import Schema, load_config
from leannet.errors import ConfigError


class Optim(Schema):
    lr: float = Field(0.1, gt=0)
    name: str = "sgd"


class Cfg(Schema):
    optim: Optim = Optim()
    epochs: int = 1


def test_yaml_and_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("optim:\n  lr: 0.5\nepochs: 3\n")
    cfg = load_config(Cfg, f, ["optim.name=adamw", "epochs=4"])
    assert (cfg.optim.lr, cfg.optim.name, cfg.epochs) == (0.5, "adamw", 4)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optim.lrr=1"], "optim.lrr: unknown key"),
        (["optim.lr=-1"], "optim.lr: Input should be greater than 0"),
        (["epochs=many"], "epochs: Input should be a valid integer"),
        (["epochs"], "expected key.sub=value"),
    ],
)
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Cfg, None, overrides)


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(Cfg, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML at line"):
        load_config(Cfg, bad)
