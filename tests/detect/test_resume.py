"""A detector run killed with SIGKILL mid-epoch and resumed ends with the same weights as a run
that was never interrupted (the classifier's test, tests/train/test_resume.py, for detection)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from leannet.weights import read_metadata

ROOT = Path(__file__).resolve().parents[2]
TINY = "configs/detect/tiny_test.yaml"


def _overrides(tmp: Path, out: Path) -> list[str]:
    # 6 images in batches of 2: 3 steps per epoch; h-flip and the EMA carry state resume must restore
    return [f"data.root={tmp / 'data'}", f"run.out_dir={out}", "log.progress=false", "data.batch_size=2",
            "data.hflip=0.5", "schedule.epochs=3", "schedule.warmup_epochs=1", "checkpoint.every_steps=1",
            "ema.enabled=true", "ema.decay=0.9"]


def _step(path: Path) -> int:
    try:
        return int(read_metadata(path).get("step", -1))
    except Exception:  # not written yet
        return -1


def _args(tmp: Path, out: Path) -> list[str]:
    return ["detect", "train", "-c", TINY, *[a for o in _overrides(tmp, out) for a in ("-o", o)]]


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    # The reference runs as the killed run does: the same command in a fresh process with the
    # same environment, so nothing of this test process (its torch thread count, set from
    # LEANNET_TEST_THREADS, or global flags other tests left) can make the two sides differ.
    ref = subprocess.run([sys.executable, "-m", "leannet", *_args(tmp_path, tmp_path / "ref")], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-1000:]
    total = 9  # 3 epochs x 3 steps
    assert read_metadata(tmp_path / "ref" / "last.safetensors")["step"] == total

    out = tmp_path / "killed"
    args = _args(tmp_path, out)
    proc = subprocess.Popen([sys.executable, "-m", "leannet", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = out / "last.safetensors"
    deadline = time.monotonic() + 300
    while _step(last) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, f"run ended before it could be killed: {proc.communicate()[1][-500:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _step(last)
    assert 0 < killed_at < total

    resumed = subprocess.run([sys.executable, "-m", "leannet", *args, "--resume"], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-1000:]
    a, b = load_file(str(tmp_path / "ref" / "last.safetensors")), load_file(str(last))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=f"{k} differs after resume")
    assert read_metadata(last)["step"] == total
    assert read_metadata(tmp_path / "ref" / "best.safetensors")["metrics"] == \
        read_metadata(out / "best.safetensors")["metrics"]
