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

from scalms.analysis.order import bond_order, lindemann_index
from scalms.dynamics.settings import MDSettings
from scalms.errors import ScalmsError
from scalms.trajectory import Trajectory

GA_BOILING_K = 2477.0
LIQUID_D_CM2_PER_S = 5e-6
"""Self-diffusion above which the host atoms count as liquid: a quarter of liquid gallium's
(about 2e-5 cm²/s near 450 K; SevenNet-0's melted particles give 1.7-2.6e-5)."""
MIN_WINDOW_FS = 1000.0
"""Shortest window judged: over shorter windows the MSD has not left its ballistic and
vibrational start, and a crystal's slope looks like diffusion."""
QUENCH_THERMOSTAT_TIMES = 3.0
"""Thermostat times at the start of the last stage left out of the verdict: the particle is
still cooling from the hot stage there (the kinetic energy's excess decays as exp(-2t/tau)
under Langevin, to 0.25 % after three tau), and its faster, hotter diffusion would pass for the
liquid's at the target temperature."""


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

    @property
    def quench_steps(self) -> int:
        """Steps at the start of the last stage that the verdict leaves out while the particle
        cools: :data:`QUENCH_THERMOSTAT_TIMES` thermostat times, at most half the stage."""
        thermostat_steps = self.settings().thermostat_fs / self.time_step_fs
        return min(round(QUENCH_THERMOSTAT_TIMES * thermostat_steps), self.final_steps // 2)

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
    """Whether a melted particle is liquid, judged on the frames of the final stage.

    The frames judged are those inside the last stage once the particle has cooled to the target
    (:func:`final_stage`): neither the last frame of the hot stage nor the quench at the start of
    the last stage. Liquid means both: the host atoms diffuse (``D_cm2_per_s`` above
    :data:`LIQUID_D_CM2_PER_S`, from the MSD with the centre of mass removed, lags up to half
    the window, fitted from an eighth of it), and the crystal's bond order is gone (Q6 of the
    last frame under half the crystal's; not checked for periodic cells). A window shorter
    than :data:`MIN_WINDOW_FS` gets no verdict. The Lindemann index is reported beside them:
    over a few ps a liquid particle scores 0.06-0.15, a solid 0.02-0.05, so it shows the trend
    but draws no sharp line at such lengths.
    """

    n_frames: int
    window_fs: float
    temperature_K: float  # mean over the frames judged
    D_cm2_per_s: float | None  # host element; None when the stage is too short
    lindemann: float | None  # None for periodic cells
    q6_crystal: float | None  # global Q6 of the starting crystal (non-periodic only)
    q6_final: float | None  # global Q6 of the last frame
    liquid: bool | None  # None when the stage is too short to tell

    def to_dict(self) -> dict:
        return asdict(self)


def bond_cutoff_A(positions: np.ndarray) -> float:
    """A bond cutoff between the first and second neighbour shells: 1.2 x the mean
    nearest-neighbour distance of the structure."""
    distances = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)
    np.fill_diagonal(distances, np.inf)
    return 1.2 * float(distances.min(axis=1).mean())


def host_diffusion(final: Trajectory) -> float:
    """Diffusion coefficient (cm²/s) of the most common element over ``final``, with the centre
    of mass held still (a drifting particle is not a liquid one), periodic runs unwrapped."""
    from scalms.analysis import msd_of

    window = float(final.time_fs[-1] - final.time_fs[0])
    msd = msd_of(
        final,
        int(np.bincount(final.numbers).argmax()),
        remove_drift=True,
        max_lag_fs=window / 2,
        fit_start_fs=window / 8,
        fit_end_fs=window / 2,
    )
    return msd.fit.D_cm2_per_s


def final_stage(trajectory: Trajectory, final_steps: int, quench_steps: int = 0) -> Trajectory:
    """The frames inside the last ``final_steps`` steps, less the first ``quench_steps`` of them.

    With S the last frame's step, the frames of steps in (S - final_steps + quench_steps, S]:
    the frame at S - final_steps is the hot stage's last, not the final stage's.
    """
    start = trajectory.step[-1] - final_steps + quench_steps
    return trajectory.select(trajectory.step > start)


def check_melt(trajectory: Trajectory, final_steps: int, quench_steps: int = 0) -> MeltCheck:
    """Diffusion, Lindemann index and Q6 over the frames of :func:`final_stage`."""
    final = final_stage(trajectory, final_steps, quench_steps)
    if final.n_frames == 0:
        raise ScalmsError(
            f"no frame inside the last {final_steps - quench_steps} steps of the melt "
            f"(frames every {trajectory.save_interval} steps): save frames more often"
        )
    temperature = (
        float(np.mean(final.temperature_K)) if final.temperature_K is not None else float("nan")
    )
    window_fs = float(final.time_fs[-1] - final.time_fs[0])
    diffusion = host_diffusion(final) if window_fs >= MIN_WINDOW_FS else None
    diffuses = None if diffusion is None else diffusion > LIQUID_D_CM2_PER_S
    if trajectory.pbc.any():  # distances across the cell need images; no Lindemann or Q6
        return MeltCheck(
            final.n_frames, window_fs, temperature, diffusion, None, None, None, diffuses
        )
    cutoff = bond_cutoff_A(trajectory.positions[0])
    q6_crystal = bond_order(trajectory.positions[0], cutoff)
    q6_final = bond_order(final.positions[-1], cutoff)
    return MeltCheck(
        n_frames=final.n_frames,
        window_fs=window_fs,
        temperature_K=temperature,
        D_cm2_per_s=diffusion,
        lindemann=lindemann_index(final.positions) if final.n_frames >= 2 else None,
        q6_crystal=q6_crystal,
        q6_final=q6_final,
        liquid=None if diffuses is None else diffuses and q6_final < 0.5 * q6_crystal,
    )
