"""Image classification on the shared engine: datasets from the config, the loss (label
smoothing, mixup/cutmix, distillation), top-1/top-5 evaluation, and the two entry points the
CLI calls: `train_from_config` and `evaluate_from_config`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset

from leannet.data import (
    ImageDataset,
    Samples,
    collate,
    image_folder,
    list_file,
    prepare_digits,
    unlabeled_folder,
)
from leannet.data.datasets import check_labels
from leannet.data.transforms import batch_mix, eval_transform, train_transform
from leannet.errors import DataError
from leannet.factory import create_model
from leannet.registry import IMAGENET_MEAN, IMAGENET_STD
from leannet.runtime.threads import torch_threads
from leannet.train.config import DataConfig, TrainConfig, load_train_config
from leannet.train.distill import DistillLoss, load_teacher
from leannet.train.distributed import DistInfo, all_reduce_sum, barrier, cleanup, init_distributed
from leannet.train.engine import StepOutput, Task, autocast, autocast_dtype, seed_everything, train


def load_samples(cfg: DataConfig, num_classes: int | None, is_main: bool = True) -> tuple[Samples, Samples]:
    """(train, val) samples of the configured dataset, labels checked against the class count."""
    if cfg.kind == "digits":
        if is_main:  # one process writes the folder; the others wait for it
            prepare_digits(cfg.root)
        barrier()
        root = prepare_digits(cfg.root)
        train, val = image_folder(root / "train"), image_folder(root / "val")
    elif cfg.kind == "imagefolder":
        train, val = image_folder(cfg.root / "train"), image_folder(cfg.root / "val")
    else:
        numbered = [str(i) for i in range(num_classes)] if num_classes else None
        train = list_file(cfg.root / cfg.train_list, cfg.root, numbered)
        val = list_file(cfg.root / cfg.val_list, cfg.root, numbered or train.classes)
    if cfg.kind != "list" and train.classes != val.classes:
        raise DataError(f"{train.source} and {val.source} have different class folders")
    n = num_classes or len(train.classes)
    if len(train.classes) > n:
        raise DataError(f"{train.source} has {len(train.classes)} classes but model.num_classes={n}: "
                        f"labels {n}..{len(train.classes) - 1} are outside the class range")
    check_labels(train, n)
    check_labels(val, n)
    return train, val


def preprocessing(cfg: DataConfig, model: nn.Module) -> dict[str, Any]:
    info = getattr(model, "pretrained_cfg", None)  # leannet ModelInfo, or timm's dict
    info = info if isinstance(info, dict) else vars(info) if info is not None else {}
    mean = cfg.mean or info.get("mean") or IMAGENET_MEAN
    std = cfg.std or info.get("std") or IMAGENET_STD
    return {"input_size": [3, cfg.input_size, cfg.input_size], "mean": list(mean), "std": list(std),
            "interpolation": "bilinear", "crop_pct": cfg.crop_pct}


def train_size(cfg: DataConfig, epoch: int) -> int:
    """Progressive resizing: the crop grows linearly to `input_size` (multiples of 4)."""
    if cfg.progressive_start is None or cfg.progressive_epochs == 0:
        return cfg.input_size
    frac = min(1.0, epoch / cfg.progressive_epochs)
    size = cfg.progressive_start + (cfg.input_size - cfg.progressive_start) * frac
    return int(min(cfg.input_size, max(cfg.progressive_start, round(size / 4) * 4)))


def build_model(cfg: TrainConfig, num_classes: int) -> nn.Module:
    m = cfg.model
    # Through the same loader as create_model(pretrained=...): timm/official layouts convert,
    # and every tensor but an explicitly reset head must fit.
    return create_model(m.name, num_classes=num_classes, drop_rate=m.drop_rate, pretrained=m.pretrained,
                        reset_head=m.head_reset)


@torch.no_grad()
def evaluate_model(model: nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
    """top-1 / top-5 (%) and mean cross-entropy over every rank's share of `loader`'s set."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64)  # correct@1, correct@5, loss sum, count
    for x, y, _ in loader:
        x, y = x.to(device), y.to(device)
        logits = model(x).float()
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        hit = top == y[:, None]
        sums += torch.tensor([hit[:, 0].sum().item(), hit.any(1).sum().item(),
                              F.cross_entropy(logits, y, reduction="sum").item(), len(y)], dtype=torch.float64)
    model.train(was_training)
    c1, c5, loss, n = all_reduce_sum(sums).tolist()
    if n == 0:
        raise DataError("empty dataset: the validation set has no readable images")
    return {"top1": 100 * c1 / n, "top5": 100 * c5 / n, "loss": loss / n}


def _eval_loader(ds: ImageDataset, cfg: DataConfig, dist: DistInfo) -> DataLoader:
    # Unpadded shards (rank, rank + world, ...): every image is counted exactly once.
    shard = Subset(ds, range(dist.rank, len(ds), dist.world_size))
    bs = cfg.eval_batch_size or max(1, cfg.batch_size // dist.world_size)
    return DataLoader(shard, batch_size=bs, num_workers=cfg.workers, collate_fn=collate,
                      generator=torch.Generator().manual_seed(0))


def build_task(cfg: TrainConfig, dist: DistInfo, model: nn.Module | None = None) -> Task:
    d = cfg.data
    train_s, val_s = load_samples(d, cfg.model.num_classes, dist.is_main)
    num_classes = cfg.model.num_classes or len(train_s.classes)
    if model is None:
        model = build_model(cfg, num_classes)
    model = model.to(dist.device)
    pre = preprocessing(d, model)
    mean, std = pre["mean"], pre["std"]

    def make_train_tf(epoch: int):
        return train_transform(train_size(d, epoch), d.augment, mean, std)

    items = list(train_s.items)
    if cfg.distill.unlabeled_root is not None:
        items += unlabeled_folder(cfg.distill.unlabeled_root).items
    train_ds = ImageDataset(items, make_train_tf(0), seed=cfg.run.seed, strict=d.strict)
    val_ds = ImageDataset(val_s.items, eval_transform(d.input_size, d.crop_pct, mean, std), strict=d.strict)
    val_loader = _eval_loader(val_ds, d, dist)

    ce = nn.CrossEntropyLoss(label_smoothing=cfg.loss.label_smoothing)
    mix = batch_mix(d.augment, num_classes)
    distill = None
    if cfg.distill.teacher is not None:
        distill = DistillLoss(load_teacher(cfg.distill, num_classes, dist.device), cfg.distill, ce)

    def loss_fn(net: nn.Module, batch) -> StepOutput:
        x, y, skipped = batch
        x, y = x.to(dist.device, non_blocking=True), y.to(dist.device, non_blocking=True)
        if mix is not None:
            x, y = mix(x, y)
        logits = net(x)
        loss = distill(x, logits, y) if distill is not None else ce(logits.float(), y)
        return StepOutput(loss, len(x), skipped)

    def on_epoch(epoch: int) -> None:
        train_ds.set_epoch(epoch, make_train_tf(epoch))

    meta = {"arch": cfg.model.name, "num_classes": num_classes, "classes": train_s.classes,
            "preprocessing": pre}
    return Task(model=model, train_set=train_ds, batch_size=d.batch_size, loss_fn=loss_fn,
                evaluate=lambda m: evaluate_model(m, val_loader, dist.device), meta=meta,
                config=cfg.model_dump(mode="json"), collate_fn=collate, workers=d.workers,
                on_epoch=on_epoch)


def fit(cfg: TrainConfig, resume: bool = False, model: nn.Module | None = None) -> dict[str, Any]:
    """Train `cfg` (in this process, or as one rank under torchrun); returns the summary.
    `model` replaces `cfg.model.name` (e.g. a timm model for a like-for-like benchmark)."""
    dist = init_distributed(cfg.run.device)
    seed_everything(cfg.run.seed + dist.rank, cfg.run.deterministic)  # model init is seeded too
    try:
        return train(build_task(cfg, dist, model), cfg, dist, resume=resume)
    finally:
        cleanup()


def train_from_config(path: str | Path, overrides: list[str] | tuple[str, ...] = (), resume: bool = False,
                      strict: bool = False) -> dict[str, Any]:
    """`leannet train -c CONFIG -o key=value --resume --strict`."""
    overrides = [*overrides, "data.strict=true"] if strict else list(overrides)
    return fit(load_train_config(path, overrides), resume=resume)


def evaluate_from_config(path: str | Path, weights: str | Path, overrides: list[str] | tuple[str, ...] = (),
                         strict: bool = False) -> dict[str, float]:
    """`leannet eval -c CONFIG --weights W`: top-1/top-5/loss of `weights` on the val split."""
    from leannet.weights import load_weights, read_metadata

    overrides = [*overrides, "data.strict=true"] if strict else list(overrides)
    cfg = load_train_config(path, overrides)
    dist = init_distributed(cfg.run.device)
    try:
        with torch_threads(cfg.run.threads):
            meta = read_metadata(weights)
            num_classes = cfg.model.num_classes or meta.get("num_classes")
            _, val_s = load_samples(cfg.data, num_classes, dist.is_main)
            num_classes = num_classes or len(val_s.classes)
            model = create_model(meta.get("arch", cfg.model.name), **{**meta.get("model_args", {}),
                                                                      "num_classes": num_classes})
            load_weights(model, weights)
            model = model.to(dist.device)
            pre = preprocessing(cfg.data, model)
            val_ds = ImageDataset(val_s.items, eval_transform(cfg.data.input_size, cfg.data.crop_pct,
                                                              pre["mean"], pre["std"]), strict=cfg.data.strict)
            with autocast(autocast_dtype(cfg.amp, dist.device), dist.device):
                metrics = evaluate_model(model, _eval_loader(val_ds, cfg.data, dist), dist.device)
            return {**metrics, "images": len(val_s.items)}
    finally:
        cleanup()


def format_metrics(m: dict[str, float]) -> str:
    return (f"top-1 {m['top1']:.2f}%  top-5 {m['top5']:.2f}%  loss {m['loss']:.4f}"
            + (f"  ({m['images']} images)" if "images" in m else "")) if math.isfinite(m["top1"]) else str(m)
