"""The detection pipeline leaves the process's PyTorch thread count as it found it."""

import torch

from leannet.detect.config import ModelConfig
from leannet.detect.model import build_detector, detector_meta
from leannet.detect.pipeline import open_detector
from leannet.weights import save_weights


def test_threads_apply_to_the_calls_and_are_restored(tmp_path):
    cfg = ModelConfig(backbone="pplcnet_x0_25", fpn_channels=16, head_channels=16, image_size=32)
    weights = save_weights(build_detector(cfg).eval(), tmp_path / "det.safetensors",
                           meta=detector_meta(cfg, ["card", "page"]))
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    detector = open_detector(weights, threads=wanted)
    assert torch.get_num_threads() == before  # opening set nothing process-wide

    seen = []
    raw = detector.raw

    def spy(x):
        seen.append(torch.get_num_threads())
        return raw(x)

    detector.raw = spy
    out = detector([torch.rand(3, 24, 32)])
    assert seen == [wanted] and set(out[0]) == {"boxes", "scores", "labels"}  # the call ran on `wanted`
    assert torch.get_num_threads() == before  # and gave the count back
