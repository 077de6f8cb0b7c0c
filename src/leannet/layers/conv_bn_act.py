from torch import nn

from leannet.layers.activations import get_act


class ConvBnAct(nn.Sequential):
    """Conv2d -> BatchNorm2d -> activation, 'same' padding for odd kernels.

    A Sequential with fixed child names (conv, bn, act) so that BN folding and weight
    converters find the pieces by name.
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        dilation: int = 1,
        act: str | None = "relu",
        bias: bool = False,
        **act_kwargs,
    ):
        padding = dilation * (kernel_size - 1) // 2
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, dilation=dilation,
                              groups=groups, bias=bias)
        self.bn = nn.BatchNorm2d(out_chs)
        self.act = get_act(act, inplace=True, **act_kwargs)
