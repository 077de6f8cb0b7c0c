"""Measure and choose: the benchmark sweep over every kind of source (zoo names, checkpoints,
exported artefacts, detectors), its results file and cache, the report, and the choice of
model x runtime x precision under a latency budget (`select`).

`sweep` plans and times every kind of source in one interleaved run (`sources` holds what
the sweep and its per-kind cell preparers share; `detectors` prepares detector cells);
`results` keeps rows and the environment they were timed in; `report` turns
rows into Markdown, plots and HTML; `select` chooses; `options` is the plain data the CLI
builds its parser from. Static costs per layer live in `leannet.profile`.
"""
