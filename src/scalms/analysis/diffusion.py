"""Mean squared displacement over lag times and time origins, and the diffusion coefficient.

Two estimators of MSD(m) = < |r(t0 + m) - r(t0)|^2 >_t0 for lag m (in frames):
- `msd_fft`: every time origin, in O(F log F) per atom through the Wiener-Khinchin theorem;
- `msd_direct`: the thesis's method, every lag x every `origin_stride`-th origin, term by term.
With origin_stride=1 they agree to rounding. `mean_squared_displacement` takes unwrapped
positions (`unwrap_positions` for periodic runs; nanoparticles in vacuum need nothing) and, by
default, removes the centre-of-mass displacement of the whole system first
(`remove_centre_of_mass_drift`): under a Langevin thermostat a free particle random-walks as a
whole (D_com = kT / (M gamma)), and that walk is not its atoms' diffusion.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from scalms.analysis import _cpu as cpu
from scalms.analysis._common import Element, frames_array, masses_of, select_atoms
from scalms.analysis._cpu import wants_torch
from scalms.analysis.results import DiffusionFit, MeanSquaredDisplacement

A2_PER_FS_TO_CM2_PER_S = 0.1
"""1 Å^2/fs = 1e-16 cm^2 / 1e-15 s."""
DEFAULT_FIT_START_FRACTION = 0.1
"""Without a fit window, the fit runs from this fraction of the largest lag to the largest lag:
the first lags are ballistic, not diffusive."""
_CHUNK_VALUES = 2**22
"""Values per torch tensor when chunking over atoms (32 MB in float64)."""


def msd_fft(
    positions: np.ndarray, max_lag_frames: int | None = None, *, device: str = "cpu"
) -> np.ndarray:
    """MSD of each atom at lags 0..max_lag_frames, averaged over all F - m time origins of lag m.

    positions: (F, S, 3) in Å (unwrapped); max_lag_frames: largest lag (default F - 1). Returns
    (max_lag_frames + 1, S) in Å^2, lag in frames along axis 0. With d(t) = |r(t)|^2 the sum
    over origins of |r(t0+m) - r(t0)|^2 is sum d(t0+m) + sum d(t0) (prefix sums of d) minus
    2 sum r(t0).r(t0+m), an autocorrelation computed by FFT (Wiener-Khinchin) in float64.
    """
    positions = frames_array(positions, "positions")
    n_frames, n_atoms = positions.shape[:2]
    max_lag = n_frames - 1 if max_lag_frames is None else int(max_lag_frames)
    if not 0 <= max_lag < n_frames:
        raise ValueError(f"max_lag_frames must be in [0, {n_frames - 1}], got {max_lag_frames}")
    if not wants_torch(device):
        return cpu.msd_fft(positions, max_lag, _fast_length)
    import torch

    # Zero padding to F + max_lag keeps the circular correlation exact up to max_lag.
    n_fft = _fast_length(n_frames + max_lag)
    atoms_per_chunk = max(1, _CHUNK_VALUES // (3 * n_fft))
    device = torch.device(device)
    n_origins = torch.arange(n_frames, n_frames - max_lag - 1, -1, device=device).double()
    # One zero-padded buffer for all chunks: only its first F columns are ever written.
    # (3, atoms, n_fft): time last and contiguous for the FFT, xyz first so that sums over xyz
    # are additions of whole arrays (torch reduces a size-3 axis slowly).
    padded = torch.zeros((3, min(atoms_per_chunk, n_atoms), n_fft), dtype=torch.float64)
    padded = padded.to(device)
    msd = np.empty((max_lag + 1, n_atoms))
    for start in range(0, n_atoms, atoms_per_chunk):
        stop = min(start + atoms_per_chunk, n_atoms)
        buffer = padded[:, : stop - start]
        r = buffer[..., :n_frames]
        r.copy_(torch.from_numpy(np.array(positions[:, start:stop].transpose(2, 1, 0))))
        r -= r.mean(dim=-1, keepdim=True)  # the MSD ignores offsets; smaller numbers round less
        square = r[0].square()
        square.addcmul_(r[1], r[1]).addcmul_(r[2], r[2])  # (s, F)
        prefix = torch.nn.functional.pad(torch.cumsum(square, dim=-1), (1, 0))
        # sum_{t0=0}^{F-m-1} d(t0) + sum_{t=m}^{F-1} d(t), for m = 0..max_lag
        head = prefix[:, n_frames - max_lag :].flip(-1)
        squares = head + prefix[:, n_frames, None] - prefix[:, : max_lag + 1]
        spectrum = torch.view_as_real(torch.fft.rfft(buffer, dim=-1))  # (3, s, K, 2)
        power = spectrum[0, ..., 0].square()
        for axis, part in ((0, 1), (1, 0), (1, 1), (2, 0), (2, 1)):
            power.addcmul_(spectrum[axis, ..., part], spectrum[axis, ..., part])
        correlation = torch.fft.irfft(power.to(torch.complex128), n=n_fft, dim=-1)
        chunk = (squares - 2.0 * correlation[:, : max_lag + 1]) / n_origins
        chunk[:, 0] = 0.0
        msd[:, start:stop] = chunk.T.cpu().numpy()
    return msd


def msd_direct(
    positions: np.ndarray, max_lag_frames: int, origin_stride: int = 2, *, device: str = "cpu"
) -> np.ndarray:
    """MSD of each atom at lags 0..max_lag_frames from every `origin_stride`-th time origin.

    positions: (F, S, 3) in Å (unwrapped); returns (max_lag_frames + 1, S) in Å^2. For lag m the
    origins are t0 = 0, stride, 2 stride, ... with t0 + m < F, the thesis's subsampled origins.
    """
    positions = frames_array(positions, "positions")
    n_frames, n_atoms = positions.shape[:2]
    if not 0 <= max_lag_frames < n_frames:
        raise ValueError(f"max_lag_frames must be in [0, {n_frames - 1}], got {max_lag_frames}")
    if origin_stride < 1:
        raise ValueError(f"origin_stride must be >= 1, got {origin_stride}")
    if not wants_torch(device):
        return cpu.msd_direct(positions, max_lag_frames, origin_stride)
    import torch

    device = torch.device(device)
    n_origins_max = math.ceil(n_frames / origin_stride)
    atoms_per_chunk = max(1, _CHUNK_VALUES // (3 * n_origins_max))
    msd = np.empty((max_lag_frames + 1, n_atoms))
    for start in range(0, n_atoms, atoms_per_chunk):
        stop = min(start + atoms_per_chunk, n_atoms)
        r = torch.from_numpy(np.array(positions[:, start:stop], dtype=np.float64)).to(device)
        for lag in range(max_lag_frames + 1):
            # origins t0 = 0, stride, ... < F - lag, paired with t0 + lag: two strided views
            step = r[lag::origin_stride] - r[: n_frames - lag : origin_stride]
            # mean over origins first: torch reduces a long axis much faster than the xyz one
            msd[lag, start:stop] = step.square_().mean(dim=0).sum(dim=-1).cpu().numpy()
    return msd


def centre_of_mass_drift(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Displacement of the mass-weighted centre of all atoms from frame 0, (F, 3) in Å.

    positions: (F, N, 3) Å, unwrapped; masses: (N,) amu (any unit: only ratios count).
    """
    positions = frames_array(positions, "positions")
    masses = np.asarray(masses, dtype=np.float64)
    if masses.shape != positions.shape[1:2]:
        raise ValueError(
            f"masses must have one entry per atom ({positions.shape[1]}), got {masses.shape}"
        )
    if not np.all(masses > 0):
        raise ValueError("masses must be positive to weigh the centre of mass")
    centre = np.einsum("fni,n->fi", positions, masses / masses.sum())
    return centre - centre[0]


def remove_centre_of_mass_drift(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Positions less the centre-of-mass displacement of the whole system, (F, N, 3) in Å.

    r_i(t) - (R(t) - R(0)) with R the mass-weighted centre of every atom (not only the traced
    ones), so a particle that drifts as a whole shows no diffusion from it, while the atoms'
    motion relative to the particle is kept. Frame 0 is unchanged.
    """
    positions = frames_array(positions, "positions")
    return positions - centre_of_mass_drift(positions, masses)[:, None, :]


def fit_diffusion(
    lag_fs: np.ndarray, msd_A2: np.ndarray, fit_start_fs: float, fit_end_fs: float
) -> DiffusionFit:
    """Least-squares line MSD = slope t + intercept over fit_start_fs <= t <= fit_end_fs.

    lag_fs in fs, msd_A2 in Å^2. D = slope / 6 (Einstein, 3 dimensions), reported in cm^2/s
    (1 Å^2/fs = 0.1 cm^2/s). R^2 = 1 - SS_res / SS_tot, NaN when the MSD is constant there.
    """
    lag_fs = np.asarray(lag_fs, dtype=np.float64)
    msd_A2 = np.asarray(msd_A2, dtype=np.float64)
    slope, intercept, r2 = _line_fits(lag_fs, msd_A2[:, None], fit_start_fs, fit_end_fs)
    return _fit_record(slope[0], intercept[0], r2[0], fit_start_fs, fit_end_fs)


def mean_squared_displacement(
    positions: np.ndarray,
    *,
    frame_interval_fs: float,
    numbers: np.ndarray,
    traced: Element | np.ndarray,
    masses: np.ndarray | None = None,
    remove_drift: bool = True,
    method: str = "fft",
    max_lag_fs: float = 1000.0,
    origin_stride: int = 2,
    fit_start_fs: float | None = None,
    fit_end_fs: float | None = None,
    device: str = "cpu",
) -> MeanSquaredDisplacement:
    """MSD of the traced atoms against lag time, with D from a straight-line fit.

    positions: (F, N, 3) Å, unwrapped; frame_interval_fs: time between saved frames; numbers:
    (N,); traced: element (symbol or atomic number), "all", or (N,) boolean mask.
    remove_drift (default): subtract the displacement of the centre of mass of all N atoms,
    weighted by `masses` (N,) amu (default: the elements' standard masses), before the MSD; with
    False the MSD includes the drift of the system as a whole. method "fft" uses every time
    origin (origin_stride is then 1), "direct" every `origin_stride`-th.
    Lags run from 0 to max_lag_fs (1 ps by default: a solute's MSD saturates in a nanoparticle);
    a max_lag_fs beyond the trajectory is clipped to its length, with a warning. The fit window
    defaults to [10 %, 100 %] of the largest lag; the fit is made of the atom-averaged MSD and of
    each atom's.
    """
    if method not in ("fft", "direct"):
        raise ValueError(f"method must be 'fft' or 'direct', got {method!r}")
    if frame_interval_fs <= 0:
        raise ValueError(f"frame_interval_fs must be positive, got {frame_interval_fs}")
    positions = frames_array(positions, "positions")
    n_frames = positions.shape[0]
    if n_frames < 3:
        raise ValueError(f"an MSD fit needs at least 3 frames, got {n_frames}")
    indices, symbol = select_atoms(numbers, traced)
    if remove_drift:
        positions = remove_centre_of_mass_drift(positions, masses_of(numbers, masses))
    max_lag = round(max_lag_fs / frame_interval_fs)
    if max_lag > n_frames - 1:
        warnings.warn(
            f"max_lag_fs = {max_lag_fs} fs is beyond the trajectory ({n_frames} frames of "
            f"{frame_interval_fs} fs); lags are clipped to {(n_frames - 1) * frame_interval_fs} fs",
            stacklevel=2,
        )
        max_lag = n_frames - 1
    if max_lag < 2:
        raise ValueError(f"max_lag_fs = {max_lag_fs} fs spans fewer than 2 frames")
    traced_positions = positions[:, indices]
    if method == "fft":
        per_atom = msd_fft(traced_positions, max_lag, device=device)
        origin_stride = 1
    else:
        per_atom = msd_direct(traced_positions, max_lag, origin_stride, device=device)
    lag_fs = np.arange(max_lag + 1) * float(frame_interval_fs)
    start = DEFAULT_FIT_START_FRACTION * lag_fs[-1] if fit_start_fs is None else fit_start_fs
    end = lag_fs[-1] if fit_end_fs is None else fit_end_fs
    mean = per_atom.mean(axis=1)
    curves = np.column_stack([mean, per_atom])
    slopes, intercepts, r2s = _line_fits(lag_fs, curves, start, end)
    fits = [
        _fit_record(slope, intercept, r2, start, end)
        for slope, intercept, r2 in zip(slopes, intercepts, r2s, strict=True)
    ]
    return MeanSquaredDisplacement(
        lag_fs=lag_fs,
        msd_A2=mean,
        per_atom_A2=per_atom.T.copy(),
        indices=indices,
        symbol=symbol,
        method=method,
        origin_stride=origin_stride,
        fit=fits[0],
        per_atom_fit=tuple(fits[1:]),
        drift_removed=bool(remove_drift),
    )


def unwrap_positions(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """Undo the wrapping of atoms into a periodic cell, for MSDs of bulk runs.

    positions: (F, N, 3) Å, wrapped or not; cell: (3, 3) or (F, 3, 3) Å, rows the lattice
    vectors; pbc: (3,) bool. The positions are first wrapped into each frame's cell along the
    periodic axes; then each frame-to-frame step of the wrapped positions is taken to its
    nearest image in the new frame's cell, and the steps are summed from frame 0 (the
    "toroidal" unwrapping of von Bülow, Bullerjahn and Hummer, J. Chem. Phys. 153, 021101,
    2020). With a cell that changes (NPT) this does not count an image shift n L(t) as motion
    when L changes, as scaling the crossing count by the current cell would; with a fixed cell
    it is the plain nearest-image unwrapping. Atoms must move less than half a cell between
    saved frames. Returns new (F, N, 3) positions starting at frame 0's.
    """
    positions = frames_array(positions, "positions").astype(np.float64, copy=False)
    n_frames = positions.shape[0]
    axes = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    if not axes.any():
        return positions.copy()
    cell = np.asarray(cell, dtype=np.float64)
    if cell.shape == (3, 3):
        cell = np.broadcast_to(cell, (n_frames, 3, 3))
    if cell.shape != (n_frames, 3, 3):
        raise ValueError(f"cell must be (3, 3) or (frames, 3, 3), got {cell.shape}")
    inverse = np.linalg.inv(cell)
    fractional = positions @ inverse  # (F, N, 3): r = s @ cell
    # Wrapped: what the system is, whichever image a writer kept (TorchSim keeps none).
    fractional[..., axes] -= np.floor(fractional[..., axes])
    wrapped = fractional @ cell
    steps = np.diff(wrapped, axis=0)
    images = np.round(steps @ inverse[1:])
    images[..., ~axes] = 0.0
    steps -= images @ cell[1:]
    return np.concatenate([positions[:1], positions[:1] + np.cumsum(steps, axis=0)])


def _line_fits(
    t: np.ndarray, curves: np.ndarray, start: float, end: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slope, intercept and R^2 of a least-squares line through each column of `curves`."""
    if t.ndim != 1 or curves.shape[0] != t.shape[0]:
        raise ValueError(f"lag_fs {t.shape} and msd_A2 {curves.shape[:1]} differ in length")
    window = (t >= start) & (t <= end)
    if window.sum() < 2:
        raise ValueError(
            f"the fit window [{start}, {end}] fs holds {window.sum()} lag(s); a line needs 2"
        )
    x = t[window] - t[window].mean()
    y = curves[window]
    y_mean = y.mean(axis=0)
    slope = x @ (y - y_mean) / (x @ x)
    intercept = y_mean - slope * t[window].mean()
    residual = y - (slope * t[window][:, None] + intercept)
    ss_res = (residual**2).sum(axis=0)
    ss_tot = ((y - y_mean) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.nan)
    return slope, intercept, r2


def _fit_record(slope, intercept, r2, start: float, end: float) -> DiffusionFit:
    return DiffusionFit(
        D_cm2_per_s=float(slope) / 6.0 * A2_PER_FS_TO_CM2_PER_S,
        slope_A2_per_fs=float(slope),
        intercept_A2=float(intercept),
        r2=float(r2),
        fit_start_fs=float(start),
        fit_end_fs=float(end),
    )


def _fast_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n: FFT lengths the FFT library handles fastest."""
    best = 1 << max(0, (n - 1).bit_length())
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            length = power35
            while length < n:
                length *= 2
            best = min(best, length)
            power35 *= 3
        power5 *= 5
    return best
