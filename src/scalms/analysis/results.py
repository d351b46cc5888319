"""What each analysis returns: small frozen records of numpy arrays, with units in the names.

Analyses build them, `scalms.io.analysis_files` stores them, plots draw them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PDF_MODES = ("shell", "pair-fraction")


@dataclass(frozen=True)
class PairDistribution:
    """A full or partial pair distribution function averaged over frames.

    mode "shell": counts per bin divided by the bin's shell volume 4/3 pi (r_hi^3 - r_lo^3) and by
    the reference (A) atoms summed over frames: the number density of B atoms around an A atom,
    1/Å^3 (thesis section 3.6.1, text).
    mode "pair-fraction": counts per bin divided by the ordered A-B pairs summed over frames, as in
    the thesis's equation 3.1; dimensionless, sums to the fraction of pairs closer than r_max.
    """

    r_A: np.ndarray  # (B,) bin centres
    g: np.ndarray  # (B,)
    mode: str
    label: str  # "all" or "A-B", A the normalising element
    n_frames: int
    r_max_A: float


@dataclass(frozen=True)
class SoluteTrace:
    """Distance of each traced atom from the first frame's centre of mass, and the surface there.

    The surface along a solute's direction is the mean projection of the `n_surface` furthest
    atoms (of `surface_elements`, all when empty) onto the unit vector from the centre to it.
    """

    time_fs: np.ndarray  # (F,)
    indices: np.ndarray  # (S,) atom indices of the traced atoms
    distance_A: np.ndarray  # (F, S)
    surface_A: np.ndarray  # (F, S)
    symbol: str  # element traced
    n_surface: int
    surface_elements: tuple[str, ...]
    n_atoms: int  # size of the nanoparticle, for summaries across sizes


@dataclass(frozen=True)
class DiffusionFit:
    """Least-squares line MSD = slope * t + intercept over [start, end]; D = slope / 6."""

    D_cm2_per_s: float
    slope_A2_per_fs: float
    intercept_A2: float
    r2: float
    fit_start_fs: float
    fit_end_fs: float


@dataclass(frozen=True)
class MeanSquaredDisplacement:
    """MSD against lag time for the traced atoms, averaged over time origins.

    method "fft": every time origin (Wiener-Khinchin); "direct": origins every `origin_stride`
    frames up to `max_lag_fs`, the thesis's method. `symbol` names the selection: an element,
    "all", or the elements of a mask joined by "+".
    """

    lag_fs: np.ndarray  # (L,)
    msd_A2: np.ndarray  # (L,) mean over traced atoms
    per_atom_A2: np.ndarray  # (S, L)
    indices: np.ndarray  # (S,)
    symbol: str
    method: str
    origin_stride: int
    fit: DiffusionFit  # of the atom-averaged MSD
    per_atom_fit: tuple[DiffusionFit, ...]
    # Whether the centre-of-mass displacement of all atoms was subtracted first; records saved
    # before that option existed kept the drift, hence the default.
    drift_removed: bool = False


@dataclass(frozen=True)
class NetForce:
    """Sum of all atomic forces per frame: near zero for a translation-invariant model."""

    time_fs: np.ndarray  # (F,)
    vector_eV_per_A: np.ndarray  # (F, 3)
    magnitude_eV_per_A: np.ndarray  # (F,)


@dataclass(frozen=True)
class LabelSummary:
    """What one cluster label of the structural analysis holds, over the pooled atom-frames.

    Depth is below the adaptive surface (positive inside the particle, ~0 at the surface); the
    distance is from each frame's own centre of mass. Both in Å.
    """

    label: int
    n_points: int  # atom-frames with this label
    fraction: float  # of all atom-frames
    element_fractions: dict[str, float]  # within the label, summing to 1, largest first
    mean_coordination: float
    mean_depth_A: float
    mean_distance_from_centre_A: float


@dataclass(frozen=True)
class SolutePlacement:
    """Where the solute atoms of one element in one trajectory sit in the shared descriptor map.

    Distances are in the units of the embedding (PCA or UMAP coordinates, not Å): from the
    solute's centroid to the centroids of the host atoms carrying the surface and the bulk labels.
    A solute's own descriptors carry its element, which sets it apart from every host cluster;
    its environment is read through its host neighbours (within the coordination cutoff): their
    mean place on the bulk-to-surface axis (0 bulk centroid, 1 surface centroid) and the
    fraction of them labelled surface. NaN when the solute never has a host neighbour.
    """

    source: str
    element: str
    n_points: int
    label_fractions: dict[int, float]  # every label of the clustering, summing to 1
    distance_to_surface: float
    distance_to_bulk: float
    spread: float  # RMS distance of its points from their centroid, embedding units
    neighbour_surface_coordinate: float
    neighbour_surface_fraction: float
    mean_depth_A: float
