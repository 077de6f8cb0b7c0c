"""What a model costs: params, MACs, memory access, activations, and measured latency."""

from leannet.profile.complexity import count_macs, count_params

__all__ = ["count_macs", "count_params"]
