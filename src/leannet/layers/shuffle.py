"""ShuffleNetV2 units and channel shuffle, and a deployed form of their stages without shuffles.

Two forms of the ShuffleNetV2 unit (Ma et al., arXiv:1807.11164, Fig. 3c/d) are in use:

- torchvision's `InvertedResidual`: a stride-1 unit takes the first half of the channels
  through and transforms the second; a stride-2 unit makes half the output from each branch;
  every unit ends in a 2-group channel shuffle.
- megvii's `ShuffleV2Block` (ShuffleNet-Series, and ThunderNet's snet-training, which builds
  SNet from it), here `ShuffleV2Block`: a stride-1 unit *starts* by splitting even channels
  (passed through) from odd ones (transformed) and ends in a plain concat; a stride-2 unit's
  projection branch keeps its input width and the main branch makes the rest (out - in).

A stage's units pass channels around with pure data movement, which on layout-changing
runtimes costs more than the convs around it: ONNX Runtime's INT8 path runs its convs in
NHWC and cannot carry that layout through the shuffle's 5-D reshape, so it wraps every
shuffle in transposes back to NCHW and forth (47 Transposes in shufflenetv2_x1_0, 1.1 ms of
its 2.7 ms at batch 1 on this project's CPU).

`UnshuffledStage` computes the same function with no shuffle, for either unit. Each tensor a
unit produces (a branch output) is a physical piece; which of its channels a later unit
passes through or transforms is known when the stage is built. Ordering every piece's
channels by the unit that will consume them, last consumer first (the producing 1x1 conv's
output rows are permuted to match), makes each unit's pass-through part of each piece a
prefix, so a unit is a channel split of each piece: the prefixes stay as they are, the
suffixes are concatenated and go to the branch's first 1x1 conv, whose input columns are
permuted to match. Only slices and concats remain (which every runtime keeps in its own
layout) and each unit copies about half as much. For torchvision's unit this order is already
the natural one (no rows move). At the end of the stage one `index_select` puts the
pass-through half back in order and the last unit's own concat (and shuffle, if it has one)
runs as in the original, so the stage is a drop-in replacement (features, necks and heads see
the same tensor).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.shufflenetv2 import InvertedResidual

from leannet.layers.conv_bn_act import ConvBnAct
from leannet.layers.fusion import _set_module


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(N, g*k, H, W): channel g_i*k + k_i -> k_i*g + g_i (ShuffleNet's shuffle)."""
    return x.unflatten(1, (groups, -1)).transpose(1, 2).flatten(1, 2)


def split_even_odd(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """megvii's `channel_shuffle` of a stride-1 unit: (even channels, odd channels)."""
    pairs = x.unflatten(1, (-1, 2))
    return pairs[:, :, 0], pairs[:, :, 1]


class ShuffleV2Block(nn.Module):
    """ShuffleNetV2's unit as megvii's code builds it (ShuffleNet-Series `blocks.py`, copied
    into ThunderNet's `snet-training/blocks.py`).

    stride 2: cat(proj(x), main(x)), where proj = kxk dw s2 -> 1x1 keeps the input width and
    main = 1x1 -> kxk dw s2 -> 1x1 makes `out_chs - in_chs` channels (SNet146's first unit is
    24 + 108, not 66 + 66). stride 1: the even channels pass, the odd ones go through main
    (1x1 -> kxk dw -> 1x1), then cat(passed, main). No shuffle after the concat: the next
    unit's even/odd split is the shuffle. main's middle width is out_chs // 2 in both cases.
    Depthwise convs have BN and no activation. `branch1` (proj) and `branch2` (main) are
    named as in torchvision's unit, so deploy code treats both units alike.
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int, kernel: int = 3):
        super().__init__()
        if stride == 1 and (in_chs != out_chs or out_chs % 2):
            raise ValueError(f"ShuffleV2Block({in_chs}, {out_chs}, stride=1): a stride-1 unit keeps "
                             "its width, which must be even")
        if stride == 2 and out_chs <= in_chs:
            raise ValueError(f"ShuffleV2Block({in_chs}, {out_chs}, stride=2): the main branch makes "
                             "out - in channels, so out must exceed in")
        mid = out_chs // 2
        self.stride = stride
        if stride == 2:
            self.branch1 = nn.Sequential(
                ConvBnAct(in_chs, in_chs, kernel, stride, groups=in_chs, act=None),
                ConvBnAct(in_chs, in_chs, 1),
            )
            main_in, main_out = in_chs, out_chs - in_chs
        else:
            self.branch1 = nn.Identity()  # the even channels, untouched
            main_in, main_out = out_chs // 2, out_chs - out_chs // 2
        self.branch2 = nn.Sequential(
            ConvBnAct(main_in, mid, 1),
            ConvBnAct(mid, mid, kernel, stride, groups=mid, act=None),
            ConvBnAct(mid, main_out, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            return torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        passed, moved = split_even_odd(x)
        return torch.cat((passed, self.branch2(moved)), dim=1)


UNIT_TYPES = (ShuffleV2Block, InvertedResidual)


def _routing(unit: nn.Module, width: int) -> tuple[list[int], list[int]]:
    """A stride-1 unit's (passed-through input channels, branch input channels), in order."""
    if isinstance(unit, ShuffleV2Block):
        return list(range(0, width, 2)), list(range(1, width, 2))
    half = width // 2
    return list(range(half)), list(range(half, width))


def _shuffles(unit: nn.Module) -> bool:
    """Whether the unit ends in a channel shuffle after its concat (torchvision's does)."""
    return isinstance(unit, InvertedResidual)


def _is_stage(seq: nn.Module) -> bool:
    units = list(seq.children()) if isinstance(seq, nn.Sequential) else []
    return (len(units) > 0 and all(isinstance(u, UNIT_TYPES) for u in units)
            and len({type(u) for u in units}) == 1
            and units[0].stride == 2 and all(u.stride == 1 for u in units[1:]))


def _out_channels(branch: nn.Module) -> int:
    return [m for m in branch.modules() if isinstance(m, nn.Conv2d)][-1].out_channels


class UnshuffledStage(nn.Module):
    """The function of `nn.Sequential(*units)` (a stride-2 ShuffleNetV2 unit, then stride-1
    ones, all torchvision's or all megvii's) without channel shuffles; see the module
    docstring. Takes copies of the units' weights (permuted rows and columns of their 1x1
    convs); the units are not modified."""

    def __init__(self, units: Sequence[nn.Module]):
        super().__init__()
        units = copy.deepcopy(list(units))
        first, rest = units[0], units[1:]
        self.branch1, self.head = first.branch1, first.branch2
        producers = [first.branch1, first.branch2, *(u.branch2 for u in rest)]
        # Channels are named (piece, row): piece k is producers[k]'s output as built. `layout`
        # lists the channels of the tensor the original stage passes between units.
        pre = [(k, r) for k in (0, 1) for r in range(_out_channels(producers[k]))]
        layout, shuffle = _shuffle_names(pre) if _shuffles(first) else pre, _shuffles(first)
        never = len(units)  # "consumed" by no unit: reaches the stage output
        consumer: dict[tuple[int, int], int] = {}
        wants: list[list[tuple[int, int]]] = []  # per stride-1 unit: its branch's input, in order
        n_passed = len(pre)
        for u, unit in enumerate(rest, start=1):
            passed, taken = _routing(unit, len(layout))
            wants.append([layout[i] for i in taken])
            consumer.update({layout[i]: u for i in taken})
            pre = [layout[i] for i in passed] + [(u + 1, r) for r in range(_out_channels(unit.branch2))]
            n_passed, shuffle = len(passed), _shuffles(unit)
            layout = _shuffle_names(pre) if shuffle else pre
        self.shuffle_out = shuffle
        # Physical order of each piece: latest consumer first (stable, so torchvision's
        # pieces keep their order), which makes every later split a prefix/suffix split.
        order = []
        for k, producer in enumerate(producers):
            rows = sorted(range(_out_channels(producer)), key=lambda r, k=k: -consumer.get((k, r), never))
            order.append(rows)
            if rows != sorted(rows):
                _permute_output(producer, torch.tensor(rows))
        # Per stride-1 unit, per live piece: (channels kept as the pass-through prefix, piece width).
        self.keep: list[list[tuple[int, int]]] = []
        branches = []
        live = [(0, len(order[0])), (1, len(order[1]))]  # (piece, live prefix length)
        for u, (unit, want) in enumerate(zip(rest, wants, strict=True), start=1):
            keep, moved, nxt = [], [], []
            for k, n in live:
                kept = sum(consumer.get((k, r), never) > u for r in order[k][:n])
                keep.append((kept, n))
                moved += [(k, r) for r in order[k][kept:n]]
                if kept:
                    nxt.append((k, kept))
            slot = {name: i for i, name in enumerate(want)}
            branches.append(_permute_input(unit.branch2, torch.tensor([slot[m] for m in moved])))
            self.keep.append(keep)
            live = [*nxt, (u + 1, len(order[u + 1]))]
        self.branches = nn.ModuleList(branches)
        # The one gather at the end: physical position of each passed-through channel of the
        # last unit, in the order the original's concat has them.
        physical = [(k, r) for k, n in live[:-1] for r in order[k][:n]]
        where = {name: i for i, name in enumerate(physical)}
        restore = [where[name] for name in pre[:n_passed]] if rest else []
        self.register_buffer("restore", torch.tensor(restore, dtype=torch.long), persistent=False)
        # SNet's (megvii's) units leave the pass-through channels in order: no gather then, so
        # the graph is only slices and concats (ncnn crashed on the identity Gather's mapping).
        self.reorder = restore != sorted(restore)
        # Set by exporters for engines without a channel gather (ncnn): the reorder is then
        # written as nested 2-group shuffles when it has that form (torchvision's unit).
        self.gather_as_shuffles = False
        self.interleaves = interleave_plan(restore) if self.reorder else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pieces = [self.branch1(x), self.head(x)]
        if not self.keep:
            out = torch.cat(pieces, dim=1)
            return channel_shuffle(out, 2) if self.shuffle_out else out
        for branch, keep in zip(self.branches, self.keep, strict=True):
            kept, moved = [], []
            for p, (k, n) in zip(pieces, keep, strict=True):
                if k == n:
                    kept.append(p)
                elif k == 0:
                    moved.append(p)
                else:
                    a, b = p.split([k, n - k], dim=1)
                    kept.append(a)
                    moved.append(b)
            pieces = [*kept, branch(moved[0] if len(moved) == 1 else torch.cat(moved, dim=1))]
        # The last unit's concat (and shuffle) run as in the original: gathering the whole
        # output instead would feed a Gather straight into the next conv, which OpenVINO
        # 2026.4 folds into that conv's weights with the inverse permutation (wrong logits).
        passthrough = torch.cat(pieces[:-1], dim=1)
        if self.reorder and self.gather_as_shuffles and self.interleaves is not None:
            passthrough = _interleave(passthrough, self.interleaves)
        elif self.reorder:
            passthrough = passthrough.index_select(1, self.restore)
        out = torch.cat((passthrough, pieces[-1]), dim=1)
        return channel_shuffle(out, 2) if self.shuffle_out else out


def interleave_plan(order: list[int]) -> list[int] | None:
    """`order` as nested interleaves, or None when it has another form.

    torchvision's unit passes the first half of a shuffled concat, so the pass-through
    channels of a stage's last unit are `interleave(interleave(..., piece), piece)`: the odd
    positions of `order` are the last piece (a contiguous tail), the even ones the same form
    one level down. Returns the widths of the tails, outermost first."""
    tails = []
    while order != list(range(len(order))):
        even, odd = order[0::2], order[1::2]
        n = len(order)
        if len(even) - len(odd) not in (0, 1) or odd != list(range(n - len(odd), n)):
            return None
        tails.append(len(odd))
        order = even
    return tails


def _interleave(x: torch.Tensor, tails: list[int]) -> torch.Tensor:
    """Apply `interleave_plan`'s reorder with slices, concats and 2-group shuffles (ops every
    engine maps natively, ncnn's Slice/Concat/ShuffleChannel included)."""
    if not tails:
        return x
    n = tails[0]
    head, tail = x.split([x.shape[1] - n, n], dim=1)
    head = _interleave(head, tails[1:])
    if head.shape[1] == n:
        return channel_shuffle(torch.cat((head, tail), dim=1), 2)
    first, last = head.split([n, head.shape[1] - n], dim=1)
    return torch.cat((channel_shuffle(torch.cat((first, tail), dim=1), 2), last), dim=1)


def _shuffle_names(names: list) -> list:
    """`channel_shuffle(·, 2)` applied to a list of channel names."""
    half = len(names) // 2
    return [names[g * half + k] for k in range(half) for g in range(2)]


def _permute_input(branch: nn.Module, order: torch.Tensor) -> nn.Module:
    """`branch` fed with its input channels in `order` (physical channel m holds logical
    channel order[m]): its first conv, a dense 1x1 in ShuffleNetV2, takes permuted columns."""
    conv = next(m for m in branch.modules() if isinstance(m, nn.Conv2d))
    if conv.groups != 1:
        raise ValueError("a stride-1 ShuffleNetV2 branch starts with a dense conv")
    with torch.no_grad():
        conv.weight.copy_(conv.weight[:, order])
    return branch


def _permute_output(branch: nn.Module, rows: torch.Tensor) -> None:
    """`branch` producing its output channels in `rows` order: its last conv (a dense 1x1)
    and any BatchNorm after it take permuted rows; activations are per element."""
    mods = list(branch.modules())
    last = max(i for i, m in enumerate(mods) if isinstance(m, nn.Conv2d))
    if mods[last].groups != 1:
        raise ValueError("a ShuffleNetV2 branch ends with a dense conv")
    with torch.no_grad():
        for m in mods[last:]:
            for t in (getattr(m, a, None) for a in ("weight", "bias", "running_mean", "running_var")):
                if isinstance(t, torch.Tensor) and t.dim() >= 1:
                    t.copy_(t[rows])


def unshuffle_stages(model: nn.Module) -> int:
    """Replace, in place, every ShuffleNetV2 stage of `model` (an nn.Sequential of units) by
    its `UnshuffledStage`. Returns how many were replaced."""
    found = [(name, m) for name, m in model.named_modules() if _is_stage(m)]
    for name, stage in found:
        _set_module(model, name, UnshuffledStage(list(stage.children())))
    return len(found)
