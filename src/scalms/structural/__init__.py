"""Structural analysis: per-atom MLIP descriptors of trajectories, reduced, clustered and compared.

The section's child job (``descriptor_job``) runs in a model's environment; the rest runs in
scalms's own: frame selection, the descriptor cache, reduction and clustering
(``scalms.analysis.clustering``), the labels file and the figures.
"""
