"""The task-agnostic training engine shared by classification (`loop.py`) and detection.

A task supplies a model, a training dataset, a loss function over a batch and an evaluation
function; `train` does everything else: DDP, sampling, AMP, the optimizer and schedule (with
weight-decay exemptions and annealing), gradient clipping, EMA, non-finite-loss detection,
progress/CSV/TensorBoard logging, and atomic `last`/`best` checkpoints that resume exactly,
mid-epoch included.

Exact resume rests on three facts: the sampler's order is a function of (seed, epoch); each
sample's augmentation is a function of (seed, epoch, index) (see `leannet.data.ImageDataset`);
and every RNG the step itself uses (dropout, mixup) is saved per rank in the checkpoint.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, default_collate

from leannet.errors import ConfigError, DataError, TrainingError, WeightsError
from leannet.runtime.threads import torch_threads
from leannet.train.checkpoint import checkpoint_paths, read_training_state, save_checkpoint
from leannet.train.config import AmpConfig, EngineConfig
from leannet.train.distributed import (
    DistInfo,
    all_gather_object,
    all_reduce_mean,
    barrier,
    wrap_ddp,
)
from leannet.train.ema import build_ema
from leannet.train.logging import RunLogger
from leannet.train.optim import build_optimizer, build_scheduler, set_weight_decay
from leannet.weights.io import load_into


@dataclass
class StepOutput:
    loss: torch.Tensor  # mean loss of this rank's batch (what backward runs on)
    images: int  # images in this rank's batch (for img/s)
    skipped: list[str] = field(default_factory=list)  # unreadable images dropped from the batch


@dataclass
class Task:
    """What `train` needs from a task."""

    model: nn.Module  # unwrapped, already on the device
    train_set: Dataset  # optional set_epoch(epoch) is called before each epoch
    batch_size: int  # global: split evenly across ranks
    loss_fn: Callable[[nn.Module, Any], StepOutput]  # (DDP-wrapped model, batch) -> StepOutput
    # (unwrapped model) -> global metrics; called on every rank (all-reduce inside)
    evaluate: Callable[[nn.Module], dict[str, float]]
    meta: dict[str, Any]  # stored in every saved .safetensors (arch, preprocessing, classes)
    config: dict[str, Any]  # the full config as a plain dict, stored in the training state
    collate_fn: Callable | None = None
    workers: int = 0
    on_epoch: Callable[[int], None] | None = None  # e.g. progressive resizing
    # DDP option for models whose forward leaves some parameters unused (e.g. a detector
    # whose loss skips a head when an image has no boxes)
    find_unused_parameters: bool = False


class _Skip(Sampler):
    """The tail of a sampler's epoch order: resuming mid-epoch starts at the next batch."""

    def __init__(self, sampler: Sampler, start: int):
        self.sampler, self.start = sampler, start

    def __iter__(self) -> Iterator[int]:
        return iter(list(self.sampler)[self.start:])

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.start)


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def rng_state() -> dict[str, Any]:
    """This process's RNG states as tensors and plain containers (weights_only-loadable)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def autocast_dtype(cfg: AmpConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `cfg` on `device`, or None for fp32."""
    if cfg.dtype == "off":
        return None
    if device.type == "cpu":
        if cfg.dtype == "fp16":
            raise ConfigError("amp.dtype=fp16 needs a GPU; use bf16 (or auto) on CPU")
        native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        return torch.bfloat16 if cfg.dtype == "bf16" or native else None
    if cfg.dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cfg.dtype == "bf16" else torch.float16


def autocast(dtype: torch.dtype | None, device: torch.device) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def train(task: Task, cfg: EngineConfig, dist: DistInfo, resume: bool = False) -> dict[str, Any]:
    """Run (or resume) training; returns a summary dict (best metrics, time, img/s, paths).
    `run.threads` holds for the run; the caller's thread count comes back after it."""
    with torch_threads(cfg.run.threads):
        return _train(task, cfg, dist, resume)


def _train(task: Task, cfg: EngineConfig, dist: DistInfo, resume: bool) -> dict[str, Any]:
    run = cfg.run
    out = Path(run.out_dir)
    seed_everything(run.seed + dist.rank, run.deterministic)
    if dist.world_size > 1 and task.batch_size % dist.world_size:
        raise ConfigError(f"batch size {task.batch_size} is not divisible by the {dist.world_size} processes")
    per_rank = task.batch_size // dist.world_size
    if len(task.train_set) == 0:
        raise DataError("empty dataset: the training set has no images")
    sampler = DistributedSampler(task.train_set, num_replicas=dist.world_size, rank=dist.rank,
                                 shuffle=True, seed=run.seed, drop_last=False)
    steps_per_epoch = len(sampler) // per_rank
    if steps_per_epoch == 0:
        raise DataError(f"the training set ({len(task.train_set)} images) is smaller than one "
                        f"batch ({task.batch_size}); lower the batch size")
    total_steps = cfg.schedule.epochs * steps_per_epoch
    if run.max_steps is not None:
        total_steps = min(total_steps, run.max_steps)

    model = task.model
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.schedule, steps_per_epoch)
    ema = build_ema(model, cfg.ema)
    amp_dtype = autocast_dtype(cfg.amp, dist.device)
    scaler = torch.amp.GradScaler(dist.device.type, enabled=amp_dtype == torch.float16)

    step = epoch = batch_in_epoch = 0
    best: dict[str, Any] = {"score": -math.inf}
    # The last epoch whose score beat the previous plateau by more than min_delta.
    plateau: dict[str, Any] = {"score": -math.inf, "epoch": 0}
    stopped_early = False
    last_stem, best_stem = out / "last", out / "best"
    if resume:
        if not checkpoint_paths(last_stem)[0].is_file():
            raise WeightsError(f"{checkpoint_paths(last_stem)[0]}: no checkpoint to resume from "
                               "(run without --resume to start)")
        weights, state, _ = read_training_state(last_stem)
        load_into(model, weights, source=str(checkpoint_paths(last_stem)[0]))  # strict: our own run
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        if ema is not None:
            if "ema" not in state:
                raise WeightsError(f"{last_stem}: the checkpoint has no EMA state; resume with ema.enabled=false")
            ema.load_state_dict(state["ema"])
        step, epoch, batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        best = state["best"]
        plateau = state.get("plateau", plateau)
        rngs = state["rng"]
        if len(rngs) != dist.world_size:
            raise WeightsError(f"{last_stem}: saved by {len(rngs)} processes, resumed with "
                               f"{dist.world_size}; resume with the same number of processes")
        set_rng_state(rngs[dist.rank])

    logger = RunLogger(out if dist.is_main else None, tensorboard=cfg.log.tensorboard,
                       progress=cfg.log.progress, resume_step=step if resume else None)
    ddp_model = wrap_ddp(model, dist, task.find_unused_parameters)
    params = [p for p in model.parameters() if p.requires_grad]
    skipped: set[str] = set()
    skipped_count = 0

    def save(stem: Path, source: nn.Module, extra_meta: dict[str, Any]) -> None:
        rngs = all_gather_object(rng_state())  # every rank's RNG, so each resumes its own
        if dist.is_main:
            state = {"step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch,
                     "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "scaler": scaler.state_dict(), "best": best, "plateau": plateau, "rng": rngs,
                     "config": task.config}
            if ema is not None:
                state["ema"] = ema.state_dict()
            save_checkpoint(stem, source, state, meta={**task.meta, "epoch": epoch, **extra_meta})
        barrier()

    def stop_nonfinite(loss: torch.Tensor, norm: torch.Tensor) -> None:
        last = checkpoint_paths(last_stem)[0]
        kept = f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint was written yet"
        raise TrainingError(f"non-finite loss ({loss.item():.4g}, grad norm {norm.item():.4g}) at step "
                            f"{step + 1} (epoch {epoch + 1}); stopped, {kept}; lower optim.lr or set "
                            "optim.clip_grad_norm")

    t_start = time.perf_counter()
    images_seen = 0
    try:
        while epoch < cfg.schedule.epochs and step < total_steps and not stopped_early:
            if task.on_epoch is not None:
                task.on_epoch(epoch)
            if hasattr(task.train_set, "set_epoch"):
                task.train_set.set_epoch(epoch)
            sampler.set_epoch(epoch)
            loader = DataLoader(_CarryDataErrors(task.train_set), batch_size=per_rank, drop_last=True,
                                sampler=_Skip(sampler, batch_in_epoch * per_rank),
                                num_workers=task.workers, collate_fn=_CollateCarrying(task.collate_fn),
                                pin_memory=dist.device.type == "cuda",
                                # workers' base seed comes from here, not the global RNG, so
                                # creating the iterator does not shift dropout/mixup draws
                                generator=torch.Generator().manual_seed(run.seed + epoch))
            ddp_model.train()
            logger.start_epoch(f"epoch {epoch + 1}/{cfg.schedule.epochs}", steps_per_epoch, batch_in_epoch)
            t_epoch, n_epoch, n_batches, loss_sum = time.perf_counter(), 0, 0, 0.0
            for batch in _data_errors(loader):
                set_weight_decay(optimizer, cfg.optim, step / max(1, total_steps))
                lr = optimizer.param_groups[0]["lr"]
                with autocast(amp_dtype, dist.device):
                    res = task.loss_fn(ddp_model, batch)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(res.loss).backward()
                scaler.unscale_(optimizer)
                # Grads are all-reduced, so this norm (and the decision to stop) is the same on
                # every rank; a NaN loss on any rank makes it NaN everywhere.
                norm = torch.nn.utils.clip_grad_norm_(params, cfg.optim.clip_grad_norm or math.inf)
                if not scaler.is_enabled() and not torch.isfinite(norm):
                    stop_nonfinite(res.loss.detach(), norm)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                if ema is not None:
                    ema.update_parameters(model)
                step += 1
                batch_in_epoch += 1
                if res.skipped:
                    skipped.update(res.skipped)
                    skipped_count += len(res.skipped)
                n_epoch += res.images
                n_batches += 1
                loss_sum += res.loss.item()
                img_s = n_epoch * dist.world_size / max(1e-9, time.perf_counter() - t_epoch)
                logger.advance(loss=res.loss.item(), lr=lr, img_s=round(img_s))
                if step % cfg.log.every_steps == 0:
                    mean_loss = all_reduce_mean(res.loss.detach().float()).item()
                    logger.step(step, epoch=epoch + 1, loss=mean_loss, lr=lr,
                                weight_decay=optimizer.param_groups[0]["weight_decay"], img_s=img_s)
                if cfg.checkpoint.every_steps and step % cfg.checkpoint.every_steps == 0 \
                        and batch_in_epoch < steps_per_epoch:
                    save(last_stem, model, {})
                if step >= total_steps:
                    break
            images_seen += n_epoch * dist.world_size
            if batch_in_epoch >= steps_per_epoch:
                epoch, batch_in_epoch = epoch + 1, 0
            metrics = _evaluate(task, model, ema, amp_dtype, dist.device)
            score, source = _score(metrics, cfg.checkpoint.metric)
            improved = score > best["score"]
            if improved:
                best = {"score": score, "source": source, "epoch": epoch, "step": step,
                        **{k: v for k, v in metrics.items() if isinstance(v, float)}}
            if score > plateau["score"] + cfg.checkpoint.min_delta:
                plateau = {"score": score, "epoch": epoch}
            stopped_early = bool(cfg.checkpoint.patience) and batch_in_epoch == 0 \
                and epoch < cfg.schedule.epochs and epoch - plateau["epoch"] >= cfg.checkpoint.patience
            save(last_stem, model, {"metrics": metrics})
            if improved:
                save(best_stem, ema.module if source == "ema" else model,
                     {"metrics": metrics, "source": source})
            elapsed = time.perf_counter() - t_epoch
            row = {"epoch": epoch if batch_in_epoch == 0 else epoch + 1,
                   "train_loss": loss_sum / max(1, n_batches),
                   "lr": optimizer.param_groups[0]["lr"], **metrics,
                   "img_s": n_epoch * dist.world_size / max(1e-9, elapsed), "seconds": elapsed}
            logger.epoch(step, **row)
            logger.print(_epoch_line(row, cfg.schedule.epochs, cfg.checkpoint.metric, improved))
            if stopped_early:
                logger.print(f"early stop after epoch {epoch}: {cfg.checkpoint.metric} has not risen by more "
                             f"than {cfg.checkpoint.min_delta:g} for {cfg.checkpoint.patience} epochs "
                             f"(plateau {plateau['score']:.4g} at epoch {plateau['epoch']})")
    finally:
        logger.close()
    elapsed = time.perf_counter() - t_start
    summary = {"best": best, "steps": step, "epochs": epoch, "stopped_early": stopped_early, "seconds": elapsed,
               "img_s": images_seen / max(1e-9, elapsed), "skipped_images": skipped_count,
               "skipped_unique": sorted(skipped), "last": str(checkpoint_paths(last_stem)[0]),
               "best_weights": str(checkpoint_paths(best_stem)[0])}
    logger.print(summary_line(summary, cfg.checkpoint.metric))  # rank 0 only
    return summary


@dataclass(frozen=True)
class _Failed:
    """A DataError raised while loading a sample, carried to the main process as data.

    A DataLoader worker re-raises an exception as its type plus a traceback text, so the
    one-line message would have to be parsed back out; returned as a value, the error object
    itself (its class and message) crosses the process boundary intact."""

    error: DataError


class _CarryDataErrors(Dataset):
    """`dataset` whose DataError comes back as a `_Failed` sample instead of propagating."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        try:
            return self.dataset[index]
        except DataError as e:
            return _Failed(e)


class _CollateCarrying:
    """`collate_fn` that passes a batch's first `_Failed` sample (or its own DataError, e.g.
    a batch with no readable image) through as a `_Failed` instead of a batch."""

    def __init__(self, collate_fn: Callable | None):
        self.collate_fn = collate_fn or default_collate

    def __call__(self, samples: list) -> Any:
        failed = next((s for s in samples if isinstance(s, _Failed)), None)
        if failed is not None:
            return failed
        try:
            return self.collate_fn(samples)
        except DataError as e:
            return _Failed(e)


def _data_errors(loader: DataLoader) -> Iterator[Any]:
    """Iterate `loader` (built over `_CarryDataErrors`); a DataError from any worker is
    raised here as itself: its own class and one-line message, no worker traceback."""
    for batch in loader:
        if isinstance(batch, _Failed):
            raise batch.error
        yield batch


def _evaluate(task: Task, model: nn.Module, ema, amp_dtype, device) -> dict[str, float]:
    with autocast(amp_dtype, device):
        metrics = dict(task.evaluate(model))
        if ema is not None:
            metrics.update({f"ema_{k}": v for k, v in task.evaluate(ema.module).items()})
    return metrics


def _score(metrics: dict[str, float], key: str) -> tuple[float, str]:
    if key not in metrics:
        raise ConfigError(f"checkpoint.metric={key!r} is not among the evaluation metrics {sorted(metrics)}")
    raw, ema = metrics[key], metrics.get(f"ema_{key}", -math.inf)
    return (ema, "ema") if ema > raw else (raw, "raw")


def _epoch_line(row: dict[str, Any], epochs: int, key: str, improved: bool) -> str:
    parts = [f"epoch {row['epoch']}/{epochs}", f"loss {row['train_loss']:.4f}"]
    for k in (key, "top5", f"ema_{key}"):
        if k in row:
            parts.append(f"{k} {row[k]:.2f}")
    parts.append(f"{row['img_s']:.0f} img/s")
    return "  ".join(parts) + ("  *" if improved else "")


def summary_line(summary: dict[str, Any], key: str = "top1") -> str:
    b = summary["best"]
    if not math.isfinite(b.get("score", -math.inf)):
        return f"no evaluation ran; {summary['steps']} steps in {summary['seconds']:.0f}s"
    src = b.get("source", "raw")
    pre = "ema_" if src == "ema" else ""
    top5 = b.get(f"{pre}top5")
    t5 = f" top-5 {top5:.2f}%" if top5 is not None else ""
    skipped = f"; skipped {summary['skipped_images']} unreadable images" if summary["skipped_images"] else ""
    # Classification metrics are percentages; detection's mAP is a fraction in [0, 1].
    score = f"{b['score']:.2f}%" if "top" in key else f"{b['score']:.3f}"
    return (f"best {key} {score}{t5} ({src} weights, epoch {b['epoch']}); "
            f"{summary['steps']} steps in {summary['seconds']:.1f}s, {summary['img_s']:.0f} img/s{skipped}; "
            f"weights: {summary['best_weights']}")
