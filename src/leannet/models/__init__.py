"""Importing this package registers every model family."""

from leannet.models import mobilenetv1, mobileone, pplcnet, repvgg, torchvision_adapters  # noqa: F401
