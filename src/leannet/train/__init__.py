"""Training and evaluation: loop, checkpoints, EMA, distillation, distributed."""
