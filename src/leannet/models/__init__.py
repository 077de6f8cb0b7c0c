"""Importing this package registers every model family."""

from leannet.models import mobilenetv1, pplcnet, snet, torchvision_adapters, tresnet  # noqa: F401
