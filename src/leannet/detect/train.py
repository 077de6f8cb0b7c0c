"""Training a detector from a DetectConfig: data, loop, validation, checkpoints, resume.

    summary = train(load_detect_config("configs/detect/retinanet_snet146_slim.yaml"))

Checkpoints go to `train.out_dir` through `leannet.train.checkpoint` (safetensors weights
that rebuild the detector alone + the training state beside them): `last` every epoch and
`best` by validation mAP@.5. `resume=True` continues from `last` (optimizer, schedule, EMA,
epoch, RNG).

The optimizer (weight-decay exemptions), the warm-up + cosine schedule and the EMA come from
`leannet.train` (optim, ema). TODO(issue 7/8): this epoch loop predates the shared
`leannet.train.engine` and still lacks what it adds (DDP, AMP, TensorBoard/progress bar,
mid-epoch checkpoints); port it to an `engine.Task` (model, train_set, loss_fn = sum of the
RetinaNet losses, evaluate = COCO mAP, collate_fn, find_unused_parameters=True).
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader

from leannet.detect.config import DataConfig, DetectConfig, SplitConfig
from leannet.detect.data import CocoDetection, collate
from leannet.detect.evaluate import evaluate
from leannet.detect.model import build_detector, detector_meta
from leannet.errors import ConfigError, TrainingError
from leannet.fileio import write_text
from leannet.train.checkpoint import checkpoint_paths, load_checkpoint, save_checkpoint
from leannet.train.config import EmaConfig, OptimConfig, ScheduleConfig
from leannet.train.ema import build_ema
from leannet.train.optim import build_optimizer, build_scheduler

log = logging.getLogger("leannet.detect")


def data_root(cfg: DataConfig) -> Path:
    if cfg.root is not None:
        return Path(cfg.root)
    return Path(os.environ.get("LEANNET_HOME", "~/.cache/leannet")).expanduser() / "data" / "detect"


def split_files(split: SplitConfig, cfg: DataConfig) -> tuple[Path, Path | None]:
    """(annotation file, image folder) of a split; a synthetic split is generated once."""
    if split.synthetic is not None:
        from leannet.detect.synthetic import generate

        s = split.synthetic
        out = data_root(cfg) / f"synthetic_seed{s.seed}_n{s.num_images}_{s.image_size}px"
        return generate(out, s.num_images, seed=s.seed, image_size=s.image_size), None
    return Path(split.ann), Path(split.images) if split.images else None


def make_dataset(split: SplitConfig, cfg: DataConfig, train: bool, strict: bool | None = None) -> CocoDetection:
    ann, images = split_files(split, cfg)
    return CocoDetection(ann, images, strict=cfg.strict if strict is None else strict,
                         keep_empty=cfg.keep_empty, hflip=cfg.hflip if train else 0.0)


def _optimizer(model: nn.Module, cfg: DetectConfig) -> torch.optim.Optimizer:
    t = cfg.train
    return build_optimizer(model, OptimConfig(name=t.optimizer, lr=t.lr, momentum=t.momentum,
                                              weight_decay=t.weight_decay))


def train(cfg: DetectConfig, resume: bool = False) -> dict[str, Any]:
    """Train the detector `cfg` describes; return a summary (best/final mAP, time, paths)."""
    t = cfg.train
    if t.threads:
        torch.set_num_threads(t.threads)
    torch.manual_seed(t.seed)
    out = Path(t.out_dir)
    train_set = make_dataset(cfg.data.train, cfg.data, train=True)
    val_set = make_dataset(cfg.data.val, cfg.data, train=False) if cfg.data.val else None
    for name, ds in (("train", train_set), ("val", val_set)):
        if ds is not None and len(ds.categories) != cfg.model.num_classes:
            raise ConfigError(f"model.num_classes is {cfg.model.num_classes} but the {name} set "
                              f"{ds.ann_file} has {len(ds.categories)} categories {ds.class_names}")
    if val_set is not None and val_set.class_names != train_set.class_names:
        raise ConfigError(f"train and val categories differ: {train_set.class_names} vs {val_set.class_names}")

    model = build_detector(cfg.model)
    opt = _optimizer(model, cfg)
    steps_per_epoch = math.ceil(len(train_set) / t.batch_size)
    total = steps_per_epoch * t.epochs
    sched = build_scheduler(opt, ScheduleConfig(epochs=t.epochs, warmup_epochs=t.warmup_epochs,
                                                warmup_start_factor=1e-3), steps_per_epoch)
    ema = build_ema(model, EmaConfig(enabled=bool(t.ema_decay), decay=t.ema_decay or 0.999))
    meta = detector_meta(cfg.model, train_set.class_names)
    start_epoch, step, best, history = 0, 0, -1.0, []
    if resume:
        _, state, _ = load_checkpoint(out / "last")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if ema is not None and "ema" in state:
            ema.load_state_dict(state["ema"])
        torch.set_rng_state(state["rng"])
        start_epoch, step, best, history = state["epoch"], state["step"], state["best"], state["history"]
        log.info(f"resumed from {checkpoint_paths(out / 'last')[0]} at epoch {start_epoch}")
    else:
        write_text(out / "config.yaml", yaml.safe_dump(cfg.model_dump(), sort_keys=False))

    t0 = time.perf_counter() - (history[-1]["time_s"] if history else 0.0)
    for epoch in range(start_epoch, t.epochs):
        model.train()
        # Shuffle order depends only on (seed, epoch), so a resumed run sees the same batches.
        loader = DataLoader(train_set, batch_size=t.batch_size, shuffle=True, collate_fn=collate,
                            num_workers=cfg.data.workers,
                            generator=torch.Generator().manual_seed(t.seed * 1000 + epoch))
        seen, loss_sum, e0 = 0, 0.0, time.perf_counter()
        for images, targets in loader:
            losses = model(images, targets)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise TrainingError(f"non-finite loss ({ {k: float(v.detach()) for k, v in losses.items()} }) at epoch "
                                    f"{epoch + 1} step {step}; lower train.lr or check the boxes. The last good "
                                    f"checkpoint is {checkpoint_paths(out / 'last')[0]}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if t.clip_grad:
                nn.utils.clip_grad_norm_(model.parameters(), t.clip_grad)
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            step += 1
            seen += len(images)
            loss_sum += float(loss.detach()) * len(images)
            if step % t.log_every == 0:
                log.info(f"epoch {epoch + 1}/{t.epochs} step {step}/{total} loss {float(loss.detach()):.4f} "
                         f"lr {sched.get_last_lr()[0]:.2e} {seen / (time.perf_counter() - e0):.1f} img/s")
        row: dict[str, Any] = {"epoch": epoch + 1, "step": step, "loss": loss_sum / max(1, seen),
                               "lr": sched.get_last_lr()[0], "img_s": seen / (time.perf_counter() - e0)}
        final = ema.module if ema is not None else model
        if val_set is not None and ((epoch + 1) % t.eval_every == 0 or epoch + 1 == t.epochs):
            row.update(evaluate(final, val_set, batch_size=t.batch_size))
        row["time_s"] = time.perf_counter() - t0
        history.append(row)
        log.info(f"epoch {epoch + 1}/{t.epochs} " + " ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items() if k != "epoch"))
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "epoch": epoch + 1, "step": step, "rng": torch.get_rng_state(), "history": history,
                 "config": cfg.model_dump()}
        if ema is not None:
            state["ema"] = ema.state_dict()
        score = row.get("map50", -1.0)
        if score > best:
            best = score
            save_checkpoint(out / "best", final, {**state, "best": best}, meta)
        save_checkpoint(out / "last", final, {**state, "best": best}, meta)
        _write_csv(out / "log.csv", history)
    last = history[-1]
    return {"epochs": t.epochs, "time_s": last["time_s"], "loss": last["loss"],
            "map": last.get("map"), "map50": last.get("map50"), "best_map50": best if best >= 0 else None,
            "weights": str(checkpoint_paths(out / "last")[0]),
            "best_weights": str(checkpoint_paths(out / "best")[0]) if best >= 0 else None,
            "train_report": train_set.report.summary()}


def _write_csv(path: Path, history: list[dict[str, Any]]) -> None:
    import io

    keys = list(dict.fromkeys(k for row in history for k in row))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(history)
    write_text(path, buf.getvalue())


def train_from_config(path: str | None, overrides: list[str] | tuple[str, ...] = (), resume: bool = False,
                      strict: bool = False) -> dict[str, Any]:
    """`leannet detect train`: load and validate the config, then train (progress to stderr)."""
    from leannet.detect.config import load_detect_config

    cfg = load_detect_config(path, [*overrides, *(["data.strict=true"] if strict else [])])
    if not logging.getLogger().handlers and not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    return train(cfg, resume=resume)
