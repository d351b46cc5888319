"""The DFT codes through ASE, one small module each, the thesis's settings as defaults.

``make_dft_labeller("cp2k" | "vasp" | "espresso", DFTSettings(...))`` gives a
:class:`~scalms.hpc.labels.Labeller`; each refuses (``SCFNotConverged``) a frame whose SCF did not
converge, and checks before running that its program and pseudopotentials are there.
"""

from __future__ import annotations

from scalms.errors import ScalmsError
from scalms.hpc.dft.settings import DFTSettings
from scalms.hpc.labels import Labeller

DFT_CODES = ("cp2k", "vasp", "espresso")


def is_dft_code(name: str) -> bool:
    """True for the names of the DFT codes (case-insensitive); anything else is a model name."""
    return name.lower() in DFT_CODES


def make_dft_labeller(code: str, settings: DFTSettings) -> Labeller:
    """The labeller of ``code`` with ``settings``; imports only that code's module."""
    name = code.lower()
    if name == "cp2k":
        from scalms.hpc.dft.cp2k import CP2KLabeller

        return CP2KLabeller(settings)
    if name == "vasp":
        from scalms.hpc.dft.vasp import VaspLabeller

        return VaspLabeller(settings)
    if name == "espresso":
        from scalms.hpc.dft.espresso import EspressoLabeller

        return EspressoLabeller(settings)
    raise ScalmsError(f"unknown DFT code {code!r}: choose one of {', '.join(DFT_CODES)}")


__all__ = ["DFT_CODES", "DFTSettings", "is_dft_code", "make_dft_labeller"]
