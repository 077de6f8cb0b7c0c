"""`leannet profile`'s choices, plain data so the CLI's parser is built without importing torch."""

SORT_KEYS = ("order", "macs", "params", "mac_bytes", "activations", "intensity")
