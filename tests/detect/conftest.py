import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _restore_threads():
    # tiny_test.yaml trains with run.threads=1 (torch.set_num_threads is process-wide).
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)
