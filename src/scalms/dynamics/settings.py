"""What an MD run does, as one validated record the parent writes and the child reads.

Pure data: no torch, no ASE dynamics. The same settings drive both engines, so a run means the
same thing whichever backend it lands on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from scalms.errors import ScalmsError

ENSEMBLES = ("nvt-langevin", "nvt-nose-hoover", "nve", "npt")
"""nvt-langevin (BAOAB Langevin), nvt-nose-hoover (chain of 3), nve (velocity Verlet), npt
(isotropic Langevin barostat, periodic cells only, TorchSim only)."""


@dataclass(frozen=True)
class MDSettings:
    """One MD protocol. Times in fs, temperature in K, pressure in bar.

    Frames are saved at every step that is a multiple of ``save_interval``, step 0 included, up
    to ``n_steps``; a checkpoint (full state with thermostat and random state) is written every
    ``checkpoint_every`` saved frames and at the end, so a killed run resumes from there.
    """

    n_steps: int
    time_step_fs: float = 1.0
    temperature_K: float = 450.0
    ensemble: str = "nvt-langevin"
    save_interval: int = 10
    checkpoint_every: int = 10
    thermostat_time_fs: float | None = None  # Langevin 1/γ or Nosé-Hoover τ; None: 100 steps
    pressure_bar: float = 1.01325
    barostat_time_fs: float | None = None  # None: 1000 steps
    seed: int = 0
    save_velocities: bool = True
    save_forces: bool = True
    max_force_eV_per_A: float = 50.0
    """A run whose largest atomic force passes this is stopped as blown up. Forces in a hot
    liquid metal stay below ~5 eV/Å; 50 eV/Å means two atoms pushed well inside each other
    (Lennard-Jones gallium reaches it at 1.9 Å against a 2.7 Å bond), where no model is trained
    and the next steps only diverge."""
    max_temperature_K: float = 10000.0
    """A run hotter than this (kinetic temperature of one frame) is stopped as blown up: a time
    step too long for the forces heats a run by orders of magnitude within a few steps. Must be
    above every target temperature."""
    temperature_program: tuple[tuple[int, float], ...] = ()
    """Stages of (steps, temperature K) run one after another, e.g. a melt: equilibrate, heat,
    cool back. Empty: ``temperature_K`` throughout. The stages' steps add up to ``n_steps`` and
    the first stage's temperature is ``temperature_K`` (velocities start at it)."""

    def __post_init__(self) -> None:
        problems = []
        if self.n_steps < 1:
            problems.append(f"n_steps must be at least 1, got {self.n_steps}")
        if not self.time_step_fs > 0:
            problems.append(f"the time step must be positive, got {self.time_step_fs} fs")
        if self.temperature_K < 0:
            problems.append(f"the temperature must not be negative, got {self.temperature_K} K")
        if self.ensemble not in ENSEMBLES:
            problems.append(f"unknown ensemble '{self.ensemble}'; choose one of {ENSEMBLES}")
        if self.save_interval < 1:
            problems.append(f"save_interval must be at least 1 step, got {self.save_interval}")
        if self.checkpoint_every < 1:
            problems.append(
                f"checkpoint_every must be at least 1 frame, got {self.checkpoint_every}"
            )
        for name in ("thermostat_time_fs", "barostat_time_fs"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                problems.append(f"{name} must be positive, got {value}")
        for name in ("max_force_eV_per_A", "max_temperature_K"):
            value = getattr(self, name)
            if not value > 0:
                problems.append(f"{name} must be positive, got {value}")
        hottest = max([self.temperature_K, *(t for _, t in self.temperature_program)])
        if hottest >= self.max_temperature_K:
            problems.append(
                f"the target temperature {hottest:g} K is not below max_temperature_K "
                f"{self.max_temperature_K:g} K, where a run is stopped as blown up; raise it"
            )
        problems += self._program_problems()
        if problems:
            raise ScalmsError("; ".join(problems))

    def _program_problems(self) -> list[str]:
        if not self.temperature_program:
            return []
        # JSON brings the stages back as lists: keep the record hashable and comparable.
        program = tuple((int(n), float(t)) for n, t in self.temperature_program)
        object.__setattr__(self, "temperature_program", program)
        problems = []
        if any(n < 1 for n, _ in program):
            problems.append("every temperature stage needs at least 1 step")
        if any(t < 0 for _, t in program):
            problems.append("stage temperatures must not be negative")
        if sum(n for n, _ in program) != self.n_steps:
            problems.append(
                f"the temperature stages add up to {sum(n for n, _ in program)} steps, "
                f"n_steps is {self.n_steps}"
            )
        if program[0][1] != self.temperature_K:
            problems.append(
                f"the first stage runs at {program[0][1]:g} K but temperature_K is "
                f"{self.temperature_K:g} K"
            )
        if self.ensemble == "nve":
            problems.append("NVE has no thermostat to follow a temperature program")
        return problems

    @classmethod
    def staged(cls, stages: list[tuple[int, float]], **kwargs) -> MDSettings:
        """Settings running ``stages`` of (steps, K) back to back."""
        return cls(
            n_steps=sum(n for n, _ in stages),
            temperature_K=stages[0][1],
            temperature_program=tuple(stages),
            **kwargs,
        )

    def temperature_at(self, step: int) -> float:
        """Thermostat temperature (K) of the step that ends at ``step`` (1 to n_steps)."""
        end = 0
        for n, temperature in self.temperature_program:
            end += n
            if step <= end:
                return temperature
        return self.temperature_K

    @property
    def thermostat_fs(self) -> float:
        return self.thermostat_time_fs or 100 * self.time_step_fs

    @property
    def barostat_fs(self) -> float:
        return self.barostat_time_fs or 1000 * self.time_step_fs

    @property
    def n_frames(self) -> int:
        """Frames a finished run holds."""
        return self.n_steps // self.save_interval + 1

    def is_frame(self, step: int) -> bool:
        return step % self.save_interval == 0

    def is_checkpoint(self, step: int) -> bool:
        """Checkpoints fall on saved frames, and on the last step."""
        every = self.save_interval * self.checkpoint_every
        return step == self.n_steps or (step % every == 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MDSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ScalmsError(f"unknown MD setting(s): {', '.join(unknown)}")
        return cls(**data)


def parse_stages(texts: list[str]) -> list[tuple[int, float]]:
    """Stages written ``STEPS:KELVIN`` ("2000:450") as (steps, temperature K) pairs."""
    stages, problems = [], []
    for text in texts:
        steps, _, kelvin = text.partition(":")
        try:
            stages.append((int(steps), float(kelvin)))
        except ValueError:
            problems.append(f"a stage is STEPS:KELVIN, like 2000:450; got {text!r}")
    if problems:
        raise ScalmsError("; ".join(problems))
    return stages
