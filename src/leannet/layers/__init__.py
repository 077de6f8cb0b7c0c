"""Blocks shared by two or more model families."""

from leannet.layers.activations import ACTIVATIONS, Act, ActLayer, get_act, get_act_layer
from leannet.layers.conv_bn_act import ConvBnAct
from leannet.layers.depthwise_separable import DepthwiseSeparable
from leannet.layers.head import ClassifierHead
from leannet.layers.helpers import init_weights, make_divisible
from leannet.layers.squeeze_excite import SqueezeExcite

__all__ = [
    "ACTIVATIONS",
    "Act",
    "ActLayer",
    "ClassifierHead",
    "ConvBnAct",
    "DepthwiseSeparable",
    "SqueezeExcite",
    "get_act",
    "get_act_layer",
    "init_weights",
    "make_divisible",
]
