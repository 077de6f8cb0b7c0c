"""Importing this package registers every model family."""

from leannet.models import (  # noqa: F401
    g_ghostnet,
    ghostnet,
    mobilenetv1,
    mobileone,
    pplcnet,
    repvgg,
    snet,
    torchvision_adapters,
    tresnet,
)
