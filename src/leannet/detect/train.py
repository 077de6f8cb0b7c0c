"""Training a detector from a DetectConfig, on the shared trainer (`leannet.train.engine`).

    summary = train(load_detect_config("configs/detect/retinanet_snet146_slim.yaml"))
    torchrun --nproc-per-node 2 -m leannet detect train -c CONFIG      # DDP (gloo on CPU)

The detector is an engine `Task` (RetinaNet's summed focal + box losses; COCO mAP on
`data.val`), so it gets what classification gets: the optimizer with weight-decay exemptions,
warm-up + cosine schedule, gradient clipping, EMA, AMP, DDP, progress/CSV/TensorBoard logs,
non-finite-loss stops, and `last`/`best` checkpoints in `run.out_dir` (safetensors whose
metadata rebuilds the detector alone, + training state) that `--resume` continues exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from torch import nn

from leannet.detect.config import DetectConfig
from leannet.detect.data import collate, make_dataset
from leannet.detect.evaluate import evaluate
from leannet.detect.model import build_detector, detector_meta
from leannet.errors import ConfigError
from leannet.fileio import write_text
from leannet.train.engine import StepOutput, Task


def build_task(cfg: DetectConfig) -> Task:
    """The detector as a task of the shared trainer: RetinaNet's summed focal + box losses,
    COCO mAP on `data.val` as the metric (`checkpoint.metric`, default map50)."""
    train_set = make_dataset(cfg.data.train, cfg.data, train=True, seed=cfg.run.seed)
    val_set = make_dataset(cfg.data.val, cfg.data, train=False)
    for name, ds in (("train", train_set), ("val", val_set)):
        if len(ds.categories) != cfg.model.num_classes:
            raise ConfigError(f"model.num_classes is {cfg.model.num_classes} but the {name} set "
                              f"{ds.ann_file} has {len(ds.categories)} categories {ds.class_names}")
    if val_set.class_names != train_set.class_names:
        raise ConfigError(f"train and val categories differ: {train_set.class_names} vs {val_set.class_names}")

    def loss_fn(net: nn.Module, batch) -> StepOutput:
        images, targets, skipped = batch
        losses = net(images, targets)
        return StepOutput(loss=sum(losses.values()), images=len(images), skipped=skipped)

    return Task(model=build_detector(cfg.model), train_set=train_set, batch_size=cfg.data.batch_size,
                loss_fn=loss_fn, evaluate=lambda m: evaluate(m, val_set, batch_size=cfg.data.batch_size),
                meta=detector_meta(cfg.model, train_set.class_names), config=cfg.model_dump(mode="json"),
                collate_fn=collate, workers=cfg.data.workers,
                # an image without boxes leaves the box head out of the loss
                find_unused_parameters=True)


def train(cfg: DetectConfig, resume: bool = False) -> dict[str, Any]:
    """Train the detector `cfg` describes (in this process or as a torchrun rank); return the
    shared trainer's summary plus `train_report` (what the annotation check found)."""
    from leannet.train.distributed import cleanup, init_distributed
    from leannet.train.engine import seed_everything
    from leannet.train.engine import train as run

    dist = init_distributed(cfg.run.device)
    seed_everything(cfg.run.seed + dist.rank, cfg.run.deterministic)  # detector init is seeded too
    try:
        task = build_task(cfg)
        if dist.is_main and not resume:
            write_text(Path(cfg.run.out_dir) / "config.yaml",
                       yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        summary = run(task, cfg, dist, resume=resume)
    finally:
        cleanup()
    return {**summary, "train_report": task.train_set.report.summary()}


def train_from_config(path: str | None, overrides: list[str] | tuple[str, ...] = (), resume: bool = False,
                      strict: bool = False) -> dict[str, Any]:
    """`leannet detect train`: load and validate the config, then train."""
    from leannet.detect.config import load_detect_config

    cfg = load_detect_config(path, [*overrides, *(["data.strict=true"] if strict else [])])
    return train(cfg, resume=resume)
