"""leannet: hardware-aware efficient CNNs, chosen by measured latency."""

__version__ = "0.1.0"

from leannet.deploy.reparam import reparameterize
from leannet.factory import create_model
from leannet.profile.complexity import profile
from leannet.profile.select import select
from leannet.registry import list_models

__all__ = ["__version__", "create_model", "list_models", "profile", "reparameterize", "select"]
