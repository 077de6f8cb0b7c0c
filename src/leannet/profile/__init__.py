"""Static costs of a model: params, MACs, memory access and activations per layer
(`complexity`), and `leannet profile`'s table of them (`table`). Measured latency lives in
`leannet.bench`.

`leannet.complexity(...)` is the counting function; this package keeps the name `profile`
for the modules (the function used to share it and shadowed the package).
"""
