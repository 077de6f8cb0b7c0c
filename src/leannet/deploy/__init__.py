"""From a trained model to a verified artefact: re-parameterise, fold BN, export, quantise."""

from leannet.deploy.reparam import reparameterize

__all__ = ["reparameterize"]
