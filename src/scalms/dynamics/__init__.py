"""Molecular dynamics: settings, the TorchSim and ASE engines, and the parent's run and resume."""
