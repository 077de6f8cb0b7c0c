"""What a model costs and what to ship: params, MACs, memory access and activations
(`complexity`), measured latency (`latency`, over `leannet.runtime`), the results file
(`results`), the report (`report`) and the choice under a budget (`select`).

`leannet.complexity(...)` is the counting function; this package keeps the name `profile`
for the modules (the function used to share it and shadowed the package).
"""
