"""Distillation moves the student toward the teacher: its KD loss against the teacher falls,
and ends below that of the same student trained on labels alone. The student has no
BatchNorm, so what is measured in eval mode is exactly the function that was trained."""

import torch

import leannet
from leannet.data import ImageDataset, image_folder
from leannet.data.transforms import eval_transform
from leannet.train import fit, load_train_config
from leannet.train.distill import kd_loss
from leannet.weights import load_weights, save_weights
from tests.helpers import calibrate_bn
from tests.train.tiny import NoNormNet, overrides

# Full-batch steps on un-augmented images: the curve measures the objective, not batch noise.
EXTRA = {"schedule.epochs": 30, "schedule.warmup_epochs": 1, "data.batch_size": 72,
         "data.augment.scale": "[1.0, 1.0]", "data.augment.ratio": "[1.0, 1.0]",
         "optim.name": "adamw", "optim.lr": 0.02}


@torch.no_grad()
def _kd(model, teacher, images, t):
    return kd_loss(model.eval()(images), teacher.eval()(images), t).item()


def test_distillation_lowers_kd_loss(tiny_root, tmp_path):
    torch.manual_seed(1)
    teacher = leannet.create_model("pplcnet_x0_25", num_classes=3)
    ds = ImageDataset(image_folder(tiny_root / "train").items,
                      eval_transform(16, 1.0, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]))
    images = torch.stack([ds[i][0] for i in range(len(ds))])
    # A teacher whose targets are confident and unlike the labels: real BN statistics (a fresh
    # net's eval output is ~0) and a random classifier (it starts at zero).
    calibrate_bn(teacher, (3, 16, 16))
    with torch.no_grad():  # BN statistics of these images, not of noise
        for m in teacher.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
        teacher.train()(images)
        teacher.eval()
    with torch.no_grad():
        teacher.head.fc.weight.normal_(0, 0.05)
        teacher.head.fc.weight.mul_(2 / teacher(images).std())
    save_weights(teacher, tmp_path / "teacher.safetensors", meta={"arch": "pplcnet_x0_25"})

    threads = torch.get_num_threads()
    try:
        kd = {"distill.teacher": "pplcnet_x0_25", "distill.teacher_weights": str(tmp_path / "teacher.safetensors"),
              "distill.temperature": 2.0, "distill.alpha": 1.0}
        torch.manual_seed(0)
        fit(load_train_config(None, overrides(tiny_root, tmp_path / "kd", **EXTRA, **kd)), model=NoNormNet())
        torch.manual_seed(0)
        fit(load_train_config(None, overrides(tiny_root, tmp_path / "plain", **EXTRA)), model=NoNormNet())
    finally:
        torch.set_num_threads(threads)

    def student(run):
        torch.manual_seed(0)  # the init both runs start from
        m = NoNormNet()
        return load_weights(m, tmp_path / run / "last.safetensors") if run else m

    before = _kd(student(None), teacher, images, 2.0)
    after_kd = _kd(student("kd"), teacher, images, 2.0)
    after_plain = _kd(student("plain"), teacher, images, 2.0)
    assert after_kd < 0.9 * before, (before, after_kd)
    assert after_kd < after_plain, (after_kd, after_plain)


def test_kd_loss_is_zero_only_at_the_teacher():
    t = torch.randn(4, 5)
    assert kd_loss(t, t, 3.0).abs() < 1e-6
    assert kd_loss(torch.zeros(4, 5), t, 3.0) > 0
    # T^2 scaling: reference value from the definition with torch's own softmax/KL.
    s = torch.randn(4, 5)
    ref = (torch.softmax(t / 3, 1) * (torch.log_softmax(t / 3, 1) - torch.log_softmax(s / 3, 1))).sum(1).mean() * 9
    torch.testing.assert_close(kd_loss(s, t, 3.0), ref)
