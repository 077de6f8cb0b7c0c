import torch
from torch import nn

from leannet.layers.activations import Act, get_act


class ClassifierHead(nn.Module):
    """Global average pool -> [1x1 conv to `hidden` + act] -> dropout -> linear.

    The optional 1x1 conv after pooling is the PP-LCNet/GhostNet/MobileNetV3 head: it widens
    the last features cheaply because it runs on a 1x1 map. `num_classes=0` drops the linear
    layer so the head returns pooled (pre-logit) features; `bias=False` gives a linear layer
    without bias.
    """

    def __init__(
        self,
        in_chs: int,
        num_classes: int,
        hidden: int = 0,
        act: Act = "hard_swish",
        hidden_bias: bool = True,
        drop_rate: float = 0.0,
        bias: bool = True,
    ):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv2d(in_chs, hidden, 1, bias=hidden_bias) if hidden else nn.Identity()
        self.act = get_act(act, inplace=True) if hidden else nn.Identity()
        self.flatten = nn.Flatten(1)
        self.drop = nn.Dropout(drop_rate)
        self.num_features = hidden or in_chs
        self.bias = bias  # the classifier's; megvii's ShuffleNetV2 code (SNet) has none
        self.fc = nn.Linear(self.num_features, num_classes, bias=bias) if num_classes else nn.Identity()

    def reset(self, num_classes: int) -> None:
        self.fc = nn.Linear(self.num_features, num_classes, bias=self.bias) if num_classes else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.flatten(self.act(self.conv(self.pool(x)))))
        return x if pre_logits else self.fc(x)
