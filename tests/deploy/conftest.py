"""Fixtures for the deploy tests: the digits ImageFolder and a small model trained on it.

A pplcnet_x0_25 is fitted here in 300 plain SGD steps at 32x32 (~15 s; the trainer's 30-epoch
recipe takes 90 s), which is enough for real-image agreement and accuracy checks. (300, not
200: from PaddleClas's fan-in init, 200 steps reached 80.8% val top-1, 300 reach 93.9%.)
"""

import numpy as np
import pytest
import torch

import leannet
from leannet.data import prepare_digits
from leannet.data.images import image_batches, labelled_images
from leannet.weights import save_weights

DIGITS_PRE = {"input_size": [3, 32, 32], "mean": [0.485, 0.456, 0.406],
              "std": [0.229, 0.224, 0.225], "interpolation": "bilinear", "crop_pct": 1.0}


@pytest.fixture(scope="session")
def digits_root(built_once):
    folder, _ = built_once("digits", lambda d: str(prepare_digits(d / "digits")))
    return folder / "digits"


def _tensors(root, split):
    s = labelled_images(root / split)
    x = np.concatenate([a for _, a in image_batches(s.paths, DIGITS_PRE, 256)])
    return torch.from_numpy(x), torch.tensor(s.labels), s.classes


@pytest.fixture(scope="session")
def digits_checkpoint(digits_root, built_once):
    """(path of a leannet checkpoint trained on digits, its val top-1 in %): trained once per
    test run, whichever xdist worker asks first."""
    folder, top1 = built_once("digits_checkpoint", lambda d: _train_digits(digits_root, d / "digits.safetensors"))
    return folder / "digits.safetensors", top1


def _train_digits(digits_root, path):
    torch.manual_seed(0)
    x, y, classes = _tensors(digits_root, "train")
    model = leannet.create_model("pplcnet_x0_25", num_classes=len(classes))
    steps = 300
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=steps, pct_start=0.15)
    g = torch.Generator().manual_seed(0)
    model.train()
    threads = torch.get_num_threads()
    # Tiny batches gain nothing from a second thread, and on a busy machine two spinning
    # threads per process make a step ~30x slower.
    torch.set_num_threads(1)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx], label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    torch.set_num_threads(threads)
    model.eval()
    xv, yv, _ = _tensors(digits_root, "val")
    with torch.no_grad():
        top1 = 100.0 * (model(xv).argmax(1) == yv).float().mean().item()
    save_weights(model, path, meta={"arch": "pplcnet_x0_25", "num_classes": len(classes),
                                    "classes": classes, "preprocessing": DIGITS_PRE})
    return top1
