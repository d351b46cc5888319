"""scalms: liquid-metal catalyst simulations with machine-learning interatomic potentials."""

__version__ = "0.1.0"
