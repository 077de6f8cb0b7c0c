"""Per-layer measured latency (leannet.bench.layers) and the machine's limits
(leannet.bench.machine): names map to layers, every layer is attributed once, the row fields
exist. No timing is asserted."""

import pytest
import torch
from torch import nn

from leannet.bench import layers, machine

# Fixed limits: tests never measure the machine.
LIMITS = {"peak_gflops": {"fp32": 100.0, "bf16": None, "int8": None}, "bandwidth_gbps": 20.0,
          "ridge_flop_per_byte": 5.0}


class Block(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.act = nn.Hardswish()

    def forward(self, x):
        return x + self.act(self.conv(x))  # the add runs outside leaf modules


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.blocks = nn.Sequential(Block(8), Block(8))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(self.pool(self.blocks(self.stem(x))).flatten(1))


def test_module_path_reads_exporter_scopes():
    paths = {"blocks", "blocks.0", "blocks.0.conv", "blocks.1", "stem", "stages", "stages.4",
             "stages.4.0", "stages.4.0.se"}
    assert layers.module_path("/blocks/blocks.0/conv/Conv", paths) == "blocks.0.conv"
    assert layers.module_path("/blocks/blocks.0/conv/Conv/WithoutBiases", paths) == "blocks.0.conv"
    assert layers.module_path("/stages/stages.4/stages.4.0/se/Mul", paths) == "stages.4.0.se"
    assert layers.module_path("/stem/Conv_output_0_nchwc", paths) == "stem"
    assert layers.module_path("ReorderInput_token_3", paths) == ""


def test_group_attributes_every_layer_once():
    hits = [("reorder", "", 1.0, []), ("a", "", 2.0, [0, 1]), ("c", "", 3.0, [3]), ("r2", "", 0.5, [])]
    groups = layers._group(5, hits)
    covered = sorted(i for g in groups for i in g["layers"])
    assert covered == [0, 1, 2, 3, 4]
    assert sum(g["ms"] for g in groups) == pytest.approx(6.5)
    first = groups[0]
    assert first["layers"] == [0, 1, 2] and first["ms"] == 3.0  # layer 2 had no node: fused into 1
    assert groups[1]["layers"] == [3, 4] and groups[1]["unnamed_nodes"] == 1


@pytest.mark.parametrize("runtime", layers.RUNTIMES)
def test_layer_latency_covers_every_layer(runtime):
    if runtime != "eager":
        pytest.importorskip("onnxruntime" if runtime == "onnxruntime" else "openvino")
    torch.manual_seed(0)
    r = layers.layer_latency(Tiny(), runtime, img=32, threads=1, runs=3, warmup=1, limits=LIMITS)
    covered = sorted(p for g in r["groups"] for p in g["layers"])
    assert covered == sorted(row["path"] or "(root)" for row in r["layers"])
    assert r["layers_ms"] == pytest.approx(sum(g["ms"] for g in r["groups"]))
    assert r["overhead_ms"] == pytest.approx(r["model_ms"] - r["layers_ms"])
    assert sum(g["share"] for g in r["groups"]) == pytest.approx(1.0)
    for g in r["groups"]:
        assert g["ms"] >= 0 and g["bound"] in ("compute", "memory")
        assert g["macs"] == sum(row["macs"] for row in r["layers"] if (row["path"] or "(root)") in g["layers"])
    text = layers.latency_table(r)
    assert "runtime overhead" in text and runtime in text


def test_roofline_fields():
    row = {"macs": 1e9, "memory_access_bytes": 1e8, "median_ms": 100.0, "batch": 1, "precision": "fp32"}
    f = machine.roofline_fields(row, LIMITS)
    assert f["achieved_gflops"] == pytest.approx(20.0)
    # intensity 20 FLOP/B is above the ridge (5): the roof is the peak, 100 GFLOP/s
    assert f["roofline_share"] == pytest.approx(0.2)
    assert machine.bound(1.0, LIMITS) == "memory" and machine.bound(10.0, LIMITS) == "compute"
    assert machine.roof_gflops(1.0, LIMITS) == 20.0
    assert machine.roofline_fields({"macs": 5}, LIMITS) == {"achieved_gflops": None, "roofline_share": None}


def test_add_roofline_uses_cached_limits(monkeypatch):
    monkeypatch.setattr(machine, "limits", lambda threads=None, refresh=False: LIMITS)
    rows = [{"macs": 1e9, "memory_access_bytes": 1e8, "median_ms": 100.0, "batch": 1, "threads": 1},
            {"error": "x"}]
    machine.add_roofline(rows)
    assert set(rows[0]) >= {"achieved_gflops", "roofline_share"} and "achieved_gflops" not in rows[1]


def test_machine_limits_cached_per_fingerprint(monkeypatch):
    calls = []

    def fake(threads=None, **kw):
        calls.append(threads)
        return {"threads": threads, **LIMITS}

    monkeypatch.setattr(machine, "measure_limits", fake)
    a, b = machine.limits(1), machine.limits(1)
    assert a == b and calls == [1] and a["fingerprint"]
    machine.limits(1, refresh=True)
    assert calls == [1, 1]


def test_measure_limits_tiny():
    lim = machine.measure_limits(1, matmul_n=64, copy_bytes=1 << 20)
    assert lim["peak_gflops"]["fp32"] > 0 and lim["bandwidth_gbps"] > 0
    assert lim["supported"]["fp32"] is True
    assert lim["checks"]["numpy_copy_gbps"] > 0


def test_bench_rows_carry_roofline_fields(tmp_path):
    import json

    from leannet.bench.sweep import bench

    sweep = bench(["pplcnet_x0_25"], runtimes=["eager"], batches=(1,), out=tmp_path, img=32,
                  min_time=0.02, rounds=2, threads=1, progress=False, retries=0)
    rows = [json.loads(line) for line in sweep.results.read_text().splitlines()]
    assert rows
    for row in rows:
        assert row["achieved_gflops"] == pytest.approx(2 * row["macs"] * row["batch"] / row["median_ms"] / 1e6, rel=1e-3)
        assert row["roofline_share"] > 0 and row["intensity"] == pytest.approx(
            2 * row["macs"] / row["memory_access_bytes"], rel=1e-3)
        assert row["machine_peak_gflops"] > 0 and row["machine_bandwidth_gbps"] > 0
    from leannet.bench.report import write_report

    md = write_report(tmp_path).read_text()
    assert "Roofline" in md and list(tmp_path.glob("roofline_*.png"))


def test_report_roofline_section(tmp_path):
    rows = [{"model": m, "runtime": rt, "series": rt, "precision": "fp32", "intensity": i,
             "achieved_gflops": g, "roofline_share": g / min(100.0, 20.0 * i),
             "machine_peak_gflops": 100.0, "machine_bandwidth_gbps": 20.0}
            for m, rt, i, g in (("a", "eager", 2.0, 10.0), ("b", "eager", 8.0, 50.0), ("a", "openvino", 2.0, 30.0))]
    md = machine.roofline_section([*rows, {"model": "old", "runtime": "eager"}], tmp_path, "t", "batch 1")
    assert (tmp_path / "roofline_t.png").is_file()
    table = [line for line in md if line.startswith("| eager") or line.startswith("| openvino")]
    assert table[0].startswith("| eager | a ") and "25%" in table[0] and len(table) == 3
    assert machine.roofline_section([{"model": "old", "runtime": "eager"}], tmp_path, "u", "") == []


def test_cli_profile_latency_json(capsys):
    import json

    from leannet.cli import main

    assert main(["profile", "pplcnet_x0_25", "--img", "32", "--latency", "--runtime", "eager",
                 "--runs", "2", "--threads", "1", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["runtime"] == "eager" and r["groups"] and r["limits"]["bandwidth_gbps"] > 0
    assert sorted(p for g in r["groups"] for p in g["layers"]) == sorted(row["path"] for row in r["layers"])


def test_onnx_nodes_of_a_stage_take_its_op_rows_in_order():
    rows = [{"path": "s", "op": "cat"}, {"path": "s.b.conv", "op": "Conv2d"}, {"path": "s", "op": "cat"},
            {"path": "s", "op": "index_select"}]
    index = layers._Index(rows, {"s.b.conv"}, canon={"s.alias": "s.b", "s.alias.conv": "s.b.conv"})
    assert index.for_onnx_node("/s/Concat") == [0]
    assert index.for_onnx_node("/s/Concat_1") == [2]
    assert index.for_onnx_node("/s/Concat") == [0]  # the answer per name is fixed
    assert index.for_onnx_node("/s/Concat_2") == []  # no third cat: joins a neighbour
    assert index.for_onnx_node("/s/Split") == []  # a view in the profile: no row of its own
    assert index.for_onnx_node("/s/alias/conv/Conv") == [1]  # called under a second name
