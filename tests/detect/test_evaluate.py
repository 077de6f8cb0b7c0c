"""Detector evaluation against answers worked out by hand: COCO AP is a ranking and
interpolation rule, so small cases have exact values (101 recall points, 10 IoU thresholds)."""

import pytest
import torch

pytest.importorskip("pycocotools", reason="pycocotools (the 'detect' extra) computes COCO mAP")

from leannet.detect.evaluate import coco_detections, coco_map

# Category ids that are neither 0-based nor contiguous, so an index used as an id shows.
CATS = [{"id": 7, "name": "page"}, {"id": 3, "name": "card"}]


def _gt(boxes):
    """One 100x100 image per entry of `boxes`: (image_id, category_id, [x, y, w, h])."""
    images = [{"id": i, "width": 100, "height": 100, "file_name": f"{i}.jpg"} for i in sorted({b[0] for b in boxes})]
    anns = [{"id": k + 1, "image_id": iid, "category_id": cid, "bbox": box, "area": box[2] * box[3], "iscrowd": 0}
            for k, (iid, cid, box) in enumerate(boxes)]
    return {"images": images, "annotations": anns, "categories": CATS}


def _det(iid, cid, box, score):
    return {"image_id": iid, "category_id": cid, "bbox": box, "score": score}


GT = _gt([(1, 3, [10, 10, 20, 20]), (1, 7, [50, 40, 30, 50]), (2, 3, [0, 0, 40, 30])])


def test_perfect_detections_score_one():
    dets = [_det(a["image_id"], a["category_id"], a["bbox"], 0.9) for a in GT["annotations"]]
    assert coco_map(GT, dets) == pytest.approx({"map": 1.0, "map50": 1.0, "map75": 1.0})


def test_coco_map_prints_nothing(capsys):
    """pycocotools prints its progress and summary table; leannet's CLI prints its own."""
    coco_map(GT, [_det(1, 3, [10, 10, 20, 20], 0.9)])
    assert capsys.readouterr().out == ""


def test_no_detections_score_zero():
    assert coco_map(GT, []) == {"map": 0.0, "map50": 0.0, "map75": 0.0}


def test_right_box_wrong_category_scores_zero():
    swapped = {3: 7, 7: 3}
    dets = [_det(a["image_id"], swapped[a["category_id"]], a["bbox"], 0.9) for a in GT["annotations"]]
    assert coco_map(GT, dets) == {"map": 0.0, "map50": 0.0, "map75": 0.0}


def test_partial_case_by_hand():
    # One category, two ground-truth boxes A and B on one image. Ranked detections:
    #   0.9  exactly A                       -> TP at every IoU threshold
    #   0.8  far from both                   -> FP
    #   0.7  B cut to 72% of its height      -> IoU 0.72: TP for thresholds .50-.70, FP for .75-.95
    # Thresholds .50-.70: recall 1/2, 1/2, 1; precision 1, 1/2, 2/3. COCO's precision at recall
    # r is the best precision at recall >= r, so 51 of the 101 recall points (0 to .50) read 1 and
    # the other 50 read 2/3: AP = (51 + 50 * 2/3) / 101.
    # Thresholds .75-.95: recall never passes 1/2: AP = 51 / 101.
    gt = {"images": [{"id": 1, "width": 100, "height": 100, "file_name": "1.jpg"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [0, 0, 20, 20], "area": 400, "iscrowd": 0},
                          {"id": 2, "image_id": 1, "category_id": 3, "bbox": [50, 50, 10, 10], "area": 100, "iscrowd": 0}],
          "categories": [{"id": 3, "name": "card"}]}
    dets = [_det(1, 3, [0, 0, 20, 20], 0.9), _det(1, 3, [25, 80, 10, 10], 0.8), _det(1, 3, [50, 50, 10, 7.2], 0.7)]
    high, low = (51 + 50 * 2 / 3) / 101, 51 / 101
    got = coco_map(gt, dets)
    assert got["map50"] == pytest.approx(high, abs=1e-12)
    assert got["map75"] == pytest.approx(low, abs=1e-12)
    assert got["map"] == pytest.approx((5 * high + 5 * low) / 10, abs=1e-12)


class _FixedDetector(torch.nn.Module):
    """Returns given xyxy boxes and label indices, one output per input image."""

    def __init__(self, outputs):
        super().__init__()
        self.outputs = outputs

    def forward(self, images):
        return [self.outputs[int(img[0, 0, 0])] for img in images]


class _Dataset(torch.utils.data.Dataset):
    # the parts of CocoDetection that coco_detections reads: categories sorted by id, and
    # (image, target) pairs whose target carries the COCO image id
    categories = sorted(CATS, key=lambda c: c["id"])  # label 0 -> id 3, label 1 -> id 7

    def __init__(self, image_ids):
        self.image_ids = image_ids

    def __len__(self):
        return len(self.image_ids)

    def __getitem__(self, i):
        return torch.full((3, 8, 8), float(i)), {"image_id": torch.tensor(self.image_ids[i])}


def test_coco_detections_map_labels_to_ids_and_boxes_to_xywh():
    outputs = [
        {"boxes": torch.tensor([[10.0, 10.0, 30.0, 30.0], [50.0, 40.0, 80.0, 90.0]]),
         "scores": torch.tensor([0.9, 0.6]), "labels": torch.tensor([0, 1])},
        {"boxes": torch.tensor([[0.0, 0.0, 40.0, 30.0]]), "scores": torch.tensor([0.8]), "labels": torch.tensor([0])},
    ]
    got = coco_detections(_FixedDetector(outputs), _Dataset([1, 2]), batch_size=1)
    assert got == [
        {"image_id": 1, "category_id": 3, "bbox": [10.0, 10.0, 20.0, 20.0], "score": pytest.approx(0.9)},
        {"image_id": 1, "category_id": 7, "bbox": [50.0, 40.0, 30.0, 50.0], "score": pytest.approx(0.6)},
        {"image_id": 2, "category_id": 3, "bbox": [0.0, 0.0, 40.0, 30.0], "score": pytest.approx(0.8)},
    ]
    # the same detections are GT's boxes: the pair scores a perfect 1.0
    assert coco_map(GT, got)["map"] == pytest.approx(1.0)


def test_predict_runs_the_model_in_eval_mode_without_grad():
    class Probe(torch.nn.Module):
        def forward(self, images):
            return [{"training": self.training, "grad": torch.is_grad_enabled(), "n": len(images)}]

    from leannet.detect.evaluate import predict

    model = Probe().train()
    assert predict(model, [torch.zeros(3, 4, 4)] * 2) == [{"training": False, "grad": False, "n": 2}]


def test_measure_fps_reports_the_timer_for_one_square_image(monkeypatch):
    """The timer itself is leannet.runtime.timing's (tested there); here a stub timer with known
    figures checks what measure_fps times and how it reports: FPS = 1000 / median ms."""
    import leannet.runtime.timing as timing
    from leannet.detect.evaluate import measure_fps

    seen = {}

    def fake_measure(call, batch, min_time, threads):
        seen.update(batch=batch, min_time=min_time, threads=threads, out=call())
        return {"median_ms": 4.0, "p90_ms": 5.0, "iqr_ms": 0.5, "contended": True}

    class Probe(torch.nn.Module):
        def forward(self, images):
            return [(len(images), tuple(images[0].shape), self.training, torch.is_inference_mode_enabled())]

    monkeypatch.setattr(timing, "measure", fake_measure)
    r = measure_fps(Probe().train(), 24, min_time=0.3)
    assert seen == {"batch": 1, "min_time": 0.3, "threads": torch.get_num_threads(),
                    "out": [(1, (3, 24, 24), False, True)]}
    assert r == {"median_ms": 4.0, "p90_ms": 5.0, "iqr_ms": 0.5, "fps": 250.0,
                 "threads": torch.get_num_threads(), "contended": True}


def test_complexity_matches_fvcore_on_the_raw_detector():
    pytest.importorskip("fvcore")
    from leannet.detect.config import ModelConfig
    from leannet.detect.evaluate import complexity
    from leannet.detect.model import RawDetector, build_detector
    from tests.helpers import fvcore_macs

    model = build_detector(ModelConfig(backbone="pplcnet_x0_25", image_size=64, extra_levels=0)).eval()
    got = complexity(model, 48)
    assert got == {"params": sum(p.numel() for p in model.parameters()),
                   "macs": fvcore_macs(RawDetector(model), (3, 48, 48))}


def test_evaluate_weights_of_a_checkpoint(tmp_path, monkeypatch):
    """`detect eval` end to end on a tiny checkpoint: mAP as evaluate() gives it on the same
    pipeline, params and MACs against fvcore, the timer's figures, the unreadable image reported."""
    import json

    import numpy as np
    from PIL import Image

    import leannet.runtime.timing as timing
    from leannet.detect.config import ModelConfig
    from leannet.detect.data import CocoDetection
    from leannet.detect.evaluate import evaluate, evaluate_weights
    from leannet.detect.model import RawDetector, build_detector, detector_meta
    from leannet.detect.pipeline import open_detector
    from leannet.errors import ConfigError
    from leannet.weights import save_weights
    from tests.helpers import fvcore_macs

    cfg = ModelConfig(backbone="pplcnet_x0_25", fpn_channels=16, head_channels=16, image_size=64)
    model = build_detector(cfg).eval()
    with torch.no_grad():  # spread-out scores: a fresh head detects nothing
        for p in model.head.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.1)
    weights = str(save_weights(model, tmp_path / "det.safetensors", meta=detector_meta(cfg, ["card", "page"])))
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    images = [{"id": i + 1, "file_name": f"{i}.png", "width": 80, "height": 80} for i in range(3)]
    anns = [{"id": i + 1, "image_id": i + 1, "category_id": 1 + i % 2, "bbox": [4, 4, 30, 20],
             "area": 600, "iscrowd": 0} for i in range(3)]
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": images, "annotations": anns,
                               "categories": [{"id": 1, "name": "card"}, {"id": 2, "name": "page"}]}))
    timed = []

    def fake_measure(call, batch, min_time, threads):
        timed.append(len(call()))  # the pipeline's output for the one timed image
        return {"median_ms": 8.0, "p90_ms": 9.0, "iqr_ms": 1.0, "contended": False}

    monkeypatch.setattr(timing, "measure", fake_measure)

    r = evaluate_weights(weights, ann=str(ann))
    ref = evaluate(open_detector(weights), CocoDetection(str(ann)))
    assert {k: r[k] for k in ("map", "map50", "map75")} == ref
    assert (r["weights"], r["runtime"], r["precision"], r["images"], r["image_size"]) == (
        weights, "eager", "fp32", 3, 64)
    assert r["params"] == sum(p.numel() for p in model.parameters())
    assert r["macs"] == fvcore_macs(RawDetector(model), (3, 64, 64))
    assert (r["fps"], r["median_ms"], r["threads"], timed) == (125.0, 8.0, torch.get_num_threads(), [1])
    assert r["skipped_images"] == [str(tmp_path / "2.png")]
    summary, _, tail = r["data_report"].partition("; 1 unreadable")
    assert summary and tail == f" images skipped (first: {tmp_path / '2.png'})"  # the dataset's own summary first
    assert "fps" not in evaluate_weights(weights, ann=str(ann), speed=False)
    with pytest.raises(ConfigError, match="give --ann"):
        evaluate_weights(weights)
    ann.write_text(ann.read_text().replace('"page"', '"form"'))
    with pytest.raises(ConfigError, match=r"detects \['card', 'page'\] but .* \['card', 'form'\]"):
        evaluate_weights(weights, ann=str(ann))
