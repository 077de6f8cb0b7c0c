"""The profiler against fvcore (an independent counter) for every model, and by hand on a toy net."""

import json
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import leannet
from leannet.cli import main
from leannet.profile.complexity import profile_model
from leannet.registry import model_info

# fvcore also counts BN, pooling and upsampling as "flops"; MACs in leannet are conv and
# matmul only (the papers' convention), so those handles are switched off to compare like
# with like. Conv (grouped/depthwise), linear/addmm and matmul stay on.
_NOT_MACS = ("aten::batch_norm", "aten::group_norm", "aten::layer_norm", "aten::instance_norm",
             "aten::upsample_nearest2d", "aten::upsample_bilinear2d", "aten::adaptive_avg_pool2d",
             "aten::grid_sampler")
IMG = 64


def _macs(name):
    macs = model_info(name).published.macs_m
    return math.inf if macs is None else macs


def _smallest_per_family():
    families = {}
    for name in sorted(leannet.list_models(), key=_macs):
        families.setdefault(model_info(name).family, name)
    return sorted(families.values())


def _all_models():
    # Every model is checked; big ones (> 1.5 GMACs at 224, or size unpublished) only in the
    # slow tier so the default tier keeps its time budget; each family's smallest stays default.
    keep = set(_smallest_per_family())
    return [pytest.param(n, marks=pytest.mark.slow) if _macs(n) > 1500 and n not in keep else n
            for n in leannet.list_models()]


def _input(model):
    return torch.zeros(1, model.pretrained_cfg.input_size[0], IMG, IMG)


@pytest.mark.parametrize("name", _all_models())
def test_counts_match_fvcore(name):
    from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis, parameter_count

    model = leannet.create_model(name).eval()
    ours = leannet.complexity(model, img=IMG)["totals"]
    # (a None handle only silences fvcore's warning; a zero handle really stops the count)
    macs = FlopCountAnalysis(model, _input(model)).set_op_handle(**dict.fromkeys(_NOT_MACS, lambda i, o: 0))
    macs.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    # Exactly equal, no tolerance: a counter that skipped one SE conv would be off by a few
    # hundred MACs and must fail. (Measured equal for every registered model at 64 px.)
    assert ours["macs"] == macs.total()
    assert ours["params"] == parameter_count(model)[""]
    assert ours["flops"] == 2 * ours["macs"]
    if name in _smallest_per_family():  # activations: one model per family is enough
        acts = ActivationCountAnalysis(model, _input(model))
        acts.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        assert ours["activations"] == acts.total()


class Toy(nn.Module):
    """conv 3->8 3x3 s1 p1 (no bias) -> BN(8) -> depthwise 3x3 s2 (bias) + functional add."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)

    def forward(self, x):
        y = self.dw(self.bn(self.conv(x)))
        return y + 1.0


def test_toy_net_by_hand():
    r = profile_model(Toy(), (3, 16, 16), batch=2)
    rows = {(row["path"], row["op"]): row for row in r["layers"]}
    assert list(rows) == [("conv", "Conv2d"), ("bn", "BatchNorm2d"), ("dw", "Conv2d"), ("", "add")]
    f32, n = 4, 2
    conv, bn, dw, add = rows.values()
    # conv: MACs = out elems x k*k*cin; bytes = input + weights + output, all float32
    assert conv["macs"] == n * 8 * 16 * 16 * (3 * 3 * 3)
    assert conv["memory_access_bytes"] == f32 * (n * 3 * 16 * 16 + 8 * 3 * 3 * 3 + n * 8 * 16 * 16)
    assert conv["activations"] == n * 8 * 16 * 16
    assert conv["params"] == 8 * 27 and conv["output_shape"] == [n, 8, 16, 16]
    # BN: no MACs, no activations; weights = gamma, beta, running mean, running var
    assert (bn["macs"], bn["activations"], bn["params"]) == (0, 0, 16)
    assert bn["memory_access_bytes"] == f32 * (2 * n * 8 * 16 * 16 + 4 * 8)
    # depthwise stride 2: each output element is one 3x3 window of ONE channel
    assert dw["macs"] == n * 8 * 8 * 8 * 9
    assert dw["memory_access_bytes"] == f32 * (n * 8 * 16 * 16 + 8 * 9 + 8 + n * 8 * 8 * 8)
    assert dw["activations"] == n * 8 * 8 * 8 and dw["params"] == 8 * 9 + 8
    # the functional add outside any leaf: reads y, writes the sum (the scalar is not a tensor)
    assert add["memory_access_bytes"] == f32 * 2 * n * 8 * 8 * 8 and add["macs"] == 0
    for key in ("macs", "params", "memory_access_bytes", "activations"):
        assert r["totals"][key] == sum(row[key] for row in r["layers"])
    assert conv["intensity"] == pytest.approx(2 * conv["macs"] / conv["memory_access_bytes"])


def test_bytes_follow_dtype():
    r32 = profile_model(Toy(), (3, 16, 16))
    r64 = profile_model(Toy().double(), (3, 16, 16), dtype=torch.float64)
    assert r64["totals"]["memory_access_bytes"] == 2 * r32["totals"]["memory_access_bytes"]
    assert r64["totals"]["macs"] == r32["totals"]["macs"]


def test_shared_module_params_counted_once():
    conv = nn.Conv2d(4, 4, 1)
    twice = nn.Sequential(conv, nn.ReLU(), conv)
    r = profile_model(twice, (4, 8, 8))
    assert r["totals"]["params"] == 20
    assert r["totals"]["macs"] == 2 * 4 * 4 * 64 and len(r["layers"]) == 3


def test_deployed_changes_params_and_matches_deployed_module():
    model = leannet.create_model("pplcnet_x0_25")
    train = leannet.complexity(model, img=IMG)
    dep = leannet.complexity(model, img=IMG, deployed=True)
    assert (train["deployed"], dep["deployed"]) == (False, True)
    assert dep["totals"]["params"] < train["totals"]["params"]
    assert not any(row["op"] == "BatchNorm2d" for row in dep["layers"])
    deployed = leannet.reparameterize(model)
    assert dep["totals"]["params"] == sum(p.numel() for p in deployed.parameters())
    assert dep["totals"]["macs"] == train["totals"]["macs"]  # folding BN adds no MACs


def test_cli_json_schema(capsys):
    assert main(["profile", "pplcnet_x0_25", "--img", "64", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"model", "input", "deployed", "totals", "layers"}
    assert out["model"] == "pplcnet_x0_25" and out["input"] == [1, 3, 64, 64]
    assert set(out["totals"]) >= {"params", "macs", "flops", "memory_access_bytes", "activations"}
    row = out["layers"][0]
    assert set(row) >= {"path", "op", "output_shape", "params", "macs", "memory_access_bytes",
                        "activations", "intensity"}


def test_cli_table_sorted(capsys):
    assert main(["profile", "lcnet_050", "--img", "64", "--sort", "params", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "pplcnet_x0_5" in out and "3 of 97 layers, by params" in out
    # The table lists the three largest layers by params, largest first: the classifier
    # (1280 x 1000 + 1000), the 1x1 head conv (256 x 1280, no bias) and the last pointwise conv (256 x 256).
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["#", "layer"]) + 1
    shown = [line.split()[1] for line in lines[start:start + 3]]
    assert shown == ["head.fc", "head.conv", "stages.4.1.pw.conv"]
    layers = leannet.complexity("pplcnet_x0_5", img=64)["layers"]
    params = {row["path"]: row["params"] for row in layers}
    assert [params[p] for p in shown] == [1280 * 1000 + 1000, 256 * 1280, 256 * 256]
    assert max(row["params"] for row in layers if row["path"] not in shown) <= 256 * 256


def test_cli_unknown_model_exit_2(capsys):
    assert main(["profile", "pp_lcnet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pp_lcnet" in err[0] and "pplcnet" in err[0]


def test_deployed_mobileone_s0_matches_the_official_counts():
    # apple/ml-mobileone: S0 has 5.29M parameters in train form, 2.08M re-parameterised
    train = leannet.complexity("mobileone_s0", img=IMG)["totals"]["params"]
    deployed = leannet.complexity("mobileone_s0", img=IMG, deployed=True)["totals"]["params"]
    assert train / 1e6 == pytest.approx(5.29, abs=0.01)
    assert deployed / 1e6 == pytest.approx(2.08, abs=0.01)


class Gray(nn.Module):
    """A one-channel net that says so the way registered models do (pretrained_cfg)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.pretrained_cfg = SimpleNamespace(name="gray_net", input_size=(1, 28, 28))

    def forward(self, x):
        return self.conv(x)


def test_complexity_of_a_module_reads_its_name_and_channels():
    r = leannet.complexity(Gray(), img=8)
    assert (r["model"], r["input"], r["deployed"]) == ("gray_net", [1, 1, 8, 8], False)
    assert r["totals"]["macs"] == 4 * 8 * 8 * (1 * 3 * 3)  # out elements x k*k*cin, by hand
    assert all(type(row["macs"]) is int for row in r["layers"])  # a count, printed as one
    assert leannet.complexity(Gray(), img=8, batch=2)["input"] == [2, 1, 8, 8]
    plain = leannet.complexity(Toy())  # no pretrained_cfg: the class name, 3 channels, 224 px
    assert (plain["model"], plain["input"]) == ("Toy", [1, 3, 224, 224])
    assert plain["totals"]["macs"] == 8 * 224 * 224 * 27 + 8 * 112 * 112 * 9


class ViewsAndSquares(nn.Module):
    """Ops outside leaf modules (the Identity child only makes the root a non-leaf)."""

    def __init__(self):
        super().__init__()
        self.id = nn.Identity()

    def forward(self, x):
        y = self.id(x).transpose(1, 2)  # a view: no data moves, no row
        return y * y  # reads one tensor (twice, but it is one tensor's bytes) and writes one


def test_views_give_no_row_and_a_tensor_read_twice_counts_once():
    # inside a container: the row is the innermost module that ran the op ("0")
    r = profile_model(nn.Sequential(ViewsAndSquares()), (3, 4, 5), batch=2)
    assert [(row["path"], row["op"]) for row in r["layers"]] == [("0", "mul")]
    assert r["layers"][0]["memory_access_bytes"] == 4 * (2 * 60 + 2 * 60)  # float32 in + out
    assert r["layers"][0]["output_shape"] == [2, 4, 3, 5]


class Functional(nn.Module):
    """Parameters used by functional ops outside leaf modules: a fresh one (scale) is charged
    to the op that reads it; the conv weight, already counted by its leaf, is not charged again."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.scale = nn.Parameter(torch.ones(4, 1, 1))

    def forward(self, x):
        y = self.conv(x) + nn.functional.conv2d(x, self.conv.weight, padding=1)
        return y * self.scale + self.scale


def test_functional_params_are_charged_once_to_the_op_that_reads_them():
    r = profile_model(Functional(), (3, 5, 5))
    params = [(row["op"], row["params"]) for row in r["layers"]]
    assert params == [("Conv2d", 4 * 3 * 9), ("convolution", 0), ("add", 0), ("mul", 4), ("add", 0)]
    assert r["totals"]["params"] == 4 * 3 * 9 + 4 and "params_unused" not in r["totals"]


class TwoConvLeaf(nn.Module):
    """A leaf module (no children) running two convs functionally: one row, both convs' counts."""

    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(4, 3, 3, 3))
        self.w2 = nn.Parameter(torch.randn(2, 4, 1, 1))

    def forward(self, x):
        return nn.functional.conv2d(nn.functional.conv2d(x, self.w1, padding=1), self.w2)


def test_a_leaf_sums_the_macs_and_activations_of_its_ops():
    r = profile_model(TwoConvLeaf(), (3, 6, 6))
    (row,) = r["layers"]
    assert row["macs"] == 4 * 36 * 27 + 2 * 36 * 4
    assert row["activations"] == 4 * 36 + 2 * 36
