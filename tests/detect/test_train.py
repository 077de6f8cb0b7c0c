"""End to end on tiny synthetic data: overfit, evaluate, infer, pseudo-label, train a student."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from leannet.cli import main
from leannet.detect.config import load_detect_config
from leannet.detect.data import load_coco, split_files
from leannet.detect.evaluate import coco_map
from leannet.detect.model import load_detector
from leannet.detect.train import train
from leannet.errors import TrainingError

TINY = "configs/detect/tiny_test.yaml"


def _cfg(tmp, *overrides):
    return load_detect_config(TINY, [f"data.root={tmp / 'data'}", f"run.out_dir={tmp / 'run'}", "log.progress=false", *overrides])


@pytest.fixture(scope="module")
def overfit(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("overfit")
    cfg = _cfg(tmp)
    summary = train(cfg)
    ann, _ = split_files(cfg.data.train, cfg.data)
    return tmp, cfg, summary, ann


def test_tiny_detector_overfits(overfit):
    _, _, summary, _ = overfit
    assert summary["best"]["map50"] >= 0.9, summary
    assert summary["best"]["map"] >= 0.7, summary


def test_weights_alone_rebuild_the_detector(overfit):
    _, cfg, summary, _ann = overfit
    model, classes = load_detector(summary["best_weights"])
    assert classes == ["card", "page"]
    assert model.config == cfg.model


def test_eval_cli_scores_its_own_detections_as_perfect(overfit, tmp_path, capsys):
    # A known answer: with the detector's own boxes (score >= 0.3) as ground truth, every
    # ground-truth box is found first, at IoU 1, so the eval CLI must report AP 1.0 at every
    # threshold; its lower-scored extra boxes rank after full recall and cost nothing.
    _, _, summary, ann = overfit
    images = ann.parent / "images"
    own = tmp_path / "own.json"
    assert main(["detect", "pseudo-label", "--teacher", summary["best_weights"], "--images", str(images),
                 "--score-thr", "0.3", "--out", str(own)]) == 0
    capsys.readouterr()
    assert json.loads(own.read_text())["annotations"]  # a real test: there are boxes to find
    assert main(["detect", "eval", "--weights", summary["best_weights"], "--ann", str(own),
                 "--images", str(images), "--no-speed"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["map"] == pytest.approx(1.0) and result["map50"] == pytest.approx(1.0)
    assert result["params"] > 0 and result["macs"] > 0


def test_infer_draws_png_and_json(overfit, tmp_path):
    _, _, summary, ann = overfit
    image = ann.parent / "images" / "000000.jpg"
    assert main(["detect", "infer", str(image), "--weights", summary["best_weights"], "--out", str(tmp_path)]) == 0
    png = tmp_path / "000000.png"
    drawn, original = Image.open(png), Image.open(image).convert("RGB")
    assert drawn.size == original.size
    diff = np.abs(np.asarray(drawn.convert("RGB"), np.int16) - np.asarray(original, np.int16)).sum(-1)
    assert (diff > 0).sum() > 100  # boxes were drawn
    records = json.loads((tmp_path / "detections.json").read_text())
    truth = [a for a in json.loads(ann.read_text())["annotations"] if a["image_id"] == 1]
    assert len(records[0]["detections"]) >= len(truth)


def test_pseudo_labels_are_valid_coco_and_train_a_student(overfit, tmp_path, capsys):
    _tmp, _, summary, ann = overfit
    images = ann.parent / "images"
    out = tmp_path / "pseudo.json"
    assert main(["detect", "pseudo-label", "--teacher", summary["last"], "--images", str(images),
                 "--score-thr", "0.5", "--out", str(out)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["images"] == 6
    pseudo, _report = load_coco(out, images, strict=True)  # valid COCO, nothing to report
    from pycocotools.coco import COCO

    COCO(str(out))  # pycocotools reads it
    # The teacher overfit these images, so its labels are (nearly) the ground truth.
    gt, _ = load_coco(ann)
    dets = [{**a, "score": a["score"]} for a in pseudo["annotations"]]
    assert coco_map(gt, dets)["map50"] >= 0.9
    student = _cfg(tmp_path, f"data.train.ann={out}", f"data.train.images={images}", "data.train.synthetic=null",
                   "schedule.epochs=2", "model.backbone=mobilenetv1_x1_0")
    result = train(student)
    assert result["steps"] == 2 and 0 <= result["best"]["map50"] <= 1


def test_resume_continues_exactly(tmp_path, monkeypatch):
    import leannet.train.engine as mod

    base = ["schedule.epochs=3", "data.hflip=0.5"]
    full = train(_cfg(tmp_path / "a", *base))
    real_save, calls = mod.save_checkpoint, []

    def crash_after_epoch_2(stem, model, state, meta):
        real_save(stem, model, state, meta)
        calls.append(stem)
        if state["epoch"] == 2 and stem.name == "last":
            raise KeyboardInterrupt

    monkeypatch.setattr(mod, "save_checkpoint", crash_after_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tmp_path / "b", *base))
    monkeypatch.setattr(mod, "save_checkpoint", real_save)
    resumed = train(_cfg(tmp_path / "b", *base), resume=True)
    a = load_detector(full["last"])[0].state_dict()
    b = load_detector(resumed["last"])[0].state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_class_count_mismatch(tmp_path):
    from leannet.errors import ConfigError

    with pytest.raises(ConfigError, match=r"model\.num_classes is 3 but the train set"):
        train(_cfg(tmp_path, "model.num_classes=3"))


def test_nonfinite_loss_stops_with_checkpoint_named(tmp_path):
    with pytest.raises(TrainingError, match=r"non-finite loss .* stopped"):
        train(_cfg(tmp_path, "optim.lr=1e30", "optim.clip_grad_norm=null", "schedule.epochs=3", "optim.name=sgd"))


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["detect", "train", "-c", TINY, "-o", "model.head_widht=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "model.head_widht: unknown key" in err
    assert main(["detect", "infer", "x.jpg", "--weights", str(tmp_path / "none.safetensors"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    # one line that names the missing file, not a traceback
    assert err.count("\n") == 0 and "no such file" in err and str(tmp_path / "none.safetensors") in err
