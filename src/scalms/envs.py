"""One uv environment per model family under ``.venvs/<family>``: create, check, describe.

An environment holds the family's requirements (``requirements/<family>.txt``) and scalms
itself (editable, from this checkout), so the child entry point runs there. A stamp file
records the hash of the requirements it was built from: creating again is a no-op until they
change.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import scalms
from scalms.config import ModelEntry, managed_python
from scalms.errors import EnvironmentMissing, ScalmsError
from scalms.files import CorruptFile, atomic_write_json, read_json
from scalms.models import FAMILIES, Family

STAMP = ".scalms-env.json"
Echo = Callable[[str], None]


def source_root() -> Path:
    """The scalms checkout (pyproject.toml and requirements/) this package runs from."""
    root = Path(scalms.__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / "requirements").is_dir():
        raise EnvironmentMissing(
            f"scalms is not installed from a source checkout ({root}); environments are built "
            "from the checkout's requirements/ folder: clone the repository and `pip install -e .`"
        )
    return root


def requirements_file(family: Family) -> Path:
    return source_root() / "requirements" / f"{family.key}.txt"


def _digest(family: Family) -> str:
    """Hash of what the environment is built from: the family's requirements and scalms's own
    dependencies (not the rest of pyproject.toml, whose tool settings change often)."""
    import tomllib

    project = tomllib.loads((source_root() / "pyproject.toml").read_text())["project"]
    hasher = hashlib.sha256(requirements_file(family).read_bytes())
    hasher.update(json.dumps(project.get("dependencies", [])).encode())
    return hasher.hexdigest()


def _uv() -> str:
    """uv beside the running interpreter (installed with scalms's own venv), else on PATH."""
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.exists() else shutil.which("uv")
    if not found:
        raise EnvironmentMissing("uv not found; install it with `pip install uv`")
    return found


def _base_python() -> str:
    """The interpreter new environments are made from: the one under scalms's own venv."""
    return getattr(sys, "_base_executable", None) or sys.executable


def family_by_key(key: str) -> Family:
    family = FAMILIES.get(key.lower())
    if family is not None and not family.own_environment:
        raise ScalmsError(
            f"'{key}' models run in scalms's own interpreter and need no environment to create"
        )
    if family is None:
        choices = ", ".join(k for k, f in FAMILIES.items() if f.own_environment)
        raise ScalmsError(f"unknown environment '{key}'; choose from {choices}")
    return family


def env_dir(family: Family) -> Path:
    return managed_python(family).parent.parent


def is_current(family: Family) -> bool:
    stamp = env_dir(family) / STAMP
    if not stamp.is_file() or not managed_python(family).exists():
        return False
    try:
        recorded = read_json(stamp, "environment stamp").get("requirements_sha256")
    except (CorruptFile, AttributeError):
        return False  # a damaged stamp: the environment is rebuilt
    return recorded == _digest(family)


def _run(command: list[str], echo: Echo) -> None:
    echo("$ " + " ".join(command))
    completed = subprocess.run(command, stdin=subprocess.DEVNULL)
    if completed.returncode != 0:
        raise EnvironmentMissing(
            f"`{' '.join(command)}` failed with exit code {completed.returncode}"
        )


def create(family: Family, force: bool = False, echo: Echo = print) -> bool:
    """Build the environment of ``family``; return False when it was already current."""
    target = env_dir(family)
    if not force and is_current(family):
        echo(f"{family.key}: up to date ({target})")
        return False
    uv = _uv()  # before removing anything: without uv the old environment stays usable
    if target.exists():
        shutil.rmtree(target)
    started = time.perf_counter()
    echo(f"{family.key}: [1/3] creating {target}")
    _run([uv, "venv", "--quiet", "--python", _base_python(), str(target)], echo)
    echo(f"{family.key}: [2/3] installing {requirements_file(family).name} and scalms")
    python = managed_python(family)
    _run(
        [
            uv,
            "pip",
            "install",
            "--python",
            str(python),
            "-r",
            str(requirements_file(family)),
            "-e",
            str(source_root()),
        ],
        echo,
    )
    echo(f"{family.key}: [3/3] checking that {family.import_name} imports")
    report = probe(family, [])
    if not report["import_ok"]:
        raise EnvironmentMissing(
            f"{family.key}: built, but `import {family.import_name}` fails: "
            f"{report['import_error']}"
        )
    stamp = {
        "requirements_sha256": _digest(family),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "versions": report["versions"],
    }
    atomic_write_json(target / STAMP, stamp)
    echo(f"{family.key}: ready in {time.perf_counter() - started:.0f} s ({python})")
    return True


def probe(family: Family, entries: list[ModelEntry], python: Path | None = None) -> dict:
    """Ask ``python`` (default: the family's environment) what it can run; see workers.probe."""
    python = python or managed_python(family)
    command = [str(python), "-m", "scalms.workers.probe", family.key]
    command += [json.dumps(e.to_dict()) for e in entries]
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return {"import_ok": False, "import_error": f"cannot run {python}: {err}", "versions": {}}
    lines = [ln for ln in completed.stdout.splitlines() if ln.startswith("{")]
    if completed.returncode != 0 or not lines:
        last = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        return {"import_ok": False, "import_error": f"probe failed: {last}", "versions": {}}
    return json.loads(lines[-1])


@dataclass
class EnvStatus:
    family: Family
    python: Path
    exists: bool
    current: bool
    report: dict = field(default_factory=dict)
    entries: list[ModelEntry] = field(default_factory=list)
    """The model entries whose weights were looked for."""


def statuses(requests: list[tuple[Family, list[ModelEntry], Path | None]]) -> list[EnvStatus]:
    """:func:`status` of several environments at once: each probe is a process that spends most
    of its time importing, so they run side by side."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda request: status(*request), requests))


def status(family: Family, entries: list[ModelEntry], python: Path | None = None) -> EnvStatus:
    """Whether the environment exists, imports its package, and finds the entries' weights."""
    python = python or managed_python(family)
    if not python.exists():
        return EnvStatus(family, python, exists=False, current=False, entries=entries)
    managed = python == managed_python(family)
    current = is_current(family) if managed else True
    return EnvStatus(family, python, True, current, probe(family, entries, python), entries)


def installed_version(python: Path, distribution: str) -> str | None:
    """The version of ``distribution`` in the environment of ``python``, read from its
    dist-info without starting the interpreter; None when it is not installed there."""
    from importlib.metadata import distributions

    environment = Path(python).parent.parent
    for site in sorted(environment.glob("lib/python*/site-packages")):
        for found in distributions(name=distribution, path=[str(site)]):
            return found.version
    return None
