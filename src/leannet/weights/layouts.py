"""The checkpoint layouts leannet converts, one table per source, grouped by family.

Each entry says how a source's keys become ours (vocabulary: `leannet.weights.rules`; applied
by `leannet.weights.convert`). Every entry
has a parity test in tests/weights/test_convert.py: the source's model (timm, torchvision, or
the official repository's key structure) and ours compute the same logits after conversion.
A family's `leannet` layout also covers torchvision's own checkpoints for the wrapped
baselines, whose modules keep torchvision's names.
"""

from __future__ import annotations

from leannet.weights.rules import (
    Blocks,
    Layout,
    abs_plus,
    bn_eps,
    conv_to_linear,
    scale,
    transpose,
)

# PaddleClas PPLCNet: `Dropout(p=0.2, mode="downscale_in_infer")` multiplies by (1 - p) at
# inference (torch's dropout scales in training instead), so (1 - p) is folded into the FC.
PADDLE_LCNET_DROPOUT = 0.2

# timm's depthwise-separable block (conv_dw, bn1, [se], conv_pw, bn2) -> leannet's.
_TIMM_DS = (
    (r"^conv_stem\.", "stem.conv."),
    (r"^bn1\.", "stem.bn."),
    (r"\.conv_dw\.", ".dw.conv."),
    (r"^(blocks\.\d+\.\d+)\.bn1\.", r"\1.dw.bn."),
    (r"\.conv_pw\.", ".pw.conv."),
    (r"^(blocks\.\d+\.\d+)\.bn2\.", r"\1.pw.bn."),
    (r"^conv_head\.", "head.conv."),
    (r"^classifier\.", "head.fc."),
)
_TIMM_BLOCKS = Blocks(source=r"^blocks\.\d+\.\d+\.", target=r"^stages\.\d+\.\d+\.")

# timm's MobileNet blocks, their modules in network order (smallest block type first).
_TIMM_CBA = ("conv", "bn1")
_TIMM_DSCONV = ("conv_dw", "bn1", "se.conv_reduce", "se.conv_expand", "conv_pw", "bn2")
_TIMM_IR = ("conv_pw", "bn1", "conv_dw", "bn2", "se.conv_reduce", "se.conv_expand", "conv_pwl", "bn3")

LAYOUTS: tuple[Layout, ...] = (
    # --- PP-LCNet ---------------------------------------------------------------------------
    Layout(
        "leannet", "pplcnet",
        detect=(r"^stem\.conv\.weight$",),
        model_args=((r"^head\.conv\.bias$", "head_bias", True),),
    ),
    Layout(
        "timm lcnet_*", "pplcnet",
        detect=(r"^conv_stem\.weight$", r"^blocks\.5\.1\.se\.conv_reduce\.weight$"),
        reject=(r"\.conv_pwl\.",),  # depthwise-separable blocks only
        rename=_TIMM_DS,
        blocks=_TIMM_BLOCKS,
        model_args=((r"^conv_head\.bias$", "head_bias", True),),
        note="timm trains lcnet_* with a bias on the 1280-wide head conv: the model takes one.",
    ),
    Layout(
        "PaddleClas PPLCNet (.pdparams)", "pplcnet",
        detect=(r"^conv1\.bn\._variance$", r"^blocks6\.\d+\.se\.conv1\.weight$"),
        rename=(
            (r"\._mean$", ".running_mean"),
            (r"\._variance$", ".running_var"),
            (r"^conv1\.", "stem."),
            (r"\.dw_conv\.", ".dw."),
            (r"\.pw_conv\.", ".pw."),
            (r"\.se\.conv1\.", ".se.conv_reduce."),
            (r"\.se\.conv2\.", ".se.conv_expand."),
            (r"^last_conv\.", "head.conv."),
            (r"^fc\.", "head.fc."),
        ),
        blocks=Blocks(source=r"^blocks\d\.\d+\.", target=r"^stages\.\d+\.\d+\."),
        transforms=(
            (r"^head\.fc\.weight$", transpose),
            (r"^head\.fc\.weight$", scale(1 - PADDLE_LCNET_DROPOUT)),
        ),
        note="Paddle's Linear is (in, out) and its dropout scales at inference: both folded into the FC.",
    ),
    # --- MobileNetV1 ------------------------------------------------------------------------
    Layout(
        "timm mobilenetv1_100", "mobilenetv1",
        detect=(r"^conv_stem\.weight$", r"^blocks\.4\.1\.conv_pw\.weight$"),
        reject=(r"^blocks\.5\.",),  # timm's lcnet_* (same block count, another network)
        rename=_TIMM_DS,
        blocks=_TIMM_BLOCKS,
        # timm's MobileNetV1 follows TF-slim's ReLU6; the paper (and our default) says ReLU.
        model_args=((r"^conv_stem\.weight$", "act", "relu6"),),
    ),
    # --- torchvision baselines (timm -> torchvision names) -----------------------------------
    Layout(
        "timm mobilenetv2_100", "mobilenetv2",
        detect=(r"^conv_stem\.weight$", r"^blocks\.\d+\.\d+\.conv_pwl\.weight$"),
        reject=(r"\.se\.",),  # MobileNetV2 has no squeeze-excite
        rename=(
            (r"^conv_stem\.", "features.0.0."),
            (r"^bn1\.", "features.0.1."),
            (r"^conv_head\.", "features.18.0."),
            (r"^bn2\.", "features.18.1."),
            (r"^classifier\.", "classifier.1."),
        ),
        blocks=Blocks(source=r"^blocks\.\d+\.\d+\.", target=r"^features\.\d+\.conv\.",
                      inner=(_TIMM_DSCONV, _TIMM_IR)),
    ),
    Layout(
        "timm mobilenetv3_*_100", "mobilenetv3",
        detect=(r"^conv_stem\.weight$", r"^blocks\.\d+\.\d+\.se\.conv_reduce\.weight$", r"^conv_head\.bias$"),
        rename=(
            (r"^conv_stem\.", "features.0.0."),
            (r"^bn1\.", "features.0.1."),
            (r"^classifier\.", "classifier.3."),  # before conv_head becomes classifier.0
            (r"^conv_head\.", "classifier.0."),
        ),
        # The 1x1 conv before pooling is timm's last block, torchvision's last `features`.
        blocks=Blocks(source=r"^blocks\.\d+\.\d+\.", target=r"^features\.[1-9]\d*\.(?:block\.)?",
                      inner=(_TIMM_CBA, _TIMM_DSCONV, _TIMM_IR)),
        transforms=(
            (r"^classifier\.0\.weight$", conv_to_linear),
            # torchvision builds MobileNetV3's BNs with eps=1e-3, timm with 1e-5.
            (r"^features\..*\.weight$", bn_eps(1e-5, 1e-3)),
        ),
    ),
    Layout(
        "timm regnetx_*", "regnetx",
        detect=(r"^stem\.conv\.weight$", r"^s1\.b1\.conv1\.conv\.weight$"),
        rename=(
            (r"^stem\.conv\.", "stem.0."),
            (r"^stem\.bn\.", "stem.1."),
            (r"\.conv1\.conv\.", ".f.a.0."),
            (r"\.conv1\.bn\.", ".f.a.1."),
            (r"\.conv2\.conv\.", ".f.b.0."),
            (r"\.conv2\.bn\.", ".f.b.1."),
            (r"\.conv3\.conv\.", ".f.c.0."),
            (r"\.conv3\.bn\.", ".f.c.1."),
            (r"\.downsample\.conv\.", ".proj.0."),
            (r"\.downsample\.bn\.", ".proj.1."),
            (r"^head\.fc\.", "fc."),
        ),
        blocks=Blocks(source=r"^s\d+\.b\d+\.", target=r"^trunk_output\.block\d+\.block\d+-\d+\."),
    ),
)

LAYOUTS += (
    # --- TResNet ----------------------------------------------------------------------------
    Layout(
        "timm tresnet_*", "tresnet",
        detect=(r"^body\.conv1\.conv\.weight$",),
        rename=(
            (r"^body\.conv1\.", "stem.conv."),
            (r"\.se\.fc1\.", ".se.conv_reduce."),
            (r"\.se\.fc2\.", ".se.conv_expand."),
        ),
        blocks=Blocks(source=r"^body\.layer\d\.\d+\.", target=r"^stages\.\d+\.\d+\."),
    ),
    Layout(
        "Alibaba-MIIL TResNet (InPlaceABN)", "tresnet",
        detect=(r"^body\.conv1\.0\.weight$", r"^body\.conv1\.1\.running_var$"),
        drop=(r"\.op\.filt$",),  # the fixed blur filter (stored when remove_aa_jit=True)
        rename=(
            # conv2d_ABN = Sequential(conv, InPlaceABN); a stride-2 one is nested with the blur.
            (r"\.(conv\d)\.0\.0\.", r".\1.conv."),
            (r"\.(conv\d)\.0\.1\.", r".\1.bn."),
            (r"\.(conv\d)\.0\.", r".\1.conv."),
            (r"\.(conv\d)\.1\.", r".\1.bn."),
            (r"\.downsample\.1\.0\.", ".downsample.1.conv."),
            (r"\.downsample\.1\.1\.", ".downsample.1.bn."),
            (r"^body\.conv1\.", "stem.conv."),
            (r"\.se\.fc1\.", ".se.conv_reduce."),
            (r"\.se\.fc2\.", ".se.conv_expand."),
        ),
        blocks=Blocks(source=r"^body\.layer\d\.\d+\.", target=r"^stages\.\d+\.\d+\."),
        # InPlaceABN scales by |gamma| + eps (eps=1e-5); a plain BN's weight is that value.
        transforms=((r"\.bn\.weight$", abs_plus(1e-5)),),
    ),
)

# GhostNet: huawei-noah's `ghostnet_pytorch/ghostnet.py` and timm's `ghostnet_*` share every key.
_GHOST_RENAME = (
    (r"^conv_stem\.", "stem.conv."),
    (r"^bn1\.", "stem.bn."),
    (r"^blocks\.9\.0\.conv\.", "final.conv."),  # the 1x1 ConvBnAct after the last bottleneck
    (r"^blocks\.9\.0\.bn1\.", "final.bn."),
    (r"\.primary_conv\.0\.", ".primary.conv."),
    (r"\.primary_conv\.1\.", ".primary.bn."),
    (r"\.cheap_operation\.0\.", ".cheap.conv."),
    (r"\.cheap_operation\.1\.", ".cheap.bn."),
    (r"\.conv_dw\.", ".dw.conv."),
    (r"\.bn_dw\.", ".dw.bn."),
    (r"\.shortcut\.0\.", ".shortcut.dw.conv."),
    (r"\.shortcut\.1\.", ".shortcut.dw.bn."),
    (r"\.shortcut\.2\.", ".shortcut.pw.conv."),
    (r"\.shortcut\.3\.", ".shortcut.pw.bn."),
    (r"^conv_head\.", "head.conv."),
    (r"^classifier\.", "head.fc."),
)
# MobileOne / RepVGG: the official repos name the re-parameterisable branches rbr_*.
_REP_MODEL_ARGS = ((r"\.reparam_conv\.weight$", "inference_mode", True),)

LAYOUTS += (
    # --- GhostNet (refusals first: these share keys with the layout that follows) -----------
    Layout(
        "PaddleClas GhostNet", "ghostnet",
        detect=(r"^_ghostbottleneck_0\.",),
        refuse="PaddleClas's GhostNet is a different network (SE on Linear layers gated by "
               "clip(x, 0, 1) instead of hard-sigmoid, a BN on the 1280-wide head conv, no "
               "channel slicing): its weights can't become leannet's GhostNet; use timm's or "
               "huawei-noah's GhostNet checkpoints",
    ),
    Layout(
        "timm ghostnetv3_*", "ghostnet",
        detect=(r"_rpr_",),
        refuse="this is GhostNetV3 (re-parameterisable ghost branches; it also has V2's DFC branch), a different network from GhostNet",
    ),
    Layout(
        "timm ghostnetv2_*", "ghostnet",
        detect=(r"\.short_conv\.",),
        refuse="this is GhostNetV2 (DFC attention branch), a different network from GhostNet",
    ),
    Layout(
        "timm ghostnet_* / huawei-noah GhostNet", "ghostnet",
        detect=(r"^conv_stem\.weight$", r"\.ghost1\.primary_conv\.0\.weight$"),
        rename=_GHOST_RENAME,
        blocks=_TIMM_BLOCKS,
    ),
    # --- MobileOne --------------------------------------------------------------------------
    Layout(
        "timm mobileone_* / leannet", "mobileone",
        detect=(r"^stem\.(conv_kxk\.0\.conv|reparam_conv)\.weight$",),
        rename=((r"\.attn\.fc1\.", ".se.conv_reduce."), (r"\.attn\.fc2\.", ".se.conv_expand.")),
        model_args=_REP_MODEL_ARGS,
    ),
    Layout(
        "apple/ml-mobileone", "mobileone",
        detect=(r"^stage0\.(rbr_conv\.0\.conv|reparam_conv)\.weight$",),
        rename=(
            (r"^stage0\.", "stem."),
            (r"\.rbr_conv\.", ".conv_kxk."),
            (r"\.rbr_scale\.", ".conv_scale."),
            (r"\.rbr_skip\.", ".identity."),
            (r"\.se\.reduce\.", ".se.conv_reduce."),
            (r"\.se\.expand\.", ".se.conv_expand."),
            (r"^linear\.", "head.fc."),
        ),
        # stage1..4 are flat Sequentials of depthwise/pointwise blocks, as ours.
        blocks=Blocks(source=r"^stage[1-9]\.\d+\.", target=r"^stages\.\d+\.\d+\."),
        model_args=_REP_MODEL_ARGS,
        note="unfused (*_unfused.pth.tar) and re-parameterised checkpoints; the latter build "
             "the model with inference_mode=True",
    ),
    # --- RepVGG -----------------------------------------------------------------------------
    Layout(
        "timm repvgg_*", "repvgg",
        detect=(r"^stem\.(conv_1x1\.conv|reparam_conv)\.weight$",),
        rename=(
            (r"\.conv_kxk\.(conv|bn)\.", r".conv_kxk.0.\1."),
            (r"\.conv_1x1\.", ".conv_scale."),
        ),
        model_args=_REP_MODEL_ARGS,
    ),
    Layout(
        "DingXiaoH/RepVGG", "repvgg",
        # repvgg.py: stage0 is one RepVGGBlock, stage1..4 ModuleLists of them, linear the FC;
        # a block is rbr_dense (3x3 conv_bn), rbr_1x1, rbr_identity (a BN, where the shape is
        # kept) or, deployed (deploy=True / repvgg_model_convert), rbr_reparam (conv + bias).
        detect=(r"^stage0\.(rbr_dense\.conv|rbr_reparam)\.weight$",),
        rename=(
            (r"^stage0\.", "stem."),
            *((rf"^stage{i}\.", f"stages.{i - 1}.") for i in range(1, 5)),
            (r"\.rbr_dense\.", ".conv_kxk.0."),
            (r"\.rbr_1x1\.", ".conv_scale."),
            (r"\.rbr_identity\.", ".identity."),
            (r"\.rbr_reparam\.", ".reparam_conv."),
            (r"^linear\.", "head.fc."),
        ),
        model_args=((r"\.rbr_reparam\.weight$", "inference_mode", True),),
        note="train-form (*-train.pth) and deployed (rbr_reparam) checkpoints; the latter build "
             "the model with inference_mode=True",
    ),
    # --- G-GhostNet -------------------------------------------------------------------------
    Layout(
        "huawei-noah G-Ghost RegNet", "g_ghostnet",
        # g_ghost_pytorch/g_ghost_regnet.py: conv1/bn1 stem; layerN a Sequential of Bottlenecks
        # (convK/bnK, downsample.{0,1}) or a G-Ghost Stage (base, layers.i, end, merge =
        # Sequential(pool, conv, bn, relu, conv, bn), cheap = Sequential(conv, bn)); fc.
        detect=(r"^conv1\.weight$", r"^layer3\.base\.conv1\.weight$"),
        rename=(
            (r"^conv1\.", "stem.conv."),
            (r"^bn1\.", "stem.bn."),
            *((rf"^layer{i}\.", f"stages.{i - 1}.") for i in range(1, 5)),
            (r"\.layers\.", ".blocks."),
            (r"\.conv([123])\.weight$", r".conv\1.conv.weight"),
            (r"\.bn([123])\.", r".conv\1.bn."),
            (r"\.downsample\.0\.", ".downsample.conv."),
            (r"\.downsample\.1\.", ".downsample.bn."),
            (r"\.merge\.1\.", ".merge.1.conv."),
            (r"\.merge\.2\.", ".merge.1.bn."),
            (r"\.merge\.4\.", ".merge.2.conv."),
            (r"\.merge\.5\.", ".merge.2.bn."),
            (r"\.cheap\.0\.", ".cheap.conv."),
            (r"\.cheap\.1\.", ".cheap.bn."),
            (r"^fc\.", "head.fc."),
        ),
    ),
)

LAYOUTS += (
    # --- SNet -------------------------------------------------------------------------------
    # ThunderNet's snet-training (network.py, blocks.py): first_conv, stage.S.U with `branch`
    # (main: pw, BN, ReLU, dw, BN, pw, BN, ReLU) and, in a stride-2 unit, `branch_left`
    # (projection: dw, BN, pw, BN, ReLU), classifier.0 (no bias); saved from DataParallel as
    # {"state_dict": {"module.<key>": ...}}. Key names and shapes: tests/weights/data/.
    Layout(
        "ThunderNet snet-training (official SNet)", "snet",
        detect=(r"^first_conv\.0\.weight$", r"^stage\.\d+\.0\.branch_left\.0\.weight$"),
        rename=(
            (r"^first_conv\.0\.", "stem.conv."),
            (r"^first_conv\.1\.", "stem.bn."),
            (r"\.branch_left\.0\.", ".branch1.0.conv."),
            (r"\.branch_left\.1\.", ".branch1.0.bn."),
            (r"\.branch_left\.2\.", ".branch1.1.conv."),
            (r"\.branch_left\.3\.", ".branch1.1.bn."),
            (r"\.branch\.0\.", ".branch2.0.conv."),
            (r"\.branch\.1\.", ".branch2.0.bn."),
            (r"\.branch\.3\.", ".branch2.1.conv."),
            (r"\.branch\.4\.", ".branch2.1.bn."),
            (r"\.branch\.5\.", ".branch2.2.conv."),
            (r"\.branch\.6\.", ".branch2.2.bn."),
            (r"^classifier\.0\.", "head.fc."),
        ),
        # stage.0.* is our stages.1.* (stages.0 is the max-pool, which has no weights).
        blocks=Blocks(source=r"^stage\.\d+\.\d+\.", target=r"^stages\.\d+\.\d+\."),
    ),
)

# timm's resnet50 uses torchvision's names: the `leannet` layout loads it unchanged.


# timm architectures whose keys match a layout above but which compute another function; a
# Hugging Face snapshot names its architecture in the `config.json` beside the weights.
DIFFERENT_NETWORKS = {
    "tf_mobilenetv3_*": "TF 'same' padding and BN eps 1e-3: not torchvision's MobileNetV3 "
                        "(max logit difference ~30 after a key-for-key load); use mobilenetv3_*_100",
}
