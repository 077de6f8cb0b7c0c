"""`leannet train` then `leannet eval` through the CLI, and the headline digits run (slow)."""

from pathlib import Path

import pytest
import torch

from leannet.cli import main
from leannet.weights import read_metadata
from tests.train.tiny import overrides

ROOT = Path(__file__).resolve().parents[2]


def _args(pairs):
    return [a for o in pairs for a in ("-o", o)]


def test_train_then_eval_agree(tiny_root, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("schedule:\n  epochs: 1\n  warmup_epochs: 0\n")
    threads = torch.get_num_threads()
    try:
        assert main(["train", "-c", str(cfg), *_args(overrides(tiny_root, tmp_path / "run")),
                     "-o", "schedule.epochs=1"]) == 0
        out = capsys.readouterr().out
        assert "best top1" in out and "img/s" in out
        best = tmp_path / "run" / "best.safetensors"
        meta = read_metadata(best)
        assert meta["arch"] == "pplcnet_x0_25" and meta["classes"] == ["0", "1", "2"]
        assert meta["preprocessing"]["input_size"] == [3, 16, 16]
        assert main(["eval", "-c", str(cfg), "--weights", str(best), *_args(overrides(tiny_root, tmp_path / "e"))]) == 0
    finally:
        torch.set_num_threads(threads)
    line = capsys.readouterr().out.strip()
    # eval of the best weights reproduces the top-1 the trainer recorded for them
    assert line.startswith(f"top-1 {meta['metrics']['top1']:.2f}%") and "(24 images)" in line


def test_resume_without_checkpoint_is_a_clear_error(tiny_root, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("{}\n")
    assert main(["train", "-c", str(cfg), *_args(overrides(tiny_root, tmp_path / "none")), "--resume"]) == 2
    assert "no checkpoint to resume from (run without --resume to start)" in capsys.readouterr().err


@pytest.mark.slow
def test_digits_headline_config_reaches_97(tmp_path):
    from leannet.train import fit, load_train_config

    cfg = load_train_config(ROOT / "configs" / "pplcnet_x0_25_digits.yaml",
                            [f"run.out_dir={tmp_path / 'run'}", "log.tensorboard=false"])
    summary = fit(cfg)
    assert summary["best"]["score"] >= 97.0, summary["best"]
