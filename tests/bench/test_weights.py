"""Weights are part of bench's and select's answers: every row names the weights it was timed
with, and a top-1 that was published for some weights is claimed only by a row carrying them.
`select --export` ships the pick with its published weights, fetched here from a loopback hub
(tests/weights/test_hub.py's), or refuses in one line; `--random-weights` is stated everywhere
after. Offline with nothing cached is the tests' default (tests/conftest.py)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import leannet
from leannet.bench.sweep import bench
from leannet.cli import main
from leannet.weights import save_weights
from tests.bench.test_sweep import TINY, needs_ort
from tests.helpers import needs
from tests.weights.test_hub import COMMIT, REPO, caches, server, timm_lcnet  # noqa: F401 (fixtures)

RANDOM = "random (latency only)"
NOT_MEASURED = "not measured (give --eval)"


def _tiny_set(root, classes=10):
    """A labelled ImageFolder, one noise image per class (enough to measure *a* top-1)."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / str(c)).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / str(c) / "a.png")
    return root


def test_a_zoo_name_without_cached_weights_is_timed_random_and_claims_no_top1(tmp_path):
    row, = bench(["pplcnet_x0_5"], runtimes=["eager"], out=tmp_path, **TINY).rows
    assert row["weights"] == RANDOM and row["median_ms"] > 0
    assert row["top1"] is None and row["top1_source"] == NOT_MEASURED
    assert row["published_top1"] is not None  # the paper's claim stays, as the paper's


@needs_ort
def test_a_fine_tuned_checkpoint_and_its_export_get_no_published_top1(tmp_path, capsys):
    from leannet.deploy import export

    ckpt = save_weights(leannet.create_model("pplcnet_x0_25", num_classes=10), tmp_path / "mine.safetensors",
                        meta={"arch": "pplcnet_x0_25", "num_classes": 10})
    art = export(str(ckpt), format="onnx", out=tmp_path / "m.onnx", img=32).path
    args = ["bench", str(ckpt), str(art), "--runtimes", "onnxruntime", "--img", "32", "--min-time", "0.02",
            "--rounds", "1", "--threads", "1", "--retries", "0", "--quiet", "--format", "json"]
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2
    for r in rows:
        assert r["top1"] is None and r["top1_source"] == NOT_MEASURED, r
        assert r["weights"] == str(ckpt)  # the artefact's sidecar names the checkpoint it came from
    assert main([*args[:-2], "--out", str(tmp_path / "b")]) == 0  # the table, from the cache
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("mine ", "m "))]
    assert len(table) == 2 and all("not measured" in line for line in table)
    val = _tiny_set(tmp_path / "val")
    assert main([*args, "--out", str(tmp_path / "b2"), "--eval", str(val)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for r in rows:
        assert r["top1_source"] == f"measured on {val}" and 0 <= r["top1"] <= 100


def _select(tmp_path, *extra):
    return ["select", "--budget-ms", "100000", "--models", "pplcnet_x0_5", "--runtimes", "onnxruntime",
            "--min-time", "0.02", "--rounds", "1", "--threads", "1", "--out", str(tmp_path / "b"),
            "--export", str(tmp_path / "pick"), "--quiet", *extra]


@needs_ort
def test_select_export_offline_refuses_in_one_line_unless_random_weights(tmp_path, capsys):
    assert main(_select(tmp_path)) == 2
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("leannet: error:")]
    assert len(errors) == 1 and "Traceback" not in err and out == ""
    assert "pplcnet_x0_5" in errors[0] and "offline" in errors[0] and "--random-weights" in errors[0]
    assert not (tmp_path / "pick").exists() or list((tmp_path / "pick").iterdir()) == []

    assert main(_select(tmp_path, "--random-weights")) == 0
    out = capsys.readouterr().out
    assert f"weights: {RANDOM}" in out
    art = tmp_path / "pick" / "pplcnet_x0_5.onnx"
    side = json.loads(art.with_suffix(".json").read_text())
    assert side["weights"] == RANDOM and "weights_top1" not in side
    img = tmp_path / "x.png"
    Image.new("RGB", (40, 40)).save(img)
    assert main(["infer", str(art), str(img), "--json", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "random weights" in err and json.loads(out)["weights"] == RANDOM


@needs_ort
def test_select_exports_the_published_weights_from_the_hub(tmp_path, caches, server, timm_lcnet, capsys):  # noqa: F811
    _, body, config = timm_lcnet
    server.add_hf(REPO, "model.safetensors", body)
    server.add_hf(REPO, "config.json", config, lfs=False)
    assert main(_select(tmp_path)) == 0
    assert server.requests[0].endswith("model.safetensors")  # bench itself never downloads: export did
    out = capsys.readouterr().out
    provenance = f"hf-hub:{REPO}@{COMMIT}"
    assert "pick: pplcnet_x0_5 / onnxruntime / fp32" in out and f"weights: {provenance}" in out
    art = tmp_path / "pick" / "pplcnet_x0_5.onnx"
    side = json.loads(art.with_suffix(".json").read_text())
    assert side["weights"] == provenance and side["weights_top1"] == pytest.approx(63.138)
    # The artefact computes what the pretrained model computes.
    from leannet.deploy import Predictor

    x = torch.randn(1, 3, 224, 224)
    ref = leannet.create_model("pplcnet_x0_5", pretrained=True).eval()(x).detach().numpy()
    np.testing.assert_allclose(Predictor(art).runner(x.numpy()), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    # Now cached, bench times the published weights and carries their published top-1; the
    # artefact exported from them at their input size does too.
    # The select sweep's row (random weights) is not reused: measured again with them.
    sweep = bench(["pplcnet_x0_5", str(art)], runtimes=["onnxruntime"], out=tmp_path / "b",
                  **{**TINY, "img": 224, "rounds": 1})
    assert sweep.reused == 0
    for r in sweep.rows:
        assert r["weights"] == provenance and r["top1"] == pytest.approx(63.138), r
        assert r["top1_source"].startswith(f"published for {provenance}")


@needs("ncnn", "pnnx")
def test_select_exports_a_mobile_pick_for_its_engine_with_the_published_weights(tmp_path, caches, server,  # noqa: F811
                                                                               timm_lcnet, capsys):  # noqa: F811
    """A pick on a phone engine is exported for that engine (ncnn: .param + .bin), with the
    published weights, and computes what the pretrained model computes on that engine."""
    from leannet.runtime.runners import open_runner

    _, body, config = timm_lcnet
    server.add_hf(REPO, "model.safetensors", body)
    server.add_hf(REPO, "config.json", config, lfs=False)
    args = _select(tmp_path)
    args[args.index("--runtimes") + 1] = "ncnn"
    assert main(args) == 0
    out = capsys.readouterr().out
    provenance = f"hf-hub:{REPO}@{COMMIT}"
    assert "pick: pplcnet_x0_5 / ncnn / fp32" in out and f"weights: {provenance}" in out
    art = tmp_path / "pick" / "pplcnet_x0_5.param"
    side = json.loads(art.with_suffix(".json").read_text())
    assert art.with_suffix(".bin").is_file() and side["weights"] == provenance and side["format"] == "ncnn"
    x = torch.randn(1, 3, 224, 224)
    ref = leannet.create_model("pplcnet_x0_5", pretrained=True).eval()(x).detach().numpy()
    np.testing.assert_allclose(open_runner(art, "ncnn")(x.numpy()), ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_an_accuracy_sweep_fetches_the_published_weights(tmp_path, caches, server, timm_lcnet):  # noqa: F811
    """Latency sweeps never download; a sweep asked for top-1 (`--eval`) does, since the top-1
    of random weights answers nothing: its row carries the hub's weights and their provenance."""
    _, body, config = timm_lcnet
    server.add_hf(REPO, "model.safetensors", body)
    server.add_hf(REPO, "config.json", config, lfs=False)
    row, = bench(["pplcnet_x0_5"], runtimes=["eager"], out=tmp_path / "lat", **TINY).rows
    assert row["weights"] == RANDOM and not server.requests
    row, = bench(["pplcnet_x0_5"], runtimes=["eager"], out=tmp_path / "acc", eval_set=_tiny_set(tmp_path / "val"),
                 **TINY).rows
    assert server.requests and row["weights"] == f"hf-hub:{REPO}@{COMMIT}"
    assert row["top1"] is not None and row["top1_source"].startswith("measured on")


def test_select_ranks_only_what_carries_published_weights():
    from leannet.bench.select import choose

    def row(model, kind, weights, top1=None, **extra):
        return {"model": model, "source_kind": kind, "runtime": "onnxruntime", "precision": "fp32", "batch": 1,
                "median_ms": 1.0, "iqr_ms": 0.0, "input_shape": [1, 3, 224, 224], "weights": weights,
                "top1": top1, "top1_source": NOT_MEASURED if top1 is None else "x", **extra}

    sel = choose([row("mine", "checkpoint", "/w/mine.safetensors"),  # a fine-tuned pplcnet_x0_25
                  row("pplcnet_x1_0", "zoo", RANDOM),  # timed without its weights: ranked by theirs
                  row("snet49", "zoo", RANDOM)], budget_ms=10)  # no published weights at all
    by = {c.model: c for c in sel.candidates}
    assert by["mine"].top1 is None and by["mine"].excluded == "no accuracy known: give --eval"
    assert by["snet49"].top1 is None and by["snet49"].excluded
    assert by["pplcnet_x1_0"].top1 == pytest.approx(72.13)  # timm's lcnet_100 weights, not the paper's 71.32
    assert by["pplcnet_x1_0"].top1_source.startswith("published for hf-hub:timm/lcnet_100.ra2_in1k")
    assert sel.pick is by["pplcnet_x1_0"] and "weights: random" in sel.summary()


def test_the_report_ranks_random_rows_as_select_does_and_says_they_were_random(tmp_path):
    """A `make run` offline times every model with random weights: the report says so in its
    facts, and its Pareto fronts and picks use the figure `select` ranks by (the top-1 published
    for the checkpoint an export would ship), not nothing and not the paper's."""
    from leannet.bench.report import write_report
    from leannet.bench.select import choose, shipped_top1
    from tests.bench.fake_rows import seeds_rows, write_results

    rows = [dict(r, weights=RANDOM, top1=None, top1_source=NOT_MEASURED, source_kind="zoo",
                 input_shape=[1, 3, 224, 224]) for r in seeds_rows()]
    write_results(tmp_path / "results.jsonl", rows)
    md = write_report(tmp_path).read_text()
    assert "16 of 16 models ran with random weights" in md
    pplcnet = shipped_top1(next(r for r in rows if r["model"] == "pplcnet_x1_0"))[0]
    assert "pplcnet_x1_0 (" in md and f"{pplcnet:.1f}%)" in md  # on a front, with the shipped figure
    assert "without a known top-1 (left out): snet146" in md  # no published checkpoint: no figure
    pick = choose(rows, 5.0).pick
    assert f"| 5 ms | {pick.model} / {pick.runtime} / {pick.precision} |" in md
