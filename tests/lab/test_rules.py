"""Each design rule's arms compute what the rule says (equal MACs where it needs them, the
output shape it expects, the same function for re-parameterisation), on small inputs; and
`leannet lab` runs end to end at a tiny effort. No timing is asserted."""

import json

import pytest
import torch

from leannet.lab import options, rules
from leannet.lab.run import Verdict, markdown, run_lab
from leannet.profile.complexity import count_macs

SMALL = 16  # spatial size for the checks: every arm works at H, W divisible by 4


def _small(shape):
    c, h, _ = shape
    return (c, SMALL * 2, SMALL * 2) if h == 224 else (c, SMALL, SMALL)


def test_rule_names_match_the_clis_list():
    assert tuple(r.name for r in rules.RULES) == options.RULE_NAMES
    for r in rules.RULES:
        assert r.source and r.claim and r.shapes and "arXiv" in r.source


@pytest.mark.parametrize("rule", rules.RULES, ids=lambda r: r.name)
def test_arms_compute_what_the_rule_says(rule):
    fast, slow = rule.arms()
    xf = torch.randn(1, *_small(rule.input_of("fast")))
    xs = xf if rule.slow_input is None else torch.randn(1, *_small(rule.input_of("slow")))
    with torch.no_grad():
        of, os_ = fast(xf), slow(xs)
    assert torch.isfinite(of).all() and torch.isfinite(os_).all()
    if rule.same_output:
        assert of.shape == os_.shape
    else:
        assert of.shape[0] == os_.shape[0] and of.shape[2:] == os_.shape[2:]
    if rule.equal_macs:
        mf, ms = count_macs(fast, _small(rule.input_of("fast"))), count_macs(slow, _small(rule.input_of("slow")))
        assert mf > 0 and abs(mf - ms) / mf < 0.06, (mf, ms)
    if rule.same_function:
        torch.testing.assert_close(os_, of, rtol=1e-4, atol=1e-4 * of.abs().max().item())
    if rule.max_ratio is not None:
        assert rule.max_ratio > 1


def test_verdicts_read_their_ratio():
    faster = rules.BY_NAME["G4"]
    bounded = rules.BY_NAME["lcnet_hswish"]
    assert Verdict(faster, "eager", 1.0, 1.5, False).holds == "yes"
    assert Verdict(faster, "eager", 1.0, 1.01, False).holds == "no difference"
    assert Verdict(faster, "eager", 1.0, 0.5, False).holds == "no (reversed)"
    assert Verdict(bounded, "eager", 1.0, 1.05, False).holds == "yes"
    assert Verdict(bounded, "eager", 1.0, 1.5, False).holds == "no"


def test_lab_runs_end_to_end_and_prints_markdown(capsys):
    runtimes = ("eager", "onnxruntime")
    pytest.importorskip("onnxruntime")
    v = run_lab(["tresnet_s2d"], runtimes, threads=1, rounds=1, round_time=0.01)
    assert [x.runtime for x in v] == list(runtimes) and all(x.fast_ms > 0 and x.slow_ms > 0 for x in v)
    md = markdown(v, 1, 1, 0.01)
    assert "| tresnet_s2d |" in md and "Machine:" in md and "torch" in md
    from leannet.cli import main

    assert main(["lab", "G4", "--runtimes", "eager", "--rounds", "1", "--round-time", "0.01",
                 "--threads", "1", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["rule"] == "G4" and rows[0]["holds"] in ("yes", "no difference", "no (reversed)")
