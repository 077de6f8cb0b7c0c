from torch import nn

from leannet.layers.activations import Act
from leannet.layers.conv_bn_act import ConvBnAct
from leannet.layers.squeeze_excite import SqueezeExcite


class DepthwiseSeparable(nn.Module):
    """Depthwise conv -> [SE] -> pointwise conv, each conv with BN + act; no shortcut.

    The MobileNetV1 block, and PP-LCNet's with H-Swish, 5x5 kernels and SE where it puts them.
    SE follows PaddleClas: reduction 4, ReLU, hard-sigmoid gate (as MobileNetV3).
    """

    def __init__(self, in_chs: int, out_chs: int, kernel: int = 3, stride: int = 1,
                 se: bool = False, act: Act = "relu"):
        super().__init__()
        self.dw = ConvBnAct(in_chs, in_chs, kernel, stride, groups=in_chs, act=act)
        self.se = SqueezeExcite(in_chs, in_chs // 4, act="relu", gate="hard_sigmoid") if se else nn.Identity()
        self.pw = ConvBnAct(in_chs, out_chs, 1, act=act)

    def forward(self, x):
        return self.pw(self.se(self.dw(x)))
