"""Faults a real Slurm cluster has, done to the local one (scripts/slurm/up.sh) while a campaign runs on it.

Each is put right the way the cluster would come back: `restore` runs up.sh again, which restarts whatever was
stopped (the login node's sshd, slurmd) and resumes the node. Needs root, as up.sh does.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

ROOT = Path(__file__).parents[2]
STATE = Path(os.environ.get("OVERNIGHT_SLURM_DIR", "/opt/overnight-slurm"))
SSH_PORT = os.environ.get("OVERNIGHT_SLURM_SSH_PORT", "2222")
SLURMD_PID = Path("/run/slurmd.pid")


def login_down() -> None:
    """The login node stops answering ssh: its sshd ends, and so do the sessions SkyPilot holds open to it (ssh's
    ControlMaster would carry on over them), so SkyPilot's next ssh is refused."""
    _stop(STATE / "run" / "sshd.pid")
    established = _out(["ss", "-Htnp", "state", "established", f"( sport = :{SSH_PORT} )"])
    for pid in {int(p) for p in re.findall(r'"sshd",pid=(\d+)', established)}:
        _kill(pid, signal.SIGKILL)


def node_down(reason: str) -> str:
    """The node goes away as in a reboot: Slurm marks it down and kills its jobs (with them every SkyPilot cluster
    on it, each being an allocation), and its slurmd stops, so it stays down until `restore`. Its name."""
    node = _out(["sinfo", "-h", "-o", "%N"]).split()[0]
    _out(["scontrol", "update", f"NodeName={node}", "State=DOWN", f"Reason={reason}"])
    deadline = time.monotonic() + 15
    while _out(["squeue", "-h", "-w", node, "-o", "%i"]).strip() and time.monotonic() < deadline:
        time.sleep(0.5)
    _stop(SLURMD_PID)
    # It may have come back to service (ReturnToService=2) before its slurmd stopped.
    _out(["scontrol", "update", f"NodeName={node}", "State=DOWN", f"Reason={reason}"])
    return node


def restore(sky_env: dict[str, str]) -> None:
    """The cluster comes back: up.sh starts what is not running and resumes the node."""
    up = subprocess.run(
        ["bash", str(ROOT / "scripts" / "slurm" / "up.sh"), sky_env["HOME"]],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert up.returncode == 0, f"scripts/slurm/up.sh could not restore the cluster:\n{up.stdout}\n{up.stderr}"


def held_steps(hold_dir: Path) -> list[str]:
    """The Slurm steps (`<allocation>.<step>`) running the held trials' scripts, which each left a `held-<pid>` file
    in `hold_dir`: the step is that of the `slurmstepd` the script runs under (SkyPilot's setup runs as a step too,
    so the steps alone do not say which one runs the script)."""
    steps = []
    for marker in sorted(hold_dir.glob("held-*")):
        pid = int(marker.name.removeprefix("held-"))
        while pid > 1 and (command := _command(pid)) is not None:
            if found := re.match(r"slurmstepd: \[(\d+\.\d+)\]", command):
                steps.append(found.group(1))
                break
            pid = _parent(pid)
    return steps


def scancel(step: str) -> None:
    _out(["scancel", step])


class Output:
    """A process's output, read as it comes, so a test can wait for the moment to inject a fault at."""

    def __init__(self, process: subprocess.Popen):
        self.process = process
        self.lines: list[str] = []
        self._new = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._new:
                self.lines.append(line.rstrip("\n"))
                self._new.notify_all()
        with self._new:
            self._new.notify_all()

    def matching(self, pattern: str) -> list[str]:
        with self._new:
            return [line for line in self.lines if re.search(pattern, line)]

    def wait_for(self, pattern: str, count: int = 1, timeout_s: float = 600) -> list[str]:
        """The lines matching `pattern`, once there are `count` of them; fails if the process ends first."""
        deadline = time.monotonic() + timeout_s
        with self._new:
            while len(found := [line for line in self.lines if re.search(pattern, line)]) < count:
                left = deadline - time.monotonic()
                assert left > 0 and self._reader.is_alive(), f"never saw {pattern!r}:\n{self.text()[-4000:]}"
                self._new.wait(min(left, 1))
            return found

    def text(self) -> str:
        return "\n".join(self.lines)

    def finish(self, timeout_s: float) -> str:
        self.process.wait(timeout=timeout_s)
        self._reader.join(timeout=30)
        return self.text()


def until(check, timeout_s: float, what: str, every_s: float = 1):
    """The first truthy value of `check()`, polled; fails after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every_s)
    return value


def _command(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return None


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _out(command: list[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True, timeout=60).stdout


def _stop(pidfile: Path) -> None:
    """Stop the daemon whose pid is in `pidfile` and wait for it to go."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    _kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    _kill(pid, signal.SIGKILL)


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
