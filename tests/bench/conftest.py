import pytest


@pytest.fixture(autouse=True)
def _small_machine_limits(monkeypatch):
    # A sweep measures the machine's limits once per LEANNET_HOME (a fresh one per test): keep
    # that to milliseconds. The figures are meaningless; tests only check the fields exist.
    from leannet.bench import machine

    monkeypatch.setattr(machine, "MATMUL_N", 64)
    monkeypatch.setattr(machine, "COPY_BYTES", 1 << 20)
