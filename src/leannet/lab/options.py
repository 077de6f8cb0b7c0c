"""`leannet lab`'s choices, plain data so the CLI's parser is built without importing torch."""

RULE_NAMES = ("G1", "G2", "G3", "G4", "lcnet_hswish", "lcnet_se_tail", "lcnet_dw5x5", "lcnet_head1280",
              "mobileone_act", "mobileone_reparam", "ghost_module", "tresnet_s2d")  # = rules.RULES, in order
RUNTIMES = ("eager", "onnxruntime", "openvino")
ROUNDS = 3  # default effort: 12 rules x 2 arms x 3 runtimes in ~2-3 minutes on 2 cores
ROUND_TIME = 0.12  # seconds of calls per cell per round (after the settle of timing.SETTLE)
