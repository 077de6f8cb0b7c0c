"""From a trained model to a verified artefact: re-parameterise, fold BN, export, quantise,
verify, and run it (`export`, `infer`). Runtimes (onnx, onnxruntime, openvino, nncf) are
imported only by the functions that need them."""

from leannet.deploy.export import ExportResult, export
from leannet.deploy.infer import Predictor, infer
from leannet.deploy.reparam import reparameterize

__all__ = ["ExportResult", "Predictor", "export", "infer", "reparameterize"]
