"""Classical potentials that need no model package: quick checks and fast tests.

- ``lj``: Lennard-Jones 12-6 with a hard cutoff, energy shifted to zero at the cutoff. TorchSim
  evaluates it with its ``PairPotentialModel``; ASE with its ``LennardJones`` calculator, which
  applies the same shift, so both backends give the same numbers. Any element (the potential
  ignores species). Options: ``sigma`` (Å), ``epsilon`` (eV), ``cutoff`` (Å).
  Defaults are a rough fit to the Ga-Ga nearest-neighbour distance (about 2.7 Å).
- ``emt``: ASE's effective-medium theory (Al, Cu, Ag, Au, Ni, Pd, Pt, and H, C, N, O).
  TorchSim has no EMT, so it shows the ASE fallback; it does not know gallium.
"""

from __future__ import annotations

import functools

from scalms.errors import BackendUnavailable, ModelLoadError
from scalms.models._checks import check_options
from scalms.models.entry import ModelEntry

LJ_DEFAULTS = {"sigma": 2.40, "epsilon": 0.10, "cutoff": 6.0}


def _lj_parameters(entry: ModelEntry) -> dict[str, float]:
    check_options(entry, LJ_DEFAULTS)
    return {k: float(entry.options.get(k, v)) for k, v in LJ_DEFAULTS.items()}


def _kind(entry: ModelEntry) -> str:
    kind = entry.name.lower()
    if kind not in ("lj", "emt"):
        raise ModelLoadError(f"builtin model '{entry.name}' does not exist; choose lj or emt")
    return kind


def shifted_lj_pair(dr, zi, zj, sigma: float, epsilon: float, cutoff: float):
    """LJ pair energy minus its value at the cutoff (the pair model drops r > r_c)."""
    import torch
    from torch_sim.models.lennard_jones import lennard_jones_pair

    at_cutoff = 4.0 * epsilon * ((sigma / cutoff) ** 12 - (sigma / cutoff) ** 6)
    energy = lennard_jones_pair(dr, zi, zj, sigma=sigma, epsilon=epsilon) - at_cutoff
    return torch.where(dr > 0, energy, torch.zeros_like(energy))


def ase_calculator(entry: ModelEntry, device: str):
    if _kind(entry) == "emt":
        from ase.calculators.emt import EMT

        return EMT()
    from ase.calculators.lj import LennardJones

    p = _lj_parameters(entry)
    return LennardJones(sigma=p["sigma"], epsilon=p["epsilon"], rc=p["cutoff"], smooth=False)


def torchsim_model(entry: ModelEntry, device: str):
    if _kind(entry) == "emt":
        raise BackendUnavailable("TorchSim has no EMT model")
    import torch
    from torch_sim.models.pair_potential import PairPotentialModel

    from scalms.models._torchsim import neighbor_list_for

    p = _lj_parameters(entry)
    return PairPotentialModel(
        pair_fn=functools.partial(shifted_lj_pair, **p),
        cutoff=p["cutoff"],
        device=torch.device(device),
        dtype=torch.float64,
        compute_forces=True,
        compute_stress=True,
        reduce_to_half_list=True,
        neighbor_list_fn=neighbor_list_for(device),
    )


def elements(entry: ModelEntry, loaded) -> frozenset[str] | None:
    if _kind(entry) == "emt":
        from ase.calculators.emt import parameters

        return frozenset(parameters)
    return None
