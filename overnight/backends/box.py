"""Trials in a box (local backend): a trial writes only inside its own folder, may have no network, and every
process it started ends with it, whatever its session.

The box is Debian's `bubblewrap` (`bwrap`): the whole filesystem read-only, the trial's folder writable, /dev as it
is (GPUs, /dev/shm), a pid namespace of its own (its processes die when the trial's first process ends, even those
that left its process group with `setsid`), and no network when `trial.network` is false. Where bwrap is missing,
`trial.sandbox: auto` runs trials unboxed with one warning; `bubblewrap` refuses to start.

Boxed or not, a trial's processes carry its `OVERNIGHT_RESULT` path in their environment, so `stop_strays` finds
and kills the ones that outlived it (a daemon started with `start_new_session=True`), and those a campaign killed
with -9 left behind.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

from overnight.config import ConfigError, ConfigWarning

INSTALL_BWRAP = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap)"
)
# The error a boxed trial gets for a write outside its folder, as the C library, Python and the shell word it.
_REFUSED_WRITE = re.compile(r"^.*Read-only file system.*$", re.MULTILINE)
MAX_REPORTED = 5


@dataclass(frozen=True)
class Box:
    """How the local backend starts a trial: inside bwrap (`bwrap` is its path), or as it is (None)."""

    bwrap: str | None
    network: bool = True
    writable: tuple[Path, ...] = ()  # folders it may write besides its own

    @property
    def kind(self) -> str:
        return "bubblewrap" if self.bwrap else "none"

    def wrap(self, argv: list[str], workdir: Path) -> list[str]:
        """The command line that runs `argv` in the box, in `workdir`."""
        if self.bwrap is None:
            return argv
        folder = str(workdir.resolve())
        box = [self.bwrap, "--ro-bind", "/", "/", "--dev-bind", "/dev", "/dev", "--proc", "/proc"]
        for path in (*self.writable, workdir):
            box += ["--bind", str(path.resolve()), str(path.resolve())]
        box += ["--chdir", folder, "--unshare-pid", "--die-with-parent"]
        if not self.network:
            box.append("--unshare-net")
        return [*box, "--", *argv]


UNBOXED = Box(None)


def make_box(sandbox: str, network: bool, writable: list[Path] | tuple[Path, ...] = ()) -> Box:
    """The box `trial.sandbox`, `trial.network` and `trial.writable_paths` ask for; ConfigError when it cannot be had
    here, one warning when `auto` falls back to running trials unboxed."""
    if missing := [str(path) for path in writable if not path.is_dir()]:
        raise ConfigError(f"trial.writable_paths: no such folder: {', '.join(missing)}")
    if sandbox == "none":
        if not network:
            raise ConfigError("trial.network: false needs the bubblewrap sandbox; trial.sandbox is none")
        return UNBOXED
    bwrap, problem = _bwrap()
    if bwrap and not problem:
        return Box(bwrap, network, tuple(writable))
    why = problem or f"bubblewrap (bwrap) is not installed: {INSTALL_BWRAP}"
    if sandbox == "bubblewrap":
        raise ConfigError(f"trial.sandbox: bubblewrap, but {why}")
    if not network:
        raise ConfigError(f"trial.network: false needs the bubblewrap sandbox, but {why}")
    warnings.warn(
        f"trials run unboxed: they can write outside their folders, and processes that leave their session are "
        f"found by their environment only. {why}; or set trial.sandbox: none to silence this",
        ConfigWarning,
        stacklevel=2,
    )
    return UNBOXED


@functools.lru_cache(maxsize=1)
def _bwrap() -> tuple[str | None, str]:
    """bwrap's path and, when it is there but cannot make a box here (no user namespaces), why not."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return None, ""
    probe = [bwrap, "--ro-bind", "/", "/", "--proc", "/proc", "--unshare-pid", "--die-with-parent", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return bwrap, f"bubblewrap ({bwrap}) could not start: {error}"
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return bwrap, f"bubblewrap ({bwrap}) cannot make a box here: {said}"
    return bwrap, ""


def refused_writes(log: str) -> list[str]:
    """The lines of a boxed trial's log where a write outside its folder was refused (the first few)."""
    lines = [line.strip() for line in _REFUSED_WRITE.findall(log)]
    return list(dict.fromkeys(lines))[:MAX_REPORTED]


def stop_strays(result_path: Path) -> int:
    """SIGKILL every process whose environment names this trial's result file; returns how many there were."""
    marker = b"\0OVERNIGHT_RESULT=" + os.fsencode(str(result_path)) + b"\0"
    me = os.getpid()
    killed = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as environ:
                if marker not in b"\0" + environ.read():
                    continue
            os.kill(int(entry.name), signal.SIGKILL)
            killed += 1
        except (OSError, ValueError):
            continue  # it ended meanwhile, or is not ours to read
    return killed
