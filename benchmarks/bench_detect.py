"""Slim document detector vs the ResNet-50 RetinaNet baseline, compared fairly (issue 18, seed 001).

1. Both detectors train by one recipe (the slim config's `data`, `optim`, `schedule` and
   `checkpoint` sections; only `model` differs) until validation mAP@.5 plateaus: early
   stopping with `--patience` epochs (checkpoint.patience), at most `--max-epochs`. Their
   validation curves go to OUT/curves.png, so a reader sees that both flattened.
2. On a held-out synthetic set (a seed no training or validation set uses): mAP@.5 and
   mAP@[.5:.95] (pycocotools) of the checkpoint and of each exported artefact (ONNX Runtime and
   OpenVINO, fp32 and INT8 calibrated on training images), params and MACs.
3. Speed of the whole pipeline a user runs (resize, network, decoding, NMS) at batch 1, every
   (detector, runtime, precision) cell timed in the same interleaved rounds with leannet's
   contention monitor and machine probe, so all see the same machine.
4. Data distillation: the trained baseline pseudo-labels `--unlabeled` synthetic images (their
   own labels unused); the slim detector trains on labeled + pseudo-labeled vs labeled only,
   for each of `--seeds`; mean +/- std of held-out mAP.

    python benchmarks/bench_detect.py                 # the full run (hours on 2 cores)
    python benchmarks/bench_detect.py --smoke         # a few minutes: checks the script, not the claim
    python benchmarks/bench_detect.py --reuse --train-only        # part 1's training only (resumable)
    python benchmarks/bench_detect.py --reuse --train-only baseline  # only the baseline's
    python benchmarks/bench_detect.py --reuse --plain-seeds-only  # part 4's teacher-free runs, beside it
    python benchmarks/bench_detect.py --reuse --distill-only --seeds 1  # one of part 4's distilled runs

Seed 001 claims about +180% speed (2.8x FPS) at equal accuracy for its slimmed detector.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import sentinel  # benchmarks/sentinel.py, beside this script
import torch

from leannet.bench.results import default_threads, environment
from leannet.detect.config import DetectConfig, SplitConfig, SyntheticConfig, load_detect_config
from leannet.detect.data import make_dataset, split_files
from leannet.detect.evaluate import complexity, evaluate
from leannet.detect.export import export_detector
from leannet.detect.model import load_detector
from leannet.detect.pipeline import artefact_pipeline, torch_pipeline
from leannet.detect.predict import pseudo_label
from leannet.detect.train import train
from leannet.fileio import write_text
from leannet.runtime import timing
from leannet.train.checkpoint import checkpoint_paths
from leannet.train.curves import plot_curves

SMOKE = ["data.train.synthetic.num_images=16", "data.val.synthetic.num_images=8", "data.batch_size=4",
         "model.image_size=128", "data.train.synthetic.image_size=128", "data.val.synthetic.image_size=128",
         "log.progress=false"]
CLAIM = "seed 001: about +180% speed (2.8x FPS) at equal accuracy"


def run_config(cfg: DetectConfig, out_dir: Path, seed: int | None = None, train_split: SplitConfig | None = None
               ) -> DetectConfig:
    run = cfg.run.model_copy(update={"out_dir": out_dir, **({"seed": seed} if seed is not None else {})})
    data = cfg.data if train_split is None else cfg.data.model_copy(update={"train": train_split})
    return cfg.model_copy(update={"run": run, "data": data})


def trained(cfg: DetectConfig, reuse: bool) -> tuple[Path, dict]:
    """Train; with --reuse, take the finished run in cfg.run.out_dir, or continue an interrupted
    one from its last checkpoint (the full run spans hours: it may be stopped and run again)."""
    out = Path(cfg.run.out_dir)
    done = out / "summary.json"
    if reuse and done.is_file():
        summary = json.loads(done.read_text())
    else:
        resume = reuse and checkpoint_paths(out / "last")[0].is_file()
        print(f"== training {out.name}: {cfg.model.backbone}, seed {cfg.run.seed}{' (resumed)' if resume else ''}",
              file=sys.stderr, flush=True)
        summary = train(cfg, resume=resume)
        write_text(done, json.dumps(summary, indent=1, default=str))
    return Path(summary["best_weights"]), summary


def merged_split(labeled: Path, pseudo: Path, pseudo_images: Path, out: Path) -> SplitConfig:
    """One COCO file of the labeled set plus the pseudo-labeled one (absolute file names;
    categories matched by name)."""
    a, b = json.loads(labeled.read_text()), json.loads(pseudo.read_text())
    cats = {c["name"]: c["id"] for c in a["categories"]}
    images, anns = [], []
    for coco, root in ((a, labeled.parent), (b, pseudo_images)):
        by_name = {c["id"]: c["name"] for c in coco["categories"]}
        ids = {}
        for img in coco["images"]:
            ids[img["id"]] = len(images) + 1
            images.append({**img, "id": ids[img["id"]], "file_name": str((root / img["file_name"]).resolve())})
        for x in coco["annotations"]:
            anns.append({**x, "id": len(anns) + 1, "image_id": ids[x["image_id"]],
                         "category_id": cats[by_name[x["category_id"]]]})
    write_text(out, json.dumps({"images": images, "annotations": anns, "categories": a["categories"]}))
    return SplitConfig(ann=str(out), images="/")


def seed_dir(out: Path, seed: int, split: SplitConfig | None = None) -> Path:
    """Run folder of part 4's slim run for `seed`: labeled only, or on `split` (labeled + pseudo)."""
    return out / f"slim_{'plain' if split is None else 'distill'}_seed{seed}"


def distill_split(slim_cfg: DetectConfig, teacher: Path, unlabeled: SplitConfig, out: Path, reuse: bool
                  ) -> tuple[SplitConfig, dict[str, int]]:
    """The teacher's pseudo-labels on the unlabeled images merged with the labeled training set;
    with `reuse`, the labels of an earlier run by the same teacher are taken as they are."""
    images = split_files(unlabeled, slim_cfg.data)[0].parent / "images"
    pseudo = out / "pseudo.json"
    old = json.loads(pseudo.read_text()) if reuse and pseudo.is_file() else None
    if old and old["info"]["teacher"] == str(teacher):
        counts = {"images": len(old["images"]), "boxes": len(old["annotations"])}
    else:
        counts = pseudo_label(teacher, images, pseudo, score_thr=0.5)
    train_ann = split_files(slim_cfg.data.train, slim_cfg.data)[0]
    return merged_split(train_ann, pseudo, images, out / "labeled_plus_pseudo.json"), counts


def side_by_side(seeds: list[int], argv: list[str], jobs: int, out: Path) -> None:
    """Train part 4's distilled runs for `seeds`, `jobs` processes at a time (this script with
    --distill-only, which ignores --jobs, the same arguments otherwise), each logging to OUT/slim_distill_seedS.log."""
    env = os.environ | {v: str(max(1, (os.cpu_count() or 1) // jobs)) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}

    def run(seed: int) -> tuple[int, Path]:
        log = out / f"slim_distill_seed{seed}.log"
        with open(log, "a") as f:
            cmd = [sys.executable, __file__, *argv, "--reuse", "--distill-only", "--seeds", str(seed)]
            return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env).returncode, log

    with ThreadPoolExecutor(jobs) as pool:
        for code, log in pool.map(run, seeds):
            if code:
                sys.exit(f"a distillation run failed (exit {code}): see {log}")


def comparison(rows: dict[str, dict], speeds: dict[tuple, dict]) -> list[str]:
    """The table of parts 2-3: every (detector, runtime, precision) cell, then slim/baseline ratios."""
    lines = ["| detector | backbone | params (M) | MACs (G) | epochs (early stop) | mAP@.5 | mAP@[.5:.95] "
             "| runtime | precision | mAP@.5 of this form | median ms (IQR) | FPS |", "|" + "---|" * 12]
    for (name, rt, prec), s in speeds.items():
        r, m = rows[name], rows[name][f"{rt} {prec}"]
        lines.append(f"| {name} | {r['backbone']} | {r['params'] / 1e6:.2f} | {r['macs'] / 1e9:.2f} "
                     f"| {r['epochs']} ({'yes' if r['stopped_early'] else 'no'}) "
                     f"| {100 * r['eager fp32']['map50']:.1f} | {100 * r['eager fp32']['map']:.1f} | {rt} | {prec} "
                     f"| {100 * m['map50']:.1f} | {s['median_ms']:.1f} ({s['iqr_ms']:.1f}){' †' if s['contended'] else ''} "
                     f"| {1000 / s['median_ms']:.1f} |")
    ratios = []
    for rt, prec in sorted({(k[1], k[2]) for k in speeds}):
        ratio = speeds[("baseline", rt, prec)]["median_ms"] / speeds[("slim", rt, prec)]["median_ms"]
        d = 100 * (rows["slim"][f"{rt} {prec}"]["map50"] - rows["baseline"][f"{rt} {prec}"]["map50"])
        ratios.append(f"| {rt} | {prec} | {ratio:.2f}x | {d:+.1f} pts |")
    return [*lines, "", "| runtime | precision | slim FPS / baseline FPS | slim - baseline mAP@.5 |", "|---|---|---|---|",
            *ratios, "", f"Claim: {CLAIM}."]


def write_report(out: Path, lines: list[str], meta: str, results: dict) -> None:
    print("\n".join(lines))
    print(meta)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "results.json", json.dumps({**results, "meta": meta}, indent=1, default=str))
    write_text(out / "table.md", "\n".join(lines) + "\n\n" + meta + "\n")


def speed(pipes: dict[tuple[str, str, str], object], size: int, min_time: float, rounds: int) -> dict[tuple, dict]:
    """Every pipeline timed in the same interleaved rounds on one fixed image."""
    image = [torch.rand(3, size, size, generator=torch.Generator().manual_seed(0))]
    threads = default_threads()
    cells = {k: timing.Cell(k, (lambda p=p: p(image))) for k, p in pipes.items()}
    probe = timing.Probe(threads)
    guards = sentinel.sentinels({k[1] for k in pipes}, threads)  # a runtime's own slow phases
    with torch.inference_mode():
        timing.time_rounds([probe, *guards.values(), *cells.values()], rounds=rounds, round_time=min_time / rounds)
    return {k: timing.summarise(c, threads) | probe.speed() | sentinel.reading(guards, k[1]) for k, c in cells.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--slim", default="configs/detect/retinanet_snet146_slim.yaml")
    p.add_argument("--baseline", default="configs/detect/retinanet_resnet50_v2.yaml")
    p.add_argument("-o", "--override", action="append", default=[],
                   help="recipe override applied to every run, e.g. -o data.train.synthetic.num_images=1024")
    p.add_argument("--patience", type=int, default=5, help="epochs without a rise in val mAP@.5 (default 5)")
    p.add_argument("--min-delta", type=float, default=0.002, help="a rise smaller than this is no rise (mAP)")
    p.add_argument("--max-epochs", type=int, default=60)
    p.add_argument("--heldout-seed", type=int, default=1234)
    p.add_argument("--heldout-images", type=int, default=300)
    p.add_argument("--unlabeled-seed", type=int, default=777)
    p.add_argument("--unlabeled", type=int, default=512, help="synthetic images the teacher labels (0: skip)")
    p.add_argument("--seeds", help="training seeds of the distillation comparison (default 0,1,2; smoke: 0,1)")
    p.add_argument("--min-time", type=float, default=6.0, help="seconds of timed calls per speed cell")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--out", default="runs/bench_detect")
    p.add_argument("--reuse", action="store_true", help="reuse finished runs in OUT (their summary.json)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script, not the claim")
    p.add_argument("--train-only", nargs="?", const="slim,baseline", metavar="NAMES",
                   help="train (or resume) the detectors of part 1 (both, or those named: slim, baseline) and "
                        "stop: lets training run beside other work, while the speed part needs the machine alone")
    p.add_argument("--plain-seeds-only", action="store_true",
                   help="train (or resume) only the slim detector's labeled-only runs of the distillation "
                        "comparison for the seeds after the first (they need no teacher) and stop: lets them "
                        "train on a free core while the baseline trains")
    p.add_argument("--jobs", type=int, default=1,
                   help="part 4's distillation runs trained at once, each in its own process with cores/jobs "
                        "threads (small detectors use cores poorly, so 2-3 runs side by side finish sooner)")
    p.add_argument("--distill-only", action="store_true",
                   help="train (or resume) only part 4's labeled + pseudo-labeled runs for --seeds and stop "
                        "(needs the trained baseline): one process per seed spreads them over the cores")
    args = p.parse_args(argv)
    if args.smoke:
        args.heldout_images, args.unlabeled, args.seeds = 8, 8, args.seeds or "0,1"
        args.max_epochs, args.patience, args.min_time, args.rounds = 2, 1, 0.4, 2
    t0 = time.time()
    seeds = [int(s) for s in (args.seeds or "0,1,2").split(",")]
    stop = [f"schedule.epochs={args.max_epochs}", f"checkpoint.patience={args.patience}",
            f"checkpoint.min_delta={args.min_delta}"]
    overrides = [*(SMOKE if args.smoke else []), *stop, *args.override]
    out = Path(args.out)

    slim_cfg = load_detect_config(args.slim, overrides)
    # Same recipe: the baseline takes the slim config's data, optimiser, schedule and stopping rule.
    base_model = load_detect_config(args.baseline, [o for o in overrides if o.startswith("model.")]).model
    size = slim_cfg.model.image_size
    base_cfg = slim_cfg.model_copy(update={"model": base_model.model_copy(
        update={"image_size": size, "num_classes": slim_cfg.model.num_classes})})
    used = {s.synthetic.seed for s in (slim_cfg.data.train, slim_cfg.data.val) if s and s.synthetic}
    if {args.heldout_seed, args.unlabeled_seed} & used:
        sys.exit(f"--heldout-seed / --unlabeled-seed must differ from the training/validation seeds {sorted(used)}")
    # held-out and unlabeled images: drawn like the training set (size, difficulty), other seeds
    like = slim_cfg.data.train.synthetic or SyntheticConfig(image_size=size)

    def synthetic(n: int, seed: int) -> SplitConfig:
        return SplitConfig(synthetic=like.model_copy(update={"num_images": n, "seed": seed}))

    heldout_split = synthetic(args.heldout_images, args.heldout_seed)
    heldout = make_dataset(heldout_split, slim_cfg.data, train=False)
    heldout_ann = split_files(heldout_split, slim_cfg.data)[0]
    calib = split_files(slim_cfg.data.train, slim_cfg.data)[0].parent / "images"

    if args.plain_seeds_only:  # the same runs, and run directories, as part 4 below
        for seed in seeds[1:]:
            trained(run_config(slim_cfg, seed_dir(out, seed), seed), args.reuse)
        return 0
    if args.distill_only:  # the same runs as part 4 below, for the seeds named
        done = out / "baseline" / "summary.json"
        if not done.is_file():
            sys.exit(f"--distill-only needs the trained teacher ({done}): run --train-only baseline first")
        teacher = Path(json.loads(done.read_text())["best_weights"])
        mixed, _ = distill_split(slim_cfg, teacher, synthetic(args.unlabeled, args.unlabeled_seed), out, True)
        for seed in seeds:
            trained(run_config(slim_cfg, seed_dir(out, seed, mixed), seed, mixed), args.reuse)
        return 0

    # 1. both detectors to a plateau
    runs = {"slim": run_config(slim_cfg, out / "slim", seeds[0]), "baseline": run_config(base_cfg, out / "baseline",
                                                                                          seeds[0])}
    if args.train_only:
        runs = {n: runs[n] for n in args.train_only.split(",")}
    weights, summaries = {}, {}
    for name, cfg in runs.items():
        weights[name], summaries[name] = trained(cfg, args.reuse)
    series = plot_curves({f"{n} ({runs[n].model.backbone})": out / n for n in runs}, "map50", out / "curves.png",
                         title=f"validation mAP@.5 per epoch; early stop after {args.patience} flat epochs")
    if args.train_only:
        done = ", ".join(f"{n} {s['epochs']} epochs" for n, s in summaries.items())
        print(f"trained: {done}; curves in {out / 'curves.png'}", file=sys.stderr)
        return 0

    # 2. accuracy and cost, checkpoint and artefacts
    rows: dict[str, dict] = {}
    pipes = {}
    for name, w in weights.items():
        model, classes = load_detector(str(w))
        rows[name] = {"backbone": runs[name].model.backbone, "image_size": size, **complexity(model, size),
                      "epochs": summaries[name]["epochs"], "stopped_early": summaries[name].get("stopped_early"),
                      "train_min": summaries[name]["seconds"] / 60, "eager fp32": evaluate(model, heldout)}
        pipes[(name, "eager", "fp32")] = torch_pipeline(model, classes)
        for fmt, rt in (("onnx", "onnxruntime"), ("openvino", "openvino")):
            for int8 in (False, True):
                prec = "int8" if int8 else "fp32"
                res = export_detector(w, fmt, out=out / "artefacts" / f"{name}-{rt}-{prec}{'.onnx' if fmt == 'onnx' else '.xml'}",
                                      int8=int8, calib=calib if int8 else None, ann=heldout_ann)
                rows[name][f"{rt} {prec}"] = res.record["map"][f"{fmt} {prec}"]  # an INT8 sidecar has fp32's too
                pipes[(name, rt, prec)] = artefact_pipeline(res.path, rt, precision=prec)

    # 3. speed, every cell in the same rounds
    speeds = speed(pipes, size, args.min_time, args.rounds)
    del pipes

    env = environment(default_threads())
    meta = (f"held-out: {args.heldout_images} synthetic images, seed {args.heldout_seed}; image {size} px; "
            f"{env['cpu']} ({', '.join(env['cpu_features'])}), {env['threads']} threads; "
            + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + f"; {time.strftime('%Y-%m-%d')}")
    lines = comparison(rows, speeds)
    # parts 1-3 are written before part 4, which takes as long again: a stopped run keeps them
    write_report(out, lines, meta + f"; took {(time.time() - t0) / 60:.0f} min; distillation not yet run",
                 {"rows": rows, "speed": {"/".join(k): v for k, v in speeds.items()}, "curves": series})

    # 4. data distillation, mean +/- std over seeds
    distill: dict[str, list[dict]] = {"labeled only": [], "labeled + pseudo": []}
    if args.unlabeled:
        mixed, counts = distill_split(slim_cfg, weights["baseline"], synthetic(args.unlabeled, args.unlabeled_seed),
                                      out, args.reuse)
        if args.jobs > 1:
            side_by_side([s for s in seeds if not (seed_dir(out, s, mixed) / "summary.json").is_file()],
                         argv if argv is not None else sys.argv[1:], args.jobs, out)
        for seed in seeds:
            for label, split in (("labeled only", None), ("labeled + pseudo", mixed)):
                if label == "labeled only" and seed == seeds[0]:
                    w = weights["slim"]  # the run of part 1
                else:
                    w, _ = trained(run_config(slim_cfg, seed_dir(out, seed, split), seed, split), args.reuse)
                m, _ = load_detector(str(w))
                distill[label].append({"seed": seed, **evaluate(m, heldout)})
        lines += ["", f"Distillation: the baseline pseudo-labelled {counts['images']} unlabeled images "
                  f"({counts['boxes']} boxes at score >= 0.5); held-out mAP of the slim detector over seeds {seeds}:",
                  "", "| training data | mAP@.5 mean +/- std | mAP@[.5:.95] mean +/- std |", "|---|---|---|"]
        for label, ms in distill.items():
            def ms_(key: str, ms=ms) -> str:
                v = [100 * m[key] for m in ms]
                return f"{statistics.mean(v):.1f} +/- {statistics.stdev(v) if len(v) > 1 else 0:.1f}"
            lines.append(f"| {label} | {ms_('map50')} | {ms_('map')} |")
    write_report(out, lines, meta + f"; took {(time.time() - t0) / 60:.0f} min",
                 {"rows": rows, "speed": {"/".join(k): v for k, v in speeds.items()}, "distill": distill,
                  "curves": series})
    return 0


if __name__ == "__main__":
    sys.exit(main())
