"""The reference file a labelling job grows: extended XYZ, one frame appended as each finishes.

Appending, not rewriting: a rewrite through ``scalms.files.atomic_path`` would copy the whole
file for every new frame, which is quadratic in the frame count; with a fast model labelling
thousands of frames that is gigabytes written for megabytes kept. So each frame is written in one
``write`` call and fsynced before the job goes on, and what a kill can leave is a prefix of the
last frame. :func:`complete_prefix` finds where the last whole frame ends (the atom-count header
says how many lines a frame has); readers ignore the rest, and :meth:`ReferenceFile.repair`
truncates it before the next append, so the file holds whole frames only.

Beside it, ``<file>.job.json`` (written atomically) says which job made the file, so a different
job never continues it, and which tries the labeller refused (SCF not converged), so a rerun
does not try them again.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ase import Atoms

from scalms.errors import ScalmsError
from scalms.files import CorruptFile, atomic_write_json, disk_full_error, is_disk_full, read_json

SIDECAR_SUFFIX = ".job.json"
WRITER_WAIT_S = 600.0
"""How long a job waits for an earlier writer of the same file (an orphaned child) to end."""
FORMAT = "scalms reference file 1"


def sidecar_path(path: Path | str) -> Path:
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def complete_prefix(data: bytes, where: str = "file") -> tuple[int, int]:
    """(bytes, frames) of the whole extended-XYZ frames at the start of ``data``.

    A frame is whole when its count line, comment line and that many atom lines all end in a
    newline. An incomplete last frame (a kill mid-write) is not counted; a count line that is no
    number before the end raises :class:`CorruptFile` (that is damage, not a kill).
    """
    position, frames, size = 0, 0, len(data)
    while position < size:
        end = data.find(b"\n", position)
        if end < 0:
            break  # the count line itself was cut
        header = data[position:end].strip()
        try:
            n_atoms = int(header)
        except ValueError:
            raise CorruptFile(
                f"{where} is damaged: line at byte {position} should count the atoms of a "
                f"frame, found {header[:40]!r}"
            ) from None
        cursor = end + 1
        for _ in range(n_atoms + 1):  # the comment line, then one line per atom
            end = data.find(b"\n", cursor)
            if end < 0:
                return position, frames
            cursor = end + 1
        position, frames = cursor, frames + 1
    return position, frames


def parse_frames(data: bytes, where: str = "file") -> list[Atoms]:
    """The whole frames of extended-XYZ ``data`` (ASE's reader does the parsing)."""
    import ase.io

    end, n_frames = complete_prefix(data, where)
    if n_frames == 0:
        return []
    try:
        frames = ase.io.read(io.StringIO(data[:end].decode("utf-8")), index=":", format="extxyz")
    except Exception as err:  # ASE raises many types for a bad frame; all mean damage
        raise CorruptFile(f"{where} is damaged ({type(err).__name__}: {err})") from None
    return frames if isinstance(frames, list) else [frames]


def read_reference(path: Path | str) -> list[Atoms]:
    """The whole frames of a reference file (a truncated last frame is left out)."""
    path = Path(path)
    if not path.exists():
        return []
    return parse_frames(path.read_bytes(), str(path))


def frame_text(atoms: Atoms) -> bytes:
    """One frame as extended XYZ (ASE's writer), with every ``info`` and array kept."""
    import ase.io

    buffer = io.StringIO()
    ase.io.write(buffer, atoms, format="extxyz")
    return buffer.getvalue().encode("utf-8")


class ReferenceFile:
    """A reference file and its sidecar, for the one job that grows them (hold the working
    directory's lock while using one, and :meth:`writing` while appending)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.sidecar = sidecar_path(self.path)

    @contextmanager
    def writing(self, wait_s: float = WRITER_WAIT_S) -> Iterator[None]:
        """Be the file's only writer: an ``flock`` on the file itself. The command's lock
        guards the working folder, but a model's child outlives a parent killed with SIGKILL
        until its next message; a rerun's child waits here for it rather than interleave
        frames with it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise ScalmsError(
                            f"{self.path} is still being written by another process after "
                            f"{wait_s:g} s: stop it, then run the same command again"
                        ) from None
                    time.sleep(0.2)
            yield
        finally:
            os.close(fd)  # closing drops the lock

    def frames(self) -> list[Atoms]:
        return read_reference(self.path)

    def repair(self) -> int:
        """Cut an incomplete last frame off the file; returns the bytes removed."""
        if not self.path.exists():
            return 0
        data = self.path.read_bytes()
        end, _ = complete_prefix(data, str(self.path))
        if end == len(data):
            return 0
        with open(self.path, "r+b") as handle:
            handle.truncate(end)
            handle.flush()
            os.fsync(handle.fileno())
        return len(data) - end

    def append(self, atoms: Atoms) -> None:
        """Add one frame at the end, on the disk (fsync) before this returns."""
        data = frame_text(atoms)
        try:
            with open(self.path, "ab") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as err:
            if is_disk_full(err):
                # What was written of this frame is cut off by the next run's repair.
                raise disk_full_error(self.path, err) from err
            raise

    # The sidecar: which job, and the refused tries.
    def state(self) -> dict[str, Any] | None:
        if not self.sidecar.exists():
            return None
        state = read_json(self.sidecar, "job file", f"remove it and {self.path} to start again")
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise CorruptFile(f"{self.sidecar} is not a scalms job file")
        return state

    def start(self, job: dict[str, Any], command: str) -> dict[str, Any]:
        """Begin or continue the file for ``job`` (JSON data naming everything that shapes the
        frames). Raises :class:`ScalmsError` when the file belongs to another job or to no
        job; writes the sidecar when new. Returns the state."""
        state = self.check(job, command)
        if state is None:
            state = {"format": FORMAT, "command": command, "job": _as_json(job), "refused": []}
            atomic_write_json(self.sidecar, state)
        return state

    def check(self, job: dict[str, Any], command: str) -> dict[str, Any] | None:
        """What :meth:`start` checks, writing nothing: the state, None for a new file."""
        state = self.state()
        if state is None:
            if self.path.exists() and self.path.stat().st_size > 0:
                raise ScalmsError(
                    f"{self.path} exists and was not made by `{command}` (no {self.sidecar.name} "
                    f"beside it): choose another --out"
                )
            return None
        difference = first_difference(state.get("job", {}), _as_json(job))
        if difference:
            raise ScalmsError(
                f"{self.path} was made by another job ({difference}): run the same command to "
                f"continue it, or choose another --out"
            )
        return state

    def refused(self) -> list[dict[str, Any]]:
        state = self.state()
        return list(state.get("refused", [])) if state else []

    def refuse(self, slot: int, attempt: int, reason: str) -> None:
        """Record that try ``attempt`` at ``slot`` was refused, so no rerun tries it again."""
        state = self.state()
        if state is None:
            raise ScalmsError(f"{self.sidecar} is missing: start the job first")
        state["refused"].append({"slot": slot, "attempt": attempt, "reason": reason})
        atomic_write_json(self.sidecar, state)


def _as_json(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as it reads back from JSON (tuples become lists), so that comparisons hold."""
    return json.loads(json.dumps(data, default=str))


def first_difference(stored: dict[str, Any], current: dict[str, Any], prefix: str = "") -> str:
    """The first key whose value differs, as 'key: stored -> current'; '' when equal."""
    for key in sorted(set(stored) | set(current)):
        a, b = stored.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = first_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b:
            return f"{prefix}{key}: {a!r} there, {b!r} now"
    return ""
