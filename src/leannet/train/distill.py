"""Knowledge distillation, SSLD style (PaddleClas, arXiv:2103.05959): the student learns the
teacher's temperature-softened class distribution, on labeled and optionally unlabeled images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from leannet.train.config import DistillConfig


def load_teacher(cfg: DistillConfig, num_classes: int, device: torch.device) -> nn.Module:
    """The frozen teacher in eval mode (a leannet model and its weights)."""
    from leannet.factory import create_model

    teacher = create_model(cfg.teacher, num_classes=num_classes, pretrained=cfg.teacher_weights)
    teacher.requires_grad_(False)
    return teacher.eval().to(device)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher/T) || softmax(student/T)), averaged over the batch (Hinton et
    al. 2015; the T^2 keeps gradient scale independent of T)."""
    t = temperature
    log_p = F.log_softmax(student_logits.float() / t, dim=1)
    log_q = F.log_softmax(teacher_logits.float() / t, dim=1)
    return F.kl_div(log_p, log_q, reduction="batchmean", log_target=True) * (t * t)


class DistillLoss(nn.Module):
    """(1 - alpha) * CE on labeled images + alpha * kd_loss on all images.

    `target` holds class indices with -1 for unlabeled images, or class probabilities (after
    mixup/cutmix, where every image is labeled)."""

    def __init__(self, teacher: nn.Module, cfg: DistillConfig, ce: nn.Module):
        super().__init__()
        self.teacher, self.cfg, self.ce = teacher, cfg, ce

    def forward(self, images: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            teacher_logits = self.teacher(images)
        loss = self.cfg.alpha * kd_loss(logits, teacher_logits, self.cfg.temperature)
        if self.cfg.alpha < 1:
            if target.dim() == 1:
                labeled = target >= 0
                ce = self.ce(logits[labeled], target[labeled]) if labeled.any() else logits.sum() * 0
            else:
                ce = self.ce(logits, target)
            loss = loss + (1 - self.cfg.alpha) * ce
        return loss
