"""What a model costs: params, MACs, memory access, activations, and measured latency.

`leannet.profile` (the function, re-exported by the top-level package) shadows this package
as an attribute of `leannet`; import submodules with `from leannet.profile import latency`.
"""

from leannet.profile.complexity import count_macs, count_params, profile, profile_model

__all__ = ["count_macs", "count_params", "profile", "profile_model"]
