"""Bad configs and bad runs fail with the documented one-line errors."""

import pytest
import torch
from torch import nn

import leannet
from leannet.cli import main
from leannet.errors import ConfigError, TrainingError
from leannet.train import fit, load_train_config
from leannet.train.checkpoint import read_training_state
from tests.train.tiny import overrides


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=0.1", "optim.lrr: unknown key"),
    ("optim.lr=fast", "optim.lr: Input should be a valid number"),
    ("optim.lr=-1", "optim.lr: Input should be greater than 0"),
    ("optim.name=rmsprop", "optim.name: Input should be 'sgd' or 'adamw'"),
    ("data.augment.scale=[0.9,0.1]", "data.augment: Value error, scale must satisfy 0 < min <= max <= 1"),
    ("data.kind=imagefolder", "data: Value error, data.root is required"),
    ("distill.teacher=pplcnet_x0_5", "distill: Value error, distill.teacher_weights is required"),
])
def test_bad_config(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_train_config(None, [override])


def test_cli_bad_config_is_one_line_exit_2(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("optim:\n  lr: 0.1\n  momentun: 0.9\n")
    assert main(["train", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "optim.momentun: unknown key" in err


class NaNAfter(nn.Module):
    """pplcnet_x0_25 whose training loss turns NaN at the `after`-th training forward."""

    def __init__(self, after: int):
        super().__init__()
        self.net, self.after, self.calls = leannet.create_model("pplcnet_x0_25", num_classes=3), after, 0

    def forward(self, x):
        out = self.net(x)
        if self.training:
            self.calls += 1
            if self.calls >= self.after:
                out = out * float("nan")
        return out


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_root, tmp_path):
    cfg = load_train_config(None, overrides(tiny_root, tmp_path / "run", **{"schedule.epochs": 3}))
    threads = torch.get_num_threads()
    try:
        with pytest.raises(TrainingError, match=r"non-finite loss \(nan.*at step 12 \(epoch 2\); stopped, "
                                                r"the last good checkpoint is .*last.safetensors"):
            fit(cfg, model=NaNAfter(12))  # 9 steps per epoch: dies in epoch 2
    finally:
        torch.set_num_threads(threads)
    weights, state, meta = read_training_state(tmp_path / "run" / "last")
    assert state["step"] == meta["step"] == 9 and state["epoch"] == 1
    assert all(torch.isfinite(v.float()).all() for v in weights.values())
