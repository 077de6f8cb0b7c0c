"""2-process gloo DDP on CPU follows the same loss curve as 1 process with the same global
batch: same samples per global step (DistributedSampler interleaving), same augmentation
(seeded per sample), gradients averaged by DDP."""

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from leannet.train import fit, load_train_config
from tests.train.tiny import NoNormNet, overrides

EXTRA = {"data.batch_size": 12, "schedule.epochs": 2, "optim.lr": 0.1}


def _worker(rank: int, world: int, port: int, args: list[str]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.manual_seed(0)
    fit(load_train_config(None, args), model=NoNormNet())


def _losses(path):
    with open(path) as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_matches_one_process(tiny_root, tmp_path):
    threads = torch.get_num_threads()
    try:
        torch.manual_seed(0)
        fit(load_train_config(None, overrides(tiny_root, tmp_path / "one", **EXTRA)), model=NoNormNet())
    finally:
        torch.set_num_threads(threads)
    mp.spawn(_worker, args=(2, _free_port(), overrides(tiny_root, tmp_path / "two", **EXTRA)), nprocs=2)

    one, two = _losses(tmp_path / "one" / "steps.csv"), _losses(tmp_path / "two" / "steps.csv")
    assert len(one) == len(two) == 2 * (72 // 12)
    torch.testing.assert_close(torch.tensor(two), torch.tensor(one), rtol=1e-4, atol=1e-5)
    assert one[-1] < one[0]  # the curve being compared is a real training curve
    a, b = load_file(str(tmp_path / "one" / "last.safetensors")), load_file(str(tmp_path / "two" / "last.safetensors"))
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)
    # Only rank 0 writes: one metrics row per epoch, not one per process.
    with open(tmp_path / "two" / "metrics.csv") as f:
        assert len(list(csv.DictReader(f))) == 2


@pytest.mark.slow
def test_torchrun_cli_two_processes(tiny_root, tmp_path):
    """The documented launch: `torchrun --nproc-per-node 2 -m leannet train ...`."""
    root = Path(__file__).resolve().parents[2]
    cfg = tmp_path / "c.yaml"
    cfg.write_text("{}\n")
    args = [a for o in overrides(tiny_root, tmp_path / "run", **{"schedule.epochs": 1, "schedule.warmup_epochs": 0})
            for a in ("-o", o)]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           f"--master-port={_free_port()}", "-m", "leannet", "train", "-c", str(cfg), *args],
                          env={**os.environ, "PYTHONPATH": str(root / "src")}, cwd=root,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert proc.stdout.count("best top1") == 1  # rank 0 alone reports
    with open(tmp_path / "run" / "steps.csv") as f:
        assert len(list(csv.DictReader(f))) == 72 // 8


class _Stop(Exception):
    pass


def _worker_resumable(rank: int, world: int, port: int, args: list[str], stop_at: int | None, resume: bool) -> None:
    """A rank of a 2-process run; with `stop_at`, every rank dies before that step (after the
    checkpoint of the step before), as a job killed mid-epoch."""
    from leannet.train import engine

    if stop_at is not None:
        real, calls = engine.set_weight_decay, [0]

        def stop(*a, **kw):  # called once per step, before the forward
            calls[0] += 1
            if calls[0] == stop_at:
                raise _Stop(f"rank {rank} stopped before step {stop_at}")
            return real(*a, **kw)

        engine.set_weight_decay = stop
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.manual_seed(0)
    fit(load_train_config(None, args), resume=resume, model=NoNormNet())


@pytest.mark.slow  # three 2-process runs: ~40 s of CPU
def test_ddp_resume_matches_uninterrupted_and_needs_the_same_world_size(tiny_root, tmp_path):
    from leannet.errors import WeightsError

    extra = {**EXTRA, "checkpoint.every_steps": 2, "data.augment.mixup_alpha": 0.4}
    ref, run = (overrides(tiny_root, tmp_path / d, **extra) for d in ("ref", "run"))
    mp.spawn(_worker_resumable, args=(2, _free_port(), ref, None, False), nprocs=2)
    with pytest.raises(mp.ProcessRaisedException, match="stopped before step 4"):
        mp.spawn(_worker_resumable, args=(2, _free_port(), run, 4, False), nprocs=2)  # mid-epoch 1

    # one process cannot continue a 2-process run: each rank's RNG state was saved
    threads = torch.get_num_threads()
    try:
        with pytest.raises(WeightsError, match=r"saved by 2 processes, resumed with 1; resume with the same number"):
            fit(load_train_config(None, run), resume=True, model=NoNormNet())
    finally:
        torch.set_num_threads(threads)

    mp.spawn(_worker_resumable, args=(2, _free_port(), run, None, True), nprocs=2)
    a, b = load_file(str(tmp_path / "ref" / "last.safetensors")), load_file(str(tmp_path / "run" / "last.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)
    assert _losses(tmp_path / "run" / "steps.csv")[-1] == _losses(tmp_path / "ref" / "steps.csv")[-1]
