"""Training and evaluation: a shared engine (optimizer, schedule, EMA, AMP, DDP, checkpoints,
logging) and the classification task on it.

Reusable by other tasks (the detector): `engine.train(Task, EngineConfig, DistInfo)`, the
config sections in `config`, `optim`, `ema`, `distributed`, `logging`, `checkpoint`.
"""

from leannet.train.config import EngineConfig, TrainConfig, load_train_config
from leannet.train.engine import StepOutput, Task, train
from leannet.train.loop import evaluate_from_config, fit, train_from_config

__all__ = ["EngineConfig", "StepOutput", "Task", "TrainConfig", "evaluate_from_config", "fit",
           "load_train_config", "train", "train_from_config"]
