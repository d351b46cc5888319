"""Benchmarks of models: accuracy against reference data (DFT) and computational cost.

- :mod:`scalms.benchmark.metrics`: error statistics, per-element errors, energy offsets, net
  force, committee spread (arrays in, records out; no files, no plots).
- :mod:`scalms.benchmark.reference`: reading reference frames and checking they can be used.
- :mod:`scalms.benchmark.accuracy`: ``scalms benchmark accuracy`` (the parent's side).
- :mod:`scalms.benchmark.sampler`: CPU, memory and GPU use of a child process tree over time.
- :mod:`scalms.benchmark.cost`: ``scalms benchmark cost`` (the parent's side).
"""
