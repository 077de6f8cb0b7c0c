"""A slim RetinaNet document detector (seed 001): model, COCO data, a synthetic document
generator, training, evaluation, inference and pseudo-labelling. Needs pycocotools for mAP."""

from leannet.detect.config import DetectConfig, ModelConfig, load_detect_config
from leannet.detect.model import build_detector, load_detector

__all__ = ["DetectConfig", "ModelConfig", "build_detector", "load_detect_config", "load_detector"]
