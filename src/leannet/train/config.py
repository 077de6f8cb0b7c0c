"""Training config: a validated schema built from reusable sections.

`OptimConfig`, `ScheduleConfig`, `EmaConfig`, `AmpConfig`, `CheckpointConfig`, `LogConfig` and
`RunConfig` describe what any training loop needs and are shared with the detector
(`leannet.detect`); `ModelConfig`, `DataConfig`, `LossConfig` and `DistillConfig` are the
classification parts. Every field says why it exists or what its unit is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from leannet.config import Schema, load_config
from leannet.data.transforms import AugmentConfig


class OptimConfig(Schema):
    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.1, gt=0, description="peak learning rate (after warm-up) for the whole global batch")
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(5e-5, ge=0)
    # Decaying BatchNorm scales and biases only shrinks them toward zero for no regularisation
    # gain (Goyal et al. 2017; timm's and PaddleClas's defaults).
    no_decay_norm_bias: bool = True
    # MobileOne (arXiv:2206.04040 Sec. 4) anneals weight decay with a cosine from
    # `weight_decay` to `weight_decay_end` over training; None keeps it constant.
    weight_decay_end: float | None = Field(None, ge=0)
    clip_grad_norm: float | None = Field(None, gt=0, description="max global grad L2 norm")


class ScheduleConfig(Schema):
    epochs: int = Field(30, ge=1)
    # Linear warm-up from lr * warmup_start_factor, then cosine to lr * min_lr_ratio; stepped
    # every iteration so short runs get a smooth curve.
    warmup_epochs: float = Field(1.0, ge=0)
    warmup_start_factor: float = Field(0.1, gt=0, le=1)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)


class EmaConfig(Schema):
    enabled: bool = False
    decay: float = Field(0.999, gt=0, lt=1)


class AmpConfig(Schema):
    # "auto": bf16 on CPUs with native bf16 (AVX512-BF16/AMX) and on GPUs that support it,
    # otherwise fp32. fp16 is GPU-only (it needs a loss scaler).
    dtype: Literal["off", "auto", "bf16", "fp16"] = "off"

    @field_validator("dtype", mode="before")
    @classmethod
    def _yaml_off(cls, v: object) -> object:
        # YAML 1.1 reads a bare `off` (in a file or in `-o amp.dtype=off`) as false
        return "off" if v is False else v


class CheckpointConfig(Schema):
    # Also save `last` every N optimizer steps (mid-epoch), so a killed run loses at most N.
    every_steps: int | None = Field(None, ge=1)
    # Keep `best` by this validation metric (higher is better).
    metric: str = "top1"
    # Early stopping: end the run when `metric` has not risen by more than `min_delta` for
    # `patience` evaluated epochs (the learning-rate schedule is still laid out over
    # schedule.epochs). None trains every epoch.
    patience: int | None = Field(None, ge=1)
    min_delta: float = Field(0.0, ge=0)


class LogConfig(Schema):
    every_steps: int = Field(10, ge=1, description="steps between rows of steps.csv")
    tensorboard: bool = True
    progress: bool = True  # rich progress bar (only drawn on a terminal)


class RunConfig(Schema):
    out_dir: Path = Path("runs/train")
    seed: int = 0
    # Deterministic algorithms only: with the same config and world size, a run resumed from
    # any checkpoint ends with bit-identical weights.
    deterministic: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # CPU threads per process (torch.set_num_threads); None keeps torch's default (torchrun
    # sets OMP_NUM_THREADS=1 per worker). On a shared machine 1 avoids spin-wait collapse.
    threads: int | None = Field(None, ge=1)
    # Stop after this many optimizer steps in total (smoke tests, benchmarks); None = all epochs.
    max_steps: int | None = Field(None, ge=1)


class ModelConfig(Schema):
    name: str = "pplcnet_x0_25"
    num_classes: int | None = Field(None, ge=1, description="None: the dataset's class count")
    drop_rate: float | None = Field(None, ge=0, lt=1)
    pretrained: Path | None = None  # a leannet/timm checkpoint to start from (every tensor must fit)
    # Fine-tuning on another class count: start the classifier afresh instead of loading the
    # checkpoint's. Off, a class count that differs from the checkpoint's is an error.
    head_reset: bool = False

    @model_validator(mode="after")
    def _head_reset_needs_weights(self) -> ModelConfig:
        if self.head_reset and self.pretrained is None:
            raise ValueError("head_reset=true needs pretrained (a checkpoint whose classifier to replace)")
        return self


class DataConfig(Schema):
    # digits: the built-in set; imagefolder: root/{train,val}/<class>/*; list: PaddleClas
    # `relative/path.jpg label` files train_list.txt / val_list.txt under root.
    kind: Literal["digits", "imagefolder", "list"] = "digits"
    root: Path | None = None  # None for digits = $LEANNET_HOME/data/digits
    train_list: str = "train_list.txt"
    val_list: str = "val_list.txt"
    input_size: int = Field(224, ge=8)
    crop_pct: float = Field(0.875, gt=0, le=1)  # eval: resize to size/crop_pct, center-crop
    mean: tuple[float, float, float] | None = None  # None: the model's preprocessing
    std: tuple[float, float, float] | None = None
    batch_size: int = Field(64, ge=1, description="global batch: split across DDP processes")
    eval_batch_size: int | None = Field(None, ge=1)
    workers: int = Field(0, ge=0)
    strict: bool = False  # fail on the first unreadable image instead of skipping it
    augment: AugmentConfig = AugmentConfig()
    # Progressive resizing (MobileOne/EfficientNetV2): the train crop grows linearly from
    # `progressive_start` to `input_size` over the first `progressive_epochs` epochs.
    progressive_start: int | None = Field(None, ge=8)
    progressive_epochs: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _checks(self) -> DataConfig:
        if self.kind != "digits" and self.root is None:
            raise ValueError(f"data.root is required for kind={self.kind!r}")
        if self.progressive_start is not None and self.progressive_start > self.input_size:
            raise ValueError("progressive_start must be <= input_size")
        return self


class LossConfig(Schema):
    label_smoothing: float = Field(0.0, ge=0, lt=1)


class DistillConfig(Schema):
    """SSLD-style knowledge distillation (arXiv:2103.05959): the student matches the teacher's
    temperature-softened class distribution, optionally on extra unlabeled images."""

    teacher: str | None = None  # a leannet model name; None disables distillation
    teacher_weights: Path | None = None
    temperature: float = Field(1.0, gt=0)
    # loss = (1 - alpha) * CE(labels) + alpha * T^2 * KL(teacher || student); alpha=1 is
    # pure SSLD (no labels needed).
    alpha: float = Field(1.0, ge=0, le=1)
    unlabeled_root: Path | None = None  # images (any layout) used with the teacher only

    @model_validator(mode="after")
    def _checks(self) -> DistillConfig:
        if self.teacher is not None and self.teacher_weights is None:
            raise ValueError("distill.teacher_weights is required with a teacher (a random "
                             "teacher teaches nothing)")
        if self.unlabeled_root is not None and self.teacher is None:
            raise ValueError("distill.unlabeled_root needs distill.teacher")
        return self


class EngineConfig(Schema):
    """The sections `leannet.train.engine.train` reads; a task's config subclasses this and
    adds its own model/data/loss sections (TrainConfig here, the detector's in detect/)."""

    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    ema: EmaConfig = EmaConfig()
    amp: AmpConfig = AmpConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    log: LogConfig = LogConfig()
    run: RunConfig = RunConfig()


class TrainConfig(EngineConfig):
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    loss: LossConfig = LossConfig()
    distill: DistillConfig = DistillConfig()

    @model_validator(mode="after")
    def _checks(self) -> TrainConfig:
        a = self.data.augment
        if self.distill.unlabeled_root is not None and (a.mixup_alpha or a.cutmix_alpha):
            raise ValueError("mixup/cutmix need labels for every image; they cannot be combined "
                             "with distill.unlabeled_root")
        if self.schedule.warmup_epochs >= self.schedule.epochs and self.schedule.epochs > 1:
            raise ValueError("schedule.warmup_epochs must be shorter than schedule.epochs")
        if self.data.progressive_epochs > self.schedule.epochs:
            raise ValueError("data.progressive_epochs must be <= schedule.epochs")
        return self


def load_train_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    return load_config(TrainConfig, path, overrides)
