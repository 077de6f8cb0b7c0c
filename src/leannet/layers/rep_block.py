"""The structurally re-parameterisable conv block of RepVGG and MobileOne.

At train time the block sums parallel linear branches on the same input, then applies an
optional SE gate and the activation:

    k x (kxk conv -> BN)      over-parameterised branches (RepVGG: 1; MobileOne-S0: 4)
    1x1 conv -> BN            the "scale" branch, only when the kernel is larger than 1x1
    BN                        the identity branch, only when the block keeps shape

Every branch is linear in eval mode, so their sum is one kxk conv with a bias;
`reparameterize()` computes it and replaces the branches in place. `inference_mode=True`
builds that single-conv form directly (to load a deployed checkpoint).

Child names follow timm's MobileOneBlock/RepVggBlock (conv_kxk.i, conv_scale, identity,
reparam_conv) so checkpoints map by renaming: the official repos' rbr_conv.i / rbr_dense
-> conv_kxk.i, rbr_scale / rbr_1x1 -> conv_scale, rbr_skip / rbr_identity -> identity,
rbr_reparam -> reparam_conv, se.reduce/expand -> se.conv_reduce/conv_expand.
"""

from __future__ import annotations

import torch
from torch import nn

from leannet.layers.activations import Act, get_act
from leannet.layers.conv_bn_act import ConvBnAct
from leannet.layers.fusion import fuse_bn, identity_kernel, pad_kernel


class RepConvBlock(nn.Module):
    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        num_branches: int = 1,
        se: nn.Module | None = None,
        act: Act = "relu",
        inference_mode: bool = False,
    ):
        super().__init__()
        self.in_chs, self.out_chs = in_chs, out_chs
        self.kernel_size, self.stride, self.groups = kernel_size, stride, groups
        self.num_branches = num_branches
        self.inference_mode = inference_mode
        self.se = se if se is not None else nn.Identity()
        self.act = get_act(act, inplace=True)
        if inference_mode:
            self.reparam_conv = self._single_conv()
            self.conv_kxk = self.conv_scale = self.identity = None
            return
        self.reparam_conv = None
        self.conv_kxk = nn.ModuleList(
            ConvBnAct(in_chs, out_chs, kernel_size, stride, groups, act=None) for _ in range(num_branches)
        )
        self.conv_scale = ConvBnAct(in_chs, out_chs, 1, stride, groups, act=None) if kernel_size > 1 else None
        self.identity = nn.BatchNorm2d(in_chs) if in_chs == out_chs and stride == 1 else None

    def _single_conv(self, **factory) -> nn.Conv2d:
        return nn.Conv2d(self.in_chs, self.out_chs, self.kernel_size, self.stride, self.kernel_size // 2,
                         groups=self.groups, bias=True, **factory)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reparam_conv is not None:
            return self.act(self.se(self.reparam_conv(x)))
        out = self.conv_kxk[0](x)
        for branch in self.conv_kxk[1:]:
            out = out + branch(x)
        if self.conv_scale is not None:
            out = out + self.conv_scale(x)
        if self.identity is not None:
            out = out + self.identity(x)
        return self.act(self.se(out))

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Replace the branches by one conv with bias, in place (uses BN running statistics)."""
        if self.reparam_conv is not None:
            return
        kernel, bias = self._fused_kernel_bias()  # float64, rounded once by copy_
        like = next(self.parameters())
        conv = self._single_conv(device=like.device, dtype=like.dtype)
        conv.weight.copy_(kernel)
        conv.bias.copy_(bias)
        self.reparam_conv = conv
        self.conv_kxk = self.conv_scale = self.identity = None
        self.inference_mode = True

    def _fused_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        branches = [*self.conv_kxk, self.conv_scale, self.identity]
        fused = [self._fuse_branch(b) for b in branches if b is not None]
        return sum(k for k, _ in fused), sum(b for _, b in fused)

    def _fuse_branch(self, branch: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """(kernel, bias) of one branch as a kxk conv: BN folded, 1x1 padded, identity as a kernel."""
        if isinstance(branch, nn.BatchNorm2d):
            eye = identity_kernel(self.in_chs, self.groups, self.kernel_size, like=branch.running_mean)
            return fuse_bn(eye, branch)
        kernel, bias = fuse_bn(branch.conv.weight, branch.bn)
        return pad_kernel(kernel, self.kernel_size), bias
