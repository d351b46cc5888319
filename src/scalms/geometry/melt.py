"""The melting protocol: equilibrate at the target temperature, anneal hot, come back.

A crystal cut from the bulk forgets its lattice faster well above the melting point, so the
particle spends a first stage at the target temperature, a longer one hot (far below boiling),
and a last one at the target again (the thesis used 2-5 ps, 6-10 ps and 2-5 ps). The stages
become one MD run with a temperature program (``MDSettings.temperature_program``), so every
particle of every size melts in the same TorchSim batch and the run resumes like any other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from scalms.analysis.order import LIQUID_LINDEMANN, bond_order, lindemann_index
from scalms.dynamics.settings import MDSettings
from scalms.errors import ScalmsError
from scalms.trajectory import Trajectory

GA_MELTING_K = 302.9
GA_BOILING_K = 2477.0
MIN_LINDEMANN_WINDOW_FS = 1000.0
"""The Lindemann index of a liquid grows with the window it is taken over; over less than about
a picosecond a liquid particle can stay under the criterion, so shorter last stages get no
verdict (their index is still reported)."""


@dataclass(frozen=True)
class MeltProtocol:
    """Stage lengths in ps, temperatures in K. A stage of length 0 is left out."""

    target_K: float = 450.0
    hot_K: float = 1000.0
    equilibrate_ps: float = 2.0
    hot_ps: float = 6.0
    final_ps: float = 2.0
    time_step_fs: float = 1.0
    save_interval: int = 50
    ensemble: str = "nvt-langevin"
    pressure_bar: float = 1.01325
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        for name in ("equilibrate_ps", "hot_ps", "final_ps"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative")
        if self.final_ps <= 0:
            problems.append("the final stage at the target temperature needs a length > 0")
        if self.hot_K >= GA_BOILING_K:
            problems.append(
                f"the hot stage at {self.hot_K:g} K is above gallium's boiling point "
                f"({GA_BOILING_K:g} K): the particle would evaporate"
            )
        if problems:
            raise ScalmsError("; ".join(problems))

    def _steps(self, ps: float) -> int:
        return round(ps * 1000 / self.time_step_fs)

    @property
    def final_steps(self) -> int:
        return self._steps(self.final_ps)

    def stages(self) -> list[tuple[int, float]]:
        """(steps, K) of each stage that has any steps."""
        stages = [
            (self._steps(self.equilibrate_ps), self.target_K),
            (self._steps(self.hot_ps), self.hot_K),
            (self.final_steps, self.target_K),
        ]
        return [(n, t) for n, t in stages if n > 0]

    def settings(self) -> MDSettings:
        return MDSettings.staged(
            self.stages(),
            time_step_fs=self.time_step_fs,
            ensemble=self.ensemble,
            save_interval=self.save_interval,
            pressure_bar=self.pressure_bar,
            seed=self.seed,
        )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MeltCheck:
    """Whether a melted particle is liquid, judged on the frames of the final stage."""

    n_frames: int
    temperature_K: float  # mean over the final stage
    lindemann: float | None  # None for periodic cells
    q6_crystal: float | None  # global Q6 of the starting crystal (non-periodic only)
    q6_final: float | None  # global Q6 of the last frame
    liquid: bool | None  # by the Lindemann criterion; None when it cannot tell (window too short)

    def to_dict(self) -> dict:
        return asdict(self)


def bond_cutoff_A(positions: np.ndarray) -> float:
    """A bond cutoff between the first and second neighbour shells: 1.2 x the mean
    nearest-neighbour distance of the structure."""
    distances = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)
    np.fill_diagonal(distances, np.inf)
    return 1.2 * float(distances.min(axis=1).mean())


def check_melt(trajectory: Trajectory, final_steps: int) -> MeltCheck:
    """Lindemann index and Q6 over the frames of the last ``final_steps`` steps."""
    last = trajectory.step[-1]
    final = trajectory.select(trajectory.step >= last - final_steps)
    temperature = (
        float(np.mean(final.temperature_K)) if final.temperature_K is not None else float("nan")
    )
    if trajectory.pbc.any():  # distances across the cell need images; leave these out
        return MeltCheck(final.n_frames, temperature, None, None, None, None)
    cutoff = bond_cutoff_A(trajectory.positions[0])
    lindemann = lindemann_index(final.positions) if final.n_frames >= 2 else None
    window_fs = final.time_fs[-1] - final.time_fs[0]
    judged = lindemann is not None and window_fs >= MIN_LINDEMANN_WINDOW_FS
    return MeltCheck(
        n_frames=final.n_frames,
        temperature_K=temperature,
        lindemann=lindemann,
        q6_crystal=bond_order(trajectory.positions[0], cutoff),
        q6_final=bond_order(final.positions[-1], cutoff),
        liquid=lindemann > LIQUID_LINDEMANN if judged else None,
    )
