"""PyTorch's intra-op thread count is process-wide state: set it only for a scope."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with `n` PyTorch intra-op threads (None: leave them); the caller's count comes back
    on exit, also when the body raises."""
    before = torch.get_num_threads()
    if n is None or n == before:  # nothing to change (and nothing to pay per call)
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
