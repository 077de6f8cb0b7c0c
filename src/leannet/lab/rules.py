"""The seeds' latency claims as paired micro-benchmarks: one `Rule` per claim.

A rule has two arms, small `nn.Module`s built fresh by `arms()`: `fast` is the arm the source
says is cheaper, `slow` the other. Its claim is one of two kinds:

* `max_ratio=None`: "fast is faster": it holds here when slow / fast >= 1 + `NOISE`;
* `max_ratio=r`: "fast costs little more than slow... is nearly free": the claim is that the
  richer arm (`slow`) costs at most `r` x the plain one; it holds when slow / fast <= r.

Shapes follow the source's setup where it gives one (ShuffleNetV2 Tables 1-4: 56x56 inputs,
the "x1" channel column), with fewer repeats than the paper's 10 stacked blocks so a full
`leannet lab` stays near 3 minutes on 2 cores; each rule's `shapes` says what runs. What a
rule needs of its arms (equal MACs, same output shape, the same function) is what
tests/lab checks, on small inputs: every arm works at any H, W divisible by 4.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from leannet.layers.conv_bn_act import ConvBnAct
from leannet.layers.depthwise_separable import DepthwiseSeparable
from leannet.layers.rep_block import RepConvBlock
from leannet.models.ghostnet import GhostModule
from leannet.models.tresnet import SpaceToDepth

NOISE = 0.05  # a ratio within 5% of 1 is no difference: busy-machine run-to-run spread is ~3-5%

Builder = Callable[[], nn.Module]


@dataclass(frozen=True)
class Rule:
    name: str
    source: str  # paper, arXiv id, table or section
    claim: str  # the sentence tested, in the source's terms
    shapes: str  # what runs, in words
    input: tuple[int, int, int]  # (C, H, W) of the fast arm's input, batch 1
    fast: tuple[str, Builder]  # (label, builder) of the arm the claim says is cheaper
    slow: tuple[str, Builder]
    max_ratio: float | None = None  # None: fast must be faster; else slow/fast <= max_ratio holds
    equal_macs: bool = False  # the two arms have equal MACs (within 6%) by construction
    same_output: bool = True  # both arms give the same output shape
    same_function: bool = False  # both arms compute the same function (re-parameterisation)
    slow_input: tuple[int, int, int] | None = None  # the slow arm's input when it differs (G1, G2)

    def input_of(self, arm: str) -> tuple[int, int, int]:
        return self.slow_input if arm == "slow" and self.slow_input else self.input

    def arms(self) -> tuple[nn.Module, nn.Module]:
        torch.manual_seed(0)
        fast = self.fast[1]().eval()
        torch.manual_seed(0)
        return fast, self.slow[1]().eval()


def _seq(block: Builder, n: int) -> nn.Sequential:
    return nn.Sequential(*(block() for _ in range(n)))


# --- ShuffleNetV2 (Ma et al., ECCV 2018, arXiv 1807.11164), Sec. 2 ---------------------------------


class TwoPointwise(nn.Module):
    """ShuffleNetV2 Table 1's block: 1x1 conv c1 -> c2, then 1x1 conv c2 -> c1 (ReLU after
    each); MACs = 2 h w c1 c2, fixed while c1:c2 varies."""

    def __init__(self, c1: int, c2: int, groups: int = 1):
        super().__init__()
        self.a = nn.Conv2d(c1, c2, 1, groups=groups)
        self.b = nn.Conv2d(c2, c1, 1, groups=groups)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.b(self.act(self.a(x))))


class Fragmented(nn.Module):
    """ShuffleNetV2 Table 3 / Appendix Fig. 1: `n` 1x1 convs side by side on the same input,
    their outputs concatenated (n=1 is one conv); total MACs are the one conv's."""

    def __init__(self, c: int, n: int):
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(c, c // n, 1) for _ in range(n))
        self.act = nn.ReLU()

    def forward(self, x):
        if len(self.branches) == 1:
            return self.act(self.branches[0](x))
        return self.act(torch.cat([b(x) for b in self.branches], 1))


class Bottleneck(nn.Module):
    """ShuffleNetV2 Table 4: a ResNet bottleneck (1x1 256->64, 3x3 64->64, 1x1 64->256), with
    or without its ReLUs and shortcut add (the element-wise ops)."""

    def __init__(self, c: int = 256, mid: int = 64, elementwise: bool = True):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(c, mid, 1), nn.Conv2d(mid, mid, 3, padding=1), nn.Conv2d(mid, c, 1)])
        self.elementwise = elementwise
        self.act = nn.ReLU()

    def forward(self, x):
        out = x
        for i, conv in enumerate(self.convs):
            out = conv(out)
            if self.elementwise and i < 2:
                out = self.act(out)
        return self.act(out + x) if self.elementwise else out


# --- PP-LCNet (Cui et al. 2021, arXiv 2109.15099), Sec. 3 ------------------------------------------


def _lcnet_stage4(act: str, kernel: int = 3, se_last: int = 0, n: int = 5) -> nn.Sequential:
    """PP-LCNet x1.0 Table 1's 14x14 stage: `n` DW kxk + PW 1x1 blocks at 256 channels; SE in
    the last `se_last` of them."""
    return nn.Sequential(*(DepthwiseSeparable(256, 256, kernel, se=i >= n - se_last, act=act) for i in range(n)))


class LcnetHead(nn.Module):
    """PP-LCNet's head: GAP, then (wide) a 1280-channel 1x1 conv + H-Swish, then the classifier."""

    def __init__(self, c: int = 512, wide: bool = True, classes: int = 1000):
        super().__init__()
        self.block = DepthwiseSeparable(c, c, 5, se=True, act="hard_swish")  # the last block of Table 1
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv2d(c, 1280, 1) if wide else nn.Identity()
        self.act = nn.Hardswish() if wide else nn.Identity()
        self.fc = nn.Linear(1280 if wide else c, classes)

    def forward(self, x):
        return self.fc(self.act(self.conv(self.pool(self.block(x)))).flatten(1))


# --- MobileOne (Vasu et al. 2022, arXiv 2206.04040) -------------------------------------------------


def _mobileone_block(act: str, branches: int = 4, deployed: bool = False) -> nn.Module:
    """MobileOne-S0's block at 28x28 (Table 7 stage 3: 128 channels, k=4 branches): DW 3x3 rep
    block then PW 1x1 rep block, each with `act`."""
    block = nn.Sequential(RepConvBlock(128, 128, 3, groups=128, num_branches=branches, act=act),
                          RepConvBlock(128, 128, 1, num_branches=branches, act=act))
    with torch.no_grad():  # BN statistics off their init values, so re-parameterising is a real test
        for m in block.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    if deployed:
        for m in block.modules():
            if isinstance(m, RepConvBlock):
                m.reparameterize()
    return block


# --- GhostNet (Han et al., CVPR 2020, arXiv 1911.11907; G-GhostNet arXiv 2201.03297) ---------------


def _plain_equal_macs(c_in: int = 128, c_out: int = 256) -> nn.Module:
    """A plain 1x1 conv with the ghost module's MACs: (c_in*m + 9*m) / c_in output channels."""
    m = c_out // 2
    return ConvBnAct(c_in, round((c_in * m + 9 * m) / c_in), 1, act="relu")


# --- TResNet (Ridnik et al., WACV 2021, arXiv 2003.13630) ------------------------------------------


class S2DStem(nn.Module):
    """TResNet's stem (Sec. 3.1): SpaceToDepth 4x4 (3 -> 48 channels at H/4), one 3x3 conv to 64."""

    def __init__(self):
        super().__init__()
        self.s2d = SpaceToDepth(4)
        self.conv = ConvBnAct(48, 64, 3, act="relu")

    def forward(self, x):
        return self.conv(self.s2d(x))


def _resnet_stem() -> nn.Module:
    """ResNet-50's stem: 7x7 stride-2 conv 3 -> 64, BN, ReLU, 3x3 stride-2 max-pool (H/4)."""
    return nn.Sequential(ConvBnAct(3, 64, 7, 2, act="relu"), nn.MaxPool2d(3, 2, 1))


SN = "ShuffleNetV2 (Ma et al. 2018, arXiv 1807.11164)"
LC = "PP-LCNet (Cui et al. 2021, arXiv 2109.15099)"
MO = "MobileOne (Vasu et al. 2022, arXiv 2206.04040)"

RULES: tuple[Rule, ...] = (
    Rule("G1", f"{SN} Sec. 2 G1, Table 1",
         "equal input/output channels minimise memory access at equal FLOPs: c1:c2 = 1:1 is faster than 1:12",
         "2 blocks of 1x1 c1->c2 + 1x1 c2->c1 at 56x56; (128,128) vs (36,432) (Table 1, x1)",
         (128, 56, 56), ("c1:c2=1:1", lambda: _seq(lambda: TwoPointwise(128, 128), 2)),
         ("c1:c2=1:12", lambda: _seq(lambda: TwoPointwise(36, 432), 2)), equal_macs=True, same_output=False,
         slow_input=(36, 56, 56)),
    Rule("G2", f"{SN} Sec. 2 G2, Table 2",
         "group convolution raises memory access: g=1 is faster than g=8 at equal FLOPs",
         "2 blocks of two 1x1 convs at 56x56; g=1 c=128 vs g=8 c=360 (Table 2, x1)",
         (128, 56, 56), ("g=1 c=128", lambda: _seq(lambda: TwoPointwise(128, 128), 2)),
         ("g=8 c=360", lambda: _seq(lambda: TwoPointwise(360, 360, 8), 2)), equal_macs=True, same_output=False,
         slow_input=(360, 56, 56)),
    Rule("G3", f"{SN} Sec. 2 G3, Table 3 / Appendix Fig. 1",
         "network fragmentation reduces parallelism: 1 conv is faster than 4 parallel fragments of equal FLOPs",
         "4 stacked units at 56x56, c=128: one 1x1 conv vs four parallel 1x1 convs (128->32) + concat",
         (128, 56, 56), ("1-fragment", lambda: _seq(lambda: Fragmented(128, 1), 4)),
         ("4-fragment-parallel", lambda: _seq(lambda: Fragmented(128, 4), 4)), equal_macs=True),
    Rule("G4", f"{SN} Sec. 2 G4, Table 4",
         "element-wise ops are not free: a bottleneck without ReLU and shortcut is faster",
         "1 ResNet bottleneck (256-64-64-256) at 56x56, with vs without ReLU + shortcut",
         (256, 56, 56), ("no ReLU, no shortcut", lambda: Bottleneck(elementwise=False)),
         ("ReLU + shortcut", lambda: Bottleneck(elementwise=True)), equal_macs=True),
    Rule("lcnet_hswish", f"{LC} Sec. 3.2 (H-Swish), Table 5",
         "H-Swish instead of ReLU costs little latency (<= 1.10x)",
         "PP-LCNet x1.0's 14x14 stage: 5 DW 3x3 + PW blocks, 256 ch, BN, ReLU vs H-Swish",
         (256, 14, 14), ("ReLU", lambda: _lcnet_stage4("relu")), ("H-Swish", lambda: _lcnet_stage4("hard_swish")),
         max_ratio=1.10, equal_macs=True),
    Rule("lcnet_se_tail", f"{LC} Sec. 3.3 (SE at the tail), Table 6",
         "SE only near the head is faster than SE in every block",
         "the 14x14 stage (5 DW+PW blocks, 256 ch, H-Swish): SE in the last 2 vs in all 5",
         (256, 14, 14), ("SE in last 2", lambda: _lcnet_stage4("hard_swish", se_last=2)),
         ("SE in all", lambda: _lcnet_stage4("hard_swish", se_last=5))),
    Rule("lcnet_dw5x5", f"{LC} Sec. 3.4 (larger kernels), Table 7",
         "5x5 depthwise kernels at the tail cost little latency over 3x3 (<= 1.20x)",
         "the 14x14 stage (5 DW+PW blocks, 256 ch, H-Swish): DW 3x3 vs DW 5x5",
         (256, 14, 14), ("DW 3x3", lambda: _lcnet_stage4("hard_swish", kernel=3)),
         ("DW 5x5", lambda: _lcnet_stage4("hard_swish", kernel=5)), max_ratio=1.20),
    Rule("lcnet_head1280", f"{LC} Sec. 3.5 (1x1 conv after GAP), Table 8",
         "a 1280-wide 1x1 conv after global pooling costs little latency (<= 1.15x)",
         "last block (DW 5x5 + SE + PW, 512 ch, 7x7) + GAP + [1x1 512->1280 + H-Swish] + FC 1000",
         (512, 7, 7), ("GAP -> FC", lambda: LcnetHead(wide=False)), ("GAP -> 1x1 1280 -> FC", lambda: LcnetHead()),
         max_ratio=1.15),
    Rule("mobileone_act", f"{MO} Sec. 3.1, Table 3 (activation latency)",
         "ReLU is faster than GELU in the same network",
         "MobileOne-S0 stage-3 block (DW 3x3 + PW 1x1, 128 ch, 28x28, deployed), ReLU vs GELU",
         (128, 28, 28), ("ReLU", lambda: _mobileone_block("relu", deployed=True)),
         ("GELU", lambda: _mobileone_block("gelu", deployed=True)), equal_macs=True),
    Rule("mobileone_reparam", f"{MO} Sec. 3.2-3.3, Table 4 (branches)",
         "the re-parameterised single-branch block is faster than its multi-branch train form",
         "MobileOne-S0 stage-3 block (DW 3x3 + PW 1x1, 128 ch, 28x28, k=4 branches + scale + identity)",
         (128, 28, 28), ("re-parameterised", lambda: _mobileone_block("relu", deployed=True)),
         ("multi-branch", lambda: _mobileone_block("relu")), same_function=True),
    Rule("ghost_module", "GhostNet (Han et al. 2020, arXiv 1911.11907) Sec. 3.1, Table 1",
         "a ghost module makes 2x the feature maps of a plain 1x1 conv at about its latency (<= 1.15x) at equal MACs",
         "at 56x56, 128 ch in: ghost module -> 256 (1x1 128->128 + DW 3x3) vs plain 1x1 128->137",
         (128, 56, 56), ("plain 1x1 (137 ch)", _plain_equal_macs), ("ghost (256 ch)", lambda: GhostModule(128, 256)),
         max_ratio=1.15, equal_macs=True, same_output=False),
    Rule("tresnet_s2d", "TResNet (Ridnik et al. 2021, arXiv 2003.13630) Sec. 3.1 (SpaceToDepth stem)",
         "a SpaceToDepth stem is faster than ResNet's 7x7 stride-2 conv + max-pool stem",
         "224x224x3 -> 64x56x56: s2d 4x4 + 3x3 conv 48->64 vs 7x7/2 conv 3->64 + 3x3/2 max-pool",
         (3, 224, 224), ("SpaceToDepth stem", S2DStem), ("conv 7x7 + max-pool", _resnet_stem)),
)
BY_NAME = {r.name: r for r in RULES}
