"""Net force per frame: a check that a model's forces are translation invariant."""

from __future__ import annotations

import numpy as np

from scalms.analysis._common import frames_array
from scalms.analysis.results import NetForce


def net_force(forces: np.ndarray, time_fs: np.ndarray) -> NetForce:
    """Sum of the atomic forces of each frame, as a vector and its length.

    forces: (F, N, 3) in eV/Å; time_fs: (F,). A conservative model whose energy does not change
    when the whole particle moves gives zero up to rounding; a direct-force model need not.
    Summed in float64, so rounding of the sum is not mistaken for a model's net force.
    """
    forces = frames_array(forces, "forces")
    time_fs = np.asarray(time_fs, dtype=np.float64)
    if time_fs.shape != forces.shape[:1]:
        raise ValueError(
            f"time_fs needs one entry per frame ({forces.shape[0]}), got {time_fs.shape}"
        )
    vector = forces.sum(axis=1, dtype=np.float64)
    return NetForce(
        time_fs=time_fs,
        vector_eV_per_A=vector,
        magnitude_eV_per_A=np.linalg.norm(vector, axis=-1),
    )
