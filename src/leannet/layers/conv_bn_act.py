from torch import nn

from leannet.layers.activations import Act, get_act


class ConvBnAct(nn.Sequential):
    """Conv2d -> BatchNorm2d -> activation, 'same' padding for odd kernels.

    A Sequential with fixed child names (conv, bn, act) so that BN folding and weight
    converters find the pieces by name. `act` is a name, a module class or a partial carrying
    its options (`partial(nn.LeakyReLU, negative_slope=1e-3)`); see `layers.activations`.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        dilation: int = 1,
        act: Act = "relu",
        bias: bool = False,
    ):
        padding = dilation * (kernel_size - 1) // 2
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, dilation=dilation,
                              groups=groups, bias=bias)
        self.bn = nn.BatchNorm2d(out_chs)
        self.act = get_act(act, inplace=True)
