"""Importing this package registers every model family."""

from leannet.models import g_ghostnet, ghostnet, mobilenetv1, pplcnet, torchvision_adapters  # noqa: F401
