"""Where each registered model's pretrained weights come from: one row per model.

A row names the default checkpoint (a Hugging Face repo, or a direct URL), its license, the
ImageNet-1k top-1 its publisher reports for *that* checkpoint (which may differ from the
paper's number in the registry), and the converter layout (`leannet.weights.layouts`) the file
needs. `create_model(name, pretrained=True)` reads this table through `weight_source`;
`leannet weights` prints it. A model with no public checkpoint says so, and why.

Facts and where they come from:
- timm tags, licenses and Hugging Face repos: timm 1.0's pretrained configs
  (`timm.models.get_pretrained_cfg(tag)`); top-1 at 224 px: timm's
  `results/results-imagenet.csv`.
- torchvision: the `*_Weights.IMAGENET1K_V1` entries (URL, acc@1); the hex after the last
  dash of a torchvision file name is the start of its sha256, which torch.hub checks. A test
  compares these rows with the installed torchvision.
- Hugging Face revisions are not pinned here: no commit of those repos could be verified from
  this project's machines. `revision=None` downloads `main`; the commit actually fetched is
  recorded in the converted file's metadata, and the converted file is rebuilt when `main`
  moves.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlparse

from leannet.registry import resolve

_TIMM_RESULTS = "timm results-imagenet.csv (224 px)"
_TV_DOCS = "torchvision model docs (IMAGENET1K_V1 acc@1)"


@dataclass(frozen=True)
class WeightSource:
    """One downloadable checkpoint (or the statement that there is none)."""

    kind: str  # "hf" (a Hugging Face repo), "url" (a direct download), "none"
    location: str = ""  # "timm/lcnet_100.ra2_in1k", or the URL
    revision: str | None = None  # HF commit to pin; None = "main" when downloaded
    filename: str = "model.safetensors"  # the file inside an HF repo
    sha256: str = ""  # full hash or leading hex of the downloaded file ("" = none recorded)
    license: str = ""
    top1: float | None = None  # ImageNet-1k top-1 (%) of this checkpoint, as published
    top1_source: str = ""
    layout: str | None = None  # the converter layout it needs (None: detected from its keys)
    convertible: bool = True  # False: no converter reads this checkpoint yet
    trust_pickle: bool = False  # a pickle: converted only on the user's explicit word
    note: str = ""  # why there is no checkpoint, or what to know about this one

    @property
    def label(self) -> str:
        """How a user would write this source as `pretrained=...`."""
        if self.kind == "hf":
            return f"hf-hub:{self.location}" + (f"@{self.revision}" if self.revision else "")
        return self.location or "none"

    @property
    def automatic(self) -> bool:
        """Whether `pretrained=True` can fetch and convert it without the user's help."""
        return self.kind in ("hf", "url") and self.convertible and not self.trust_pickle

    @property
    def cache_stem(self) -> str:
        """The converted file's name in `$LEANNET_HOME/weights/<model>/`, keyed by source and
        revision: `hf--timm--lcnet_100.ra2_in1k@main`, `url--mobilenet_v2-b0353104--1a2b3c4d`."""
        if self.kind == "hf":
            name = f"hf--{self.location.replace('/', '--')}@{self.revision or 'main'}"
            if self.filename != "model.safetensors":
                name += "--" + PurePosixPath(self.filename).stem
            return _safe(name)
        if self.kind == "url":
            # The file name alone can repeat across hosts ("model.pth"): add the URL's hash.
            stem = PurePosixPath(urlparse(self.location).path).name.rsplit(".", 1)[0] or "download"
            return _safe(f"url--{stem}--{hashlib.sha256(self.location.encode()).hexdigest()[:8]}")
        raise ValueError(f"a {self.kind!r} source has no cache file")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@-]", "_", name)


def timm(tag: str, license: str, top1: float, layout: str, note: str = "") -> WeightSource:
    return WeightSource("hf", f"timm/{tag}", license=license, top1=top1, top1_source=_TIMM_RESULTS,
                        layout=layout, note=note)


def torchvision(url: str, top1: float) -> WeightSource:
    # torchvision's modules keep their names in leannet's wrappers: a key-for-key load.
    sha = PurePosixPath(urlparse(url).path).stem.rpartition("-")[2]
    return WeightSource("url", url, sha256=sha, license="BSD-3-Clause (torchvision)", top1=top1,
                        top1_source=_TV_DOCS, layout="leannet")


def paddleclas(scale: str, top1: float) -> WeightSource:
    return WeightSource(
        "url", f"https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/legendary_models/PPLCNet_x{scale}_pretrained.pdparams",
        license="Apache-2.0 (PaddleClas)", top1=top1, top1_source="PaddleClas PP-LCNet model table",
        layout="PaddleClas PPLCNet (.pdparams)", trust_pickle=True,
        note="timm has no checkpoint for this width; PaddleClas's is a Python pickle, converted "
             "only with `leannet convert --trust-pickle`")


def no_checkpoint(why: str) -> WeightSource:
    return WeightSource("none", convertible=False, note=why)


_GGHOST_RELEASE = "https://github.com/huawei-noah/Efficient-AI-Backbones/releases/download/g_ghost_regnet/"


def _g_ghost(file: str, top1: float) -> WeightSource:
    return WeightSource("url", _GGHOST_RELEASE + file, license="see huawei-noah/Efficient-AI-Backbones",
                        top1=top1, top1_source="g_ghost_pytorch/readme.md", convertible=False,
                        layout="huawei-noah G-Ghost RegNet",
                        note="official release, not fetched or verified from here: download it and run "
                             "`leannet convert FILE --model NAME` (the layout converts, tested against "
                             "the official definition's keys and outputs)")


_NO_GHOST = "huawei-noah released GhostNet 1.0x only (timm: ghostnet_100); no checkpoint for this width"

SOURCES: dict[str, WeightSource] = {
    # --- PP-LCNet: timm's re-trained 0.5/0.75/1.0; PaddleClas for the other widths ---------
    "pplcnet_x0_25": paddleclas("0_25", 51.86),
    "pplcnet_x0_35": paddleclas("0_35", 58.09),
    "pplcnet_x0_5": timm("lcnet_050.ra2_in1k", "apache-2.0", 63.138, "timm lcnet_*"),
    "pplcnet_x0_75": timm("lcnet_075.ra2_in1k", "apache-2.0", 68.786, "timm lcnet_*"),
    "pplcnet_x1_0": timm("lcnet_100.ra2_in1k", "apache-2.0", 72.130, "timm lcnet_*"),
    "pplcnet_x1_5": paddleclas("1_5", 73.71),
    "pplcnet_x2_0": paddleclas("2_0", 75.18),
    "pplcnet_x2_5": paddleclas("2_5", 76.60),
    # --- MobileNetV1: timm's (ReLU6, recorded in the converted file) -----------------------
    "mobilenetv1_x1_0": timm("mobilenetv1_100.ra4_e3600_r224_in1k", "apache-2.0", 75.388,
                             "timm mobilenetv1_100", note="trained with ReLU6: the model is built with act='relu6'"),
    # --- GhostNet ---------------------------------------------------------------------------
    "ghostnet_x0_5": no_checkpoint(_NO_GHOST),
    "ghostnet_x1_0": timm("ghostnet_100.in1k", "apache-2.0", 73.958, "timm ghostnet_* / huawei-noah GhostNet",
                          note="huawei-noah's state_dict_73.98.pth, re-hosted by timm"),
    "ghostnet_x1_3": no_checkpoint(_NO_GHOST),
    # --- G-GhostNet: the authors' GitHub release --------------------------------------------
    "g_ghost_regnetx_032": _g_ghost("g_ghost_regnet_3.2g_77.8.pth", 77.8),
    "g_ghost_regnetx_040": _g_ghost("g_ghost_regnet_4.0g_78.6.pth", 78.6),
    "g_ghost_regnetx_080": _g_ghost("g_ghost_regnet_8.0g_79.0.pth", 79.0),
    "g_ghost_regnetx_160": _g_ghost("g_ghost_regnet_16.0g_79.9.pth", 79.9),
    # --- MobileOne (apple's weights, re-hosted by timm; Apple's own license) ----------------
    "mobileone_s0": timm("mobileone_s0.apple_in1k", "mobileone-license", 71.398, "timm mobileone_* / leannet"),
    "mobileone_s1": timm("mobileone_s1.apple_in1k", "mobileone-license", 75.760, "timm mobileone_* / leannet"),
    "mobileone_s2": timm("mobileone_s2.apple_in1k", "mobileone-license", 77.504, "timm mobileone_* / leannet"),
    "mobileone_s3": timm("mobileone_s3.apple_in1k", "mobileone-license", 78.002, "timm mobileone_* / leannet"),
    "mobileone_s4": timm("mobileone_s4.apple_in1k", "mobileone-license", 79.446, "timm mobileone_* / leannet"),
    # --- RepVGG -----------------------------------------------------------------------------
    "repvgg_a0": timm("repvgg_a0.rvgg_in1k", "mit", 72.426, "timm repvgg_*"),
    # --- TResNet (Alibaba-MIIL's weights, re-hosted by timm) --------------------------------
    "tresnet_m": timm("tresnet_m.miil_in1k", "apache-2.0", 80.816, "timm tresnet_*"),
    "tresnet_l": timm("tresnet_l.miil_in1k", "apache-2.0", 81.498, "timm tresnet_*"),
    "tresnet_xl": timm("tresnet_xl.miil_in1k", "apache-2.0", 82.060, "timm tresnet_*"),
    # --- SNet -------------------------------------------------------------------------------
    "snet49": no_checkpoint("ThunderNet published no SNet49 checkpoint"),
    "snet146": no_checkpoint("the only public SNet146 weights are ThunderNet's weights/snet146-3000000.pth.tar "
                             "(qinzheng93/ThunderNet, top-1 67.8), a file in a Git repository, not a release: "
                             "download it and run `leannet convert FILE --model snet146` (layout "
                             "'ThunderNet snet-training', tested against the official definition)"),
    "snet535": no_checkpoint("ThunderNet published no SNet535 checkpoint"),
    # --- torchvision baselines (IMAGENET1K_V1, the weights the registry's facts describe) ---
    "mobilenetv2_x1_0": torchvision("https://download.pytorch.org/models/mobilenet_v2-b0353104.pth", 71.878),
    "mobilenetv3_large_x1_0": torchvision("https://download.pytorch.org/models/mobilenet_v3_large-8738ca79.pth", 74.042),
    "mobilenetv3_small_x1_0": torchvision("https://download.pytorch.org/models/mobilenet_v3_small-047dcff4.pth", 67.668),
    "regnetx_032": torchvision("https://download.pytorch.org/models/regnet_x_3_2gf-f342aeae.pth", 78.364),
    "resnet50": torchvision("https://download.pytorch.org/models/resnet50-0676ba61.pth", 76.130),
    "shufflenetv2_x0_5": torchvision("https://download.pytorch.org/models/shufflenetv2_x0.5-f707e7126e.pth", 60.552),
    "shufflenetv2_x1_0": torchvision("https://download.pytorch.org/models/shufflenetv2_x1-5666bf0f80.pth", 69.362),
    "shufflenetv2_x1_5": torchvision("https://download.pytorch.org/models/shufflenetv2_x1_5-3c479a10.pth", 72.996),
    "shufflenetv2_x2_0": torchvision("https://download.pytorch.org/models/shufflenetv2_x2_0-8be3c8ee.pth", 76.230),
}


def weight_source(name: str) -> WeightSource:
    """The default checkpoint of model `name` (a registered name or alias)."""
    canonical = resolve(name)
    # A model registered without a row is a gap in this table, not a model without weights.
    return SOURCES.get(canonical) or no_checkpoint(f"no weight source recorded for {canonical!r} yet")
