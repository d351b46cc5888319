"""The one place that writes files atomically and locks a working directory.

Every state file, manifest, checkpoint and results file goes through :func:`atomic_path`: the
content is written to a temporary file in the same folder, flushed to the disk (fsync), and renamed
over the target in one step, so a kill or a full disk leaves either the old file or the new one,
never half of one, and no temporary file behind. A working directory has one writer at a time:
:class:`WorkDirLock` holds an ``fcntl.flock`` on ``.scalms.lock`` inside it; the kernel drops the
lock when the process dies, so a killed run never blocks the next command.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from scalms.errors import ScalmsError

LOCK_NAME = ".scalms.lock"


class DiskFull(ScalmsError):
    """The disk (or the user's quota) ran out while writing."""


class WorkDirBusy(ScalmsError):
    """Another scalms command holds the working directory."""


class CorruptFile(ScalmsError):
    """A file scalms wrote earlier cannot be read back."""


def is_disk_full(err: BaseException) -> bool:
    """True for the errors a full disk or an exhausted quota raises, however wrapped."""
    while err is not None:
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(err).lower()
        if "no space left" in text or "disk quota exceeded" in text:
            return True
        err = err.__cause__ or err.__context__
    return False


def disk_full_error(path: Path | str, err: BaseException) -> DiskFull:
    return DiskFull(
        f"disk full while writing {path}: free space on {Path(path).resolve().parent} and run "
        f"the same command again (what was written before is kept)"
    )


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename is still atomic
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed to ``path``.

    Any writer that takes a file name (h5py, torch.save, numpy, ase.io.write) can fill it. On an
    error the temporary file is removed and ``path`` is left as it was; a full disk is raised as
    :class:`DiskFull` with what to do.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if is_disk_full(err) and not isinstance(err, DiskFull):
            raise disk_full_error(path, err) from err
        raise


def atomic_write_bytes(path: Path | str, data: bytes) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def atomic_write_text(path: Path | str, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path | str, data: Any, *, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=indent, default=str))


def file_sha256(path: Path | str) -> str:
    """The SHA-256 of a file's content: how a record knows its inputs, whatever their names
    or times."""
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def read_json(path: Path | str, what: str = "file", fix: str = "") -> Any:
    """Read a JSON file scalms wrote; a damaged one raises :class:`CorruptFile` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        hint = f"; {fix}" if fix else ""
        raise CorruptFile(f"{what} {path} is damaged ({err}){hint}") from err


class WorkDirLock:
    """An exclusive, non-blocking lock on a working directory, for the life of one command.

    ``with WorkDirLock(root, "dynamics run"):`` refuses at once, with one line, when another
    process holds it. The lock file holds the holder's pid and command, for the message.
    Within one process the lock nests: a command that holds it may call library functions that
    take it again (a second flock from the same process would refuse itself).
    """

    _held: ClassVar[dict[Path, int]] = {}  # resolved root -> nesting depth, in this process

    def __init__(self, root: Path | str, command: str = "scalms"):
        self.root = Path(root)
        self.command = command
        self._fd: int | None = None
        self._nested = False
        self._made_root = False

    @property
    def path(self) -> Path:
        return self.root / LOCK_NAME

    def acquire(self) -> WorkDirLock:
        self._made_root = not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        key = self.root.resolve()
        if self._held.get(key):
            self._held[key] += 1
            self._nested = True
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise WorkDirBusy(
                f"{self.root} is in use by {holder}: wait for it to end (or stop it) before "
                f"running {self.command} on the same directory"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} ({self.command})".encode())
        self._fd = fd
        self._held[key] = 1
        return self

    def release(self) -> None:
        key = self.root.resolve()
        if self._nested:
            self._held[key] -= 1
            self._nested = False
            return
        if self._fd is not None:
            self._held.pop(key, None)
            if self._made_root and [p.name for p in self.root.iterdir()] == [LOCK_NAME]:
                # A command refused after taking the lock leaves no empty folder behind.
                self.path.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    self.root.rmdir()
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WorkDirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
