"""Early stopping: a run ends when its checkpoint metric stops rising (checkpoint.patience,
checkpoint.min_delta), keeps the best weights, and a resumed run carries the count on."""

import pytest

from leannet.errors import DataError
from leannet.train import fit, load_train_config, loop
from leannet.train.curves import plot_curves, read_curve
from tests.train.tiny import overrides


def _scripted(monkeypatch, scores):
    """Validation top-1 per evaluated epoch, as written (the model's real accuracy is not what
    these tests are about)."""
    seen = []

    def evaluate(model, loader, device):
        seen.append(scores[len(seen)])
        return {"top1": seen[-1], "top5": 100.0, "loss": 1.0}

    monkeypatch.setattr(loop, "evaluate_model", evaluate)
    return seen


@pytest.mark.parametrize(("scores", "extra", "epochs_run"), [
    ([10, 20, 20, 20, 20, 20, 20, 20], {"checkpoint.patience": 2}, 4),  # no rise after epoch 2
    ([10, 20, 21, 22, 23, 24, 25, 26], {"checkpoint.patience": 2}, 8),  # still rising: every epoch
    ([10, 20, 20.5, 20.9, 21, 40, 40, 40], {"checkpoint.patience": 3, "checkpoint.min_delta": 1}, 5),
    ([10, 20, 20, 20, 20, 20, 20, 20], {}, 8),  # no patience: no early stop
])
def test_run_stops_when_the_metric_plateaus(tiny_root, tmp_path, monkeypatch, scores, extra, epochs_run):
    seen = _scripted(monkeypatch, scores)
    cfg = load_train_config(None, overrides(tiny_root, tmp_path, **{"schedule.epochs": 8, **extra}))
    summary = fit(cfg)
    assert len(seen) == epochs_run and summary["epochs"] == epochs_run
    assert summary["stopped_early"] is (epochs_run < 8)
    assert summary["best"]["score"] == max(scores[:epochs_run])
    assert read_curve(tmp_path, "top1") == [(e + 1, float(v)) for e, v in enumerate(scores[:epochs_run])]


def test_curves_are_plotted_from_run_folders(tmp_path):
    for name, vals in (("a", [0.1, 0.3, 0.35]), ("b", [0.2, 0.25])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.csv").write_text(
            "step,epoch,map50\n" + "".join(f"{10 * (i + 1)},{i + 1},{v}\n" for i, v in enumerate(vals)))
    series = plot_curves({"slim": tmp_path / "a", "r50": tmp_path / "b"}, "map50", tmp_path / "c.png")
    assert series == {"slim": [(1, 0.1), (2, 0.3), (3, 0.35)], "r50": [(1, 0.2), (2, 0.25)]}
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(DataError, match="no column 'top1'"):
        read_curve(tmp_path / "a", "top1")
    with pytest.raises(DataError, match="no such file"):
        read_curve(tmp_path, "map50")


def test_patience_survives_a_resume(tiny_root, tmp_path, monkeypatch):
    """Stopped by schedule.epochs after 3 epochs (plateau at epoch 2), then resumed with more
    epochs: one more flat epoch ends it (the plateau count was saved, not restarted)."""
    _scripted(monkeypatch, [10, 20, 20])
    fit(load_train_config(None, overrides(tiny_root, tmp_path, **{"schedule.epochs": 3, "checkpoint.patience": 2})))
    seen = _scripted(monkeypatch, [20, 20, 20])
    cfg = load_train_config(None, overrides(tiny_root, tmp_path, **{"schedule.epochs": 8, "checkpoint.patience": 2}))
    summary = fit(cfg, resume=True)
    assert len(seen) == 1 and summary["epochs"] == 4 and summary["stopped_early"] is True
