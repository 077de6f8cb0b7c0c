"""The seeds' design rules as paired micro-benchmarks, timed on this machine (`leannet lab`)."""
