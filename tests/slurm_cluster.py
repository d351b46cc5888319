"""A real single-node SLURM (slurmctld, slurmd, munged) in a temporary folder, for the tests.

Everything lives under the folder: munge's key, socket, pid and log; slurm.conf, the state and
spool folders, pids and logs. The daemons listen on free ports, so two test sessions (or a
cluster already running on the machine) do not clash. Commands reach this cluster through
:attr:`SlurmCluster.env` (``SLURM_CONF``). Needs root (SlurmUser=root), as in CI.
"""

from __future__ import annotations

import getpass
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PROGRAMS = ("sbatch", "squeue", "scontrol", "slurmctld", "slurmd", "munged", "mungekey")
START_TIMEOUT_S = 60.0


def _sbin(name: str) -> str:
    """Daemons live in /usr/sbin, which a non-login PATH may lack."""
    for folder in [*os.environ.get("PATH", "").split(os.pathsep), "/usr/sbin", "/sbin"]:
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise FileNotFoundError(name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


SLURM_CONF = """\
ClusterName=scalmstest
SlurmctldHost={host}
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge/munge.socket
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
MinJobAge=600
KillWait=5
NodeName={host} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


class SlurmCluster:
    """The daemons of one single-node cluster rooted at ``root``; :meth:`start`, :meth:`stop`."""

    def __init__(self, root: Path, cpus: int = 2):
        self.root = Path(root)
        self.host = socket.gethostname()
        self.cpus = cpus
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self._pid_files = [self.root / "slurmd.pid", self.root / "slurmctld.pid"]
        self._pid_files.append(self.root / "munge" / "munged.pid")

    def command(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a SLURM client command (squeue, scontrol...) against this cluster."""
        return subprocess.run(
            list(args), env=self.env, capture_output=True, text=True, check=check, timeout=60
        )

    def start(self) -> SlurmCluster:
        munge = self.root / "munge"
        for folder in (munge, self.root / "state", self.root / "spool"):
            folder.mkdir(parents=True, exist_ok=True)
        munge.chmod(0o711)  # clients (slurmd's job steps) must reach the socket
        self.root.chmod(0o755)
        key = munge / "munge.key"
        subprocess.run([_sbin("mungekey"), "-c", "-k", str(key)], check=True, capture_output=True)
        key.chmod(0o600)
        # --force: the tmp folder's parents are not the root-owned tree munged expects.
        self._daemon(
            _sbin("munged"),
            "--force",
            f"--socket={munge}/munge.socket",
            f"--key-file={key}",
            f"--pid-file={munge}/munged.pid",
            f"--log-file={munge}/munged.log",
            f"--seed-file={munge}/munged.seed",
        )
        memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 // 2
        self.conf.write_text(
            SLURM_CONF.format(
                host=self.host,
                root=self.root,
                ctld_port=_free_port(),
                slurmd_port=_free_port(),
                cpus=self.cpus,
                memory_mb=memory_mb,
            )
        )
        self._wait_for_file(munge / "munge.socket", "munged's socket")
        self._daemon(_sbin("slurmctld"), "-f", str(self.conf), "-i")
        self._daemon(_sbin("slurmd"), "-f", str(self.conf))
        self._wait_until_idle()
        return self

    def _daemon(self, *args: str) -> None:
        # The daemons fork into the background and write their pid files.
        result = subprocess.run(list(args), env=self.env, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} did not start: {result.stderr.strip()}")

    def _wait_for_file(self, path: Path, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not path.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not appear within {START_TIMEOUT_S:g} s")
            time.sleep(0.05)

    def node_state(self) -> str:
        result = self.command("sinfo", "-h", "-N", "-o", "%T", check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    def _wait_until_idle(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while self.node_state() != "idle":
            if time.monotonic() > deadline:
                logs = "\n".join(
                    (self.root / name).read_text()[-2000:]
                    for name in ("slurmctld.log", "slurmd.log")
                    if (self.root / name).exists()
                )
                raise RuntimeError(f"the node is not idle ({self.node_state()!r}):\n{logs}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Cancel what is still queued (a failed test's jobs), then stop every daemon this
        cluster started (by its pid file), slurmd first."""
        if self.conf.exists():
            self.command("scancel", "--user", getpass.getuser(), check=False)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                result = self.command("squeue", "-h", check=False)
                if result.returncode != 0 or not result.stdout.strip():
                    break
                time.sleep(0.1)
        for pid_file in self._pid_files:
            try:
                pid = int(pid_file.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 30
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A daemon that ended but is a zombie of ours counts as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (OSError, IndexError):
        return False
    return state != "Z"


@contextmanager
def single_node_cluster(root: Path, cpus: int = 2) -> Iterator[SlurmCluster]:
    """Start a cluster in ``root`` and stop it at the end, however the block ends."""
    cluster = SlurmCluster(root, cpus)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
