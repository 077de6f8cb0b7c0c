"""ShuffleNetV2's unit and channel shuffle, and a deployed form of its stages without shuffles.

A ShuffleNetV2 stage (one stride-2 unit, then stride-1 units; Ma et al., arXiv:1807.11164,
Fig. 3c/d) ends every unit in `concat -> reshape -> transpose -> reshape -> split`. That is
pure data movement, and on layout-changing runtimes it costs more than the convs around it:
ONNX Runtime's INT8 path runs its convs in NHWC and cannot carry that layout through the
shuffle's 5-D reshape, so it wraps every shuffle in transposes back to NCHW and forth (47
Transposes in shufflenetv2_x1_0, 1.1 ms of its 2.7 ms at batch 1 on this project's CPU).

`UnshuffledStage` computes the same function with no shuffle. After a unit, the logical
channel of the first-half input `x1[i]` is `2i` and of the branch output `b[i]` is `2i + 1`;
the next unit passes through logical channels `< half` and transforms the rest. If every
physical piece (x1's pieces and each branch output) keeps its channels in increasing logical
order, "logical < half" is a prefix of each piece, so the next unit is a channel split of each
piece: the prefixes stay as they are, the suffixes are concatenated and go to the branch's
first 1x1 conv, whose input columns are permuted to match. Only slices and concats remain
(which every runtime keeps in its own layout) and each unit copies about half as much. At the
end of the stage one `index_select` puts the pass-through half back in order and the last
unit's shuffle runs as in the original, so the stage is a drop-in replacement (features, necks
and heads see the same tensor).
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


class ShuffleUnit(nn.Module):
    """ShuffleNetV2's unit: a stride-1 unit splits the channels in half, transforms one half
    (1x1 -> kxk dw -> 1x1) and concatenates; a stride-2 unit runs both halves from the full
    input (kxk dw s2 -> 1x1 | 1x1 -> kxk dw s2 -> 1x1); both end in a 2-group channel shuffle.
    Depthwise convs have BN and no activation. Names follow torchvision's `shufflenetv2.py`
    (branch1 / branch2), so weights map by order."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, kernel: int = 3):
        super().__init__()
        if out_chs % 2 or (stride == 1 and in_chs != out_chs):
            raise ValueError(f"ShuffleUnit({in_chs}, {out_chs}, stride={stride}): a stride-1 unit "
                             "keeps its width and every width must be even")
        half = out_chs // 2
        self.stride = stride
        if stride == 2:
            self.branch1 = nn.Sequential(
                ConvBnAct(in_chs, in_chs, kernel, stride, groups=in_chs, act=None),
                ConvBnAct(in_chs, half, 1),
            )
        else:
            self.branch1 = nn.Identity()  # the untouched half
        self.branch2 = nn.Sequential(
            ConvBnAct(in_chs if stride == 2 else half, half, 1),
            ConvBnAct(half, half, kernel, stride, groups=half, act=None),
            ConvBnAct(half, half, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            a, b = x.chunk(2, dim=1)
            out = torch.cat((self.branch1(a), self.branch2(b)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


UNIT_TYPES = (ShuffleUnit, InvertedResidual)  # leannet's unit and torchvision's, same function


def _is_stage(seq: nn.Module) -> bool:
    units = list(seq.children()) if isinstance(seq, nn.Sequential) else []
    return (len(units) > 0 and all(isinstance(u, UNIT_TYPES) for u in units)
            and units[0].stride == 2 and all(u.stride == 1 for u in units[1:]))


class UnshuffledStage(nn.Module):
    """The function of `nn.Sequential(*units)` (a stride-2 ShuffleNetV2 unit, then stride-1
    ones) without channel shuffles; see the module docstring. Takes the units' weights (the
    stride-1 units' first convs with permuted input channels); the units are not modified."""

    def __init__(self, units: Sequence[nn.Module]):
        super().__init__()
        first, *rest = copy.deepcopy(list(units))
        self.branch1, self.head = first.branch1, first.branch2
        half = next(m for m in first.branch2.modules() if isinstance(m, nn.Conv2d)).out_channels
        # Logical channel indices held by each physical piece, in increasing order.
        pieces = [torch.arange(half) * 2, torch.arange(half) * 2 + 1]
        # Per stride-1 unit, per piece: (channels kept as the pass-through prefix, piece width).
        self.keep: list[list[tuple[int, int]]] = []
        branches = []
        for unit in rest:
            keep = [int((p < half).sum()) for p in pieces]
            moved = torch.cat([p[k:] for p, k in zip(pieces, keep, strict=True)]) - half
            branches.append(_permute_input(unit.branch2, moved))
            self.keep.append([(k, len(p)) for p, k in zip(pieces, keep, strict=True)])
            pieces = [p[:k] * 2 for p, k in zip(pieces, keep, strict=True) if k] + [torch.arange(half) * 2 + 1]
        self.branches = nn.ModuleList(branches)
        # Physical position of each logical channel of the last unit's pass-through half, for
        # the one gather at the end (pieces[-1] is the last branch's output, already in order).
        passthrough = torch.cat(pieces[:-1]) // 2 if rest else torch.arange(half)
        self.register_buffer("restore", passthrough.argsort(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pieces = [self.branch1(x), self.head(x)]
        if not self.keep:
            return channel_shuffle(torch.cat(pieces, dim=1), 2)
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
        # The last unit's output is shuffled as in the original: gathering the whole output
        # instead would feed a Gather straight into the next conv, which OpenVINO 2026.4
        # folds into that conv's weights with the inverse permutation (wrong logits).
        passthrough = torch.cat(pieces[:-1], dim=1).index_select(1, self.restore)
        return channel_shuffle(torch.cat((passthrough, pieces[-1]), dim=1), 2)


def _permute_input(branch: nn.Module, order: torch.Tensor) -> nn.Module:
    """`branch` fed with its input channels in `order` (physical channel m holds logical
    channel order[m]): its first conv, a dense 1x1 in ShuffleNetV2, takes permuted columns."""
    conv = next(m for m in branch.modules() if isinstance(m, nn.Conv2d))
    if conv.groups != 1:
        raise ValueError("a stride-1 ShuffleNetV2 branch starts with a dense conv")
    with torch.no_grad():
        conv.weight.copy_(conv.weight[:, order])
    return branch


def unshuffle_stages(model: nn.Module) -> int:
    """Replace, in place, every ShuffleNetV2 stage of `model` (an nn.Sequential of units) by
    its `UnshuffledStage`. Returns how many were replaced."""
    found = [(name, m) for name, m in model.named_modules() if _is_stage(m)]
    for name, stage in found:
        _set_module(model, name, UnshuffledStage(list(stage.children())))
    return len(found)
