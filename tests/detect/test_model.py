import pytest
import torch
from torch import nn

from leannet.detect.config import ModelConfig, load_detect_config
from leannet.detect.model import RawDetector, build_detector
from leannet.errors import ConfigError
from leannet.profile.complexity import count_macs, count_params

TINY = dict(backbone="pplcnet_x0_25", fpn_channels=16, head_channels=24, image_size=64)


@pytest.mark.parametrize("config, reference", [("retinanet_resnet50", "retinanet_resnet50_fpn"),
                                               ("retinanet_resnet50_v2", "retinanet_resnet50_fpn_v2")])
def test_resnet50_configs_are_torchvisions_retinanets(config, reference):
    # The baseline configs must be the architectures torchvision ships (v1; v2 with GroupNorm heads).
    from torchvision.models import detection

    ref = getattr(detection, reference)(weights=None, weights_backbone=None, num_classes=2)
    cfg = load_detect_config(f"configs/detect/{config}.yaml").model
    ours = build_detector(cfg)
    assert count_params(ours) == count_params(ref)
    groups = sorted(m.num_groups for m in ours.head.modules() if isinstance(m, nn.GroupNorm))
    assert groups == sorted(m.num_groups for m in ref.head.modules() if isinstance(m, nn.GroupNorm))
    assert ours.anchor_generator.sizes == ref.anchor_generator.sizes
    assert ours.anchor_generator.aspect_ratios == ref.anchor_generator.aspect_ratios
    size = (3, 128, 128)
    assert count_macs(RawDetector(ours), size) == count_macs(RawDetector(ref), size)


@pytest.mark.parametrize("norm, kind", [("group", nn.GroupNorm), ("batch", nn.BatchNorm2d), ("none", None)])
def test_head_norm(norm, kind):
    m = build_detector(ModelConfig(**TINY, head_norm=norm))
    norms = [x for x in m.head.modules() if isinstance(x, nn.GroupNorm | nn.BatchNorm2d)]
    assert (not norms) if kind is None else norms and all(isinstance(x, kind) for x in norms)


@pytest.mark.parametrize("depth, kernel, separable", [(0, 3, False), (3, 1, False), (2, 3, True)])
def test_head_shape_and_outputs(depth, kernel, separable):
    cfg = ModelConfig(**TINY, head_depth=depth, head_kernel=kernel, head_separable=separable,
                      num_classes=3, extra_levels=1)
    m = build_detector(cfg).eval()
    convs = [c for c in m.head.classification_head.conv.modules() if isinstance(c, nn.Conv2d)]
    assert len(convs) == depth * (2 if separable else 1)
    if depth:
        assert convs[-1].out_channels == 24
        assert {c.kernel_size for c in convs} == ({(kernel, kernel), (1, 1)} if separable else {(kernel, kernel)})
    cls, box = RawDetector(m)(torch.rand(2, 3, 64, 64))
    # levels at strides 8, 16, 32, 64 on a 64 px image: 8x8 + 4x4 + 2x2 + 1x1 cells, 9 anchors each
    anchors = (64 + 16 + 4 + 1) * 9
    assert cls.shape == (2, anchors, 3) and box.shape == (2, anchors, 4)
    with torch.inference_mode():
        out = m([torch.rand(3, 50, 64)])  # any size: resized to image_size, boxes mapped back
    assert out[0]["boxes"].shape[1] == 4


def test_slim_is_much_smaller_than_baseline():
    # the shipped baseline (torchvision's retinanet_resnet50_fpn architecture, checked above)
    # against the shipped slim detectors, all three from configs/detect as trained
    size = {name: count_params(build_detector(load_detect_config(f"configs/detect/{name}.yaml").model))
            for name in ("retinanet_resnet50", "retinanet_pplcnet_slim", "retinanet_snet146_slim")}
    assert 32_000_000 < size["retinanet_resnet50"] < 33_000_000  # 32.2M: really the big model
    assert size["retinanet_pplcnet_slim"] < size["retinanet_resnet50"] / 20  # measured 0.66M
    assert size["retinanet_snet146_slim"] < size["retinanet_resnet50"] / 10


def test_unknown_key_names_its_path(tmp_path):
    with pytest.raises(ConfigError, match=r"model\.head_widht: unknown key"):
        load_detect_config(None, ["model.head_widht=3"])


@pytest.mark.parametrize("override, message", [
    ("model.in_strides=[8,32]", "in_strides must double"),
    ("model.head_norm=layer", r"model\.head_norm"),
    ("model.fpn_channels=0", r"model\.fpn_channels"),
    ("data.train={}", "exactly one of 'ann'"),
    ("data.val={images: imgs, synthetic: {num_images: 2}}", "'images' needs 'ann'"),
])
def test_invalid_values(override, message):
    with pytest.raises(ConfigError, match=message):
        load_detect_config(None, [override])


def test_missing_backbone_level():
    with pytest.raises(ConfigError, match=r"has no feature level at stride \[64\]"):
        build_detector(ModelConfig(**{**TINY, "in_strides": [16, 32, 64]}))


def test_shipped_configs_validate():
    from pathlib import Path

    paths = sorted(Path("configs/detect").glob("*.yaml"))
    assert len(paths) >= 3
    for p in paths:
        load_detect_config(p)


@pytest.mark.parametrize("backbone", ["snet146", "mobileone_s0", "ghostnet_x0_5", "shufflenetv2_x0_5"])
def test_any_backbone_with_stride_8_to_32(backbone):
    m = build_detector(ModelConfig(backbone=backbone, image_size=64, extra_levels=0)).eval()
    cls, box = RawDetector(m)(torch.rand(1, 3, 64, 64))
    assert cls.shape == (1, (64 + 16 + 4) * 9, 2) and box.shape == (1, (64 + 16 + 4) * 9, 4)
