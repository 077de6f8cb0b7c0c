"""A run killed with SIGKILL mid-epoch and resumed ends with the same weights as a run that
was never interrupted."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from leannet.weights import read_metadata
from tests.train.tiny import overrides

ROOT = Path(__file__).resolve().parents[2]
# Dropout, mixup and EMA all draw on or carry state that resume must restore.
EXTRA = {"schedule.epochs": 3, "checkpoint.every_steps": 2, "run.deterministic": "true",
         "model.drop_rate": 0.2, "data.augment.mixup_alpha": 0.4, "ema.enabled": "true",
         "ema.decay": 0.9}


def _cli(args, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "leannet", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _step(path: Path) -> int:
    try:
        return int(read_metadata(path).get("step", -1))
    except Exception:  # not written yet
        return -1


def _args(cfg: Path, tiny_root: Path, out: Path) -> list[str]:
    return ["train", "-c", str(cfg), *[a for o in overrides(tiny_root, out, **EXTRA) for a in ("-o", o)]]


def test_sigkill_then_resume_matches_uninterrupted_run(tiny_root, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("{}\n")  # everything comes from the overrides
    # The reference runs as the killed run does: the same command in a fresh process with the
    # same environment, so nothing of this test process (its torch thread count, set from
    # LEANNET_TEST_THREADS, or global flags other tests left) can make the two sides differ.
    ref = _cli(_args(cfg, tiny_root, tmp_path / "ref"))
    _, err = ref.communicate(timeout=600)
    assert ref.returncode == 0, err[-1000:]
    total = 3 * 72 // 8  # 3 epochs x 9 steps
    assert read_metadata(tmp_path / "ref" / "last.safetensors")["step"] == total

    out = tmp_path / "killed"
    args = _args(cfg, tiny_root, out)
    proc = _cli(args)
    last = out / "last.safetensors"
    deadline = time.monotonic() + 300
    while _step(last) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, f"run ended before it could be killed: {proc.communicate()[1][-500:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = _step(last)
    assert 0 < killed_at < total

    resumed = _cli([*args, "--resume"])
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-1000:]

    a, b = load_file(str(tmp_path / "ref" / "last.safetensors")), load_file(str(last))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6, msg=f"{k} differs after resume")
    assert read_metadata(last)["step"] == total
    # The EMA state and the history are restored too: the best checkpoint agrees.
    assert read_metadata(tmp_path / "ref" / "best.safetensors")["metrics"] == \
        read_metadata(out / "best.safetensors")["metrics"]
