"""Local backend: one process per trial, in its own folder and process group, killed as a group on timeout, and in
a box (overnight/backends/box.py) where bubblewrap is installed: it writes only inside its folder, and every process
it started ends with it."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from overnight.backends.base import (
    INHERITED_ENV,
    Backend,
    NoSuchHardware,
    TrialInterrupted,
    Worker,
    WorkerPool,
    infra_error,
    prepare_trial_folder,
    trial_env,
    trial_result,
)
from overnight.backends.box import UNBOXED, Box, refused_writes, stop_strays
from overnight.program import changed_files, file_hashes
from overnight.trial import Outcome, TrialFacts, TrialResult, TrialSpec

KILL_GRACE_S = 5.0
RUN_LOG, RESULT_FILE = "run.log", ".overnight_result.json"
BOX_TMP = ".tmp"  # a boxed trial's TMPDIR: inside its folder, the one place it may write
PID_FILE = ".overnight_pid"  # the trial's process group, for whoever looks at a running trial


class LocalBackend(Backend):
    name = "local"

    def __init__(
        self,
        program: Path,
        work_root: Path,
        metric: str,
        simulate_hardware: dict[str, int] | None = None,
        box: Box = UNBOXED,
    ):
        self.program = program
        self.work_root = work_root
        self.metric = metric
        self.box = box
        # The program's files as the campaign found them: a run that changes a read-only one is invalid.
        self.fingerprints = file_hashes(program)
        # A simulated mixed pool (tests, demos): each trial takes a worker of one type and is told its type.
        self.pool = (
            WorkerPool(
                [
                    Worker(f"{kind}-{i}", hardware=kind, up=True)
                    for kind, count in simulate_hardware.items()
                    for i in range(count)
                ]
            )
            if simulate_hardware
            else None
        )
        # Every trial process this backend started and that still runs, so that an interrupted campaign (Ctrl-C)
        # can stop them all at once: they live in their own process groups and never see the terminal's SIGINT.
        self._live: dict[int, subprocess.Popen] = {}
        self._live_lock = threading.Lock()
        self._stopping = threading.Event()

    def trial_dir(self, trial_id: str) -> Path:
        return self.work_root / trial_id

    def where(self, trial_id: str) -> str:
        return f"local {socket.gethostname()}:{self.trial_dir(trial_id)}"

    def run(self, spec: TrialSpec) -> TrialResult:
        if self.pool is None:
            return self._run(spec, "cpu")
        try:
            worker = self.pool.acquire(spec.pinned)
        except NoSuchHardware as error:
            return infra_error(spec, time.monotonic(), str(error))
        try:
            return self._run(spec, worker.hardware, {"OVERNIGHT_HARDWARE": worker.hardware})
        finally:
            self.pool.release(worker)

    def _run(self, spec: TrialSpec, hardware: str, worker_env: dict[str, str] | None = None) -> TrialResult:
        workdir = self.trial_dir(spec.trial_id)
        started = time.monotonic()
        result_path = workdir / RESULT_FILE
        stop_strays(result_path)  # a resumed trial's processes may outlive the campaign that started them
        if reason := prepare_trial_folder(self.program, workdir, spec.files):
            return infra_error(spec, started, reason)

        env = {key: os.environ[key] for key in INHERITED_ENV if key in os.environ}
        env.update(trial_env(spec, **(worker_env or {}), OVERNIGHT_RESULT=str(result_path)))
        if self.box.bwrap:
            (workdir / BOX_TMP).mkdir()
            env["TMPDIR"] = str(workdir / BOX_TMP)
        log_path = workdir / RUN_LOG
        try:
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    self.box.wrap(_argv(spec.command), workdir),
                    cwd=workdir,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # its own process group, so a timeout kills every child too
                )
                process_started = time.monotonic()
                with self._live_lock:
                    self._live[process.pid] = process
                (workdir / PID_FILE).write_text(str(process.pid))
                timed_out, over_limit = False, ""
                try:
                    exit_code, over_limit = _watch(process, spec, workdir)
                except subprocess.TimeoutExpired:
                    timed_out = True
                    exit_code = _kill_group(process)
                finally:
                    wall_s = time.monotonic() - process_started  # the script's run, from start to end
                    _kill_leftovers(process.pid)
                    stop_strays(result_path)  # and those that left its process group
                    with self._live_lock:
                        self._live.pop(process.pid, None)
        except OSError as error:
            return infra_error(spec, started, f"could not start {spec.command!r}: {error}")
        if self._stopping.is_set():
            raise TrialInterrupted(f"trial {spec.trial_id} was stopped: the campaign was interrupted")

        facts = TrialFacts(
            exit_code=exit_code,
            timed_out=timed_out,
            over_limit=over_limit,
            log=log_path.read_text(errors="replace"),
            result_json=result_path.read_text(errors="replace") if result_path.exists() else None,
            changed_read_only=tuple(self.changed_read_only_files(workdir, editable=set(spec.files))),
            wall_s=wall_s,
        )
        placement = {"hardware": hardware, "sandbox": self.box.kind}
        return self._with_refused_writes(
            trial_result(spec, self.metric, facts, started, placement), facts.log
        )

    def _with_refused_writes(self, result: TrialResult, log: str) -> TrialResult:
        """A boxed trial that tried to write outside its folder says so: a tag, and its reason when it failed."""
        refused = refused_writes(log) if self.box.bwrap else []
        if not refused:
            return result
        placement = {**result.placement, "refused_writes": " | ".join(refused)}
        reason = result.reason
        if result.outcome is not Outcome.OK:
            reason = (
                f"{reason}; it tried to write outside its folder, which the sandbox refuses ({refused[0]})"
            )
        return replace(result, placement=placement, reason=reason)

    def changed_read_only_files(self, workdir: Path, editable: set[str]) -> list[str]:
        """Files of the program, other than the editable ones, that the run modified or removed."""
        return changed_files(
            self.fingerprints, file_hashes(workdir), editable | {RUN_LOG, RESULT_FILE, PID_FILE}
        )

    def interrupt(self) -> int:
        """Stop every running trial of this backend (SIGTERM, then SIGKILL); returns how many were running."""
        self._stopping.set()
        with self._live_lock:
            processes = list(self._live.values())
        for process in processes:
            _kill_group(process)
        return len(processes)


_SHELL_SYNTAX = set("|&;<>()$`*?[]{}~!#\n") | {"="}


def _argv(command: str) -> list[str]:
    """A plain command (`python train.py`, `uv run train.py`) runs as it is, `python` being the interpreter
    overnight runs in (with its torch); one with shell syntax (`A=1 python train.py`, `cd src && ...`) runs in
    /bin/sh, with that interpreter's folder first on PATH so that its `python` is the same one."""
    if _SHELL_SYNTAX & set(command):
        return ["/bin/sh", "-c", f'PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"; {command}']
    argv = shlex.split(command)
    if argv and argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    return argv


def _kill_group(process: subprocess.Popen) -> int | None:
    """SIGTERM the trial's process group, then SIGKILL what is left after a grace period."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        return process.wait(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()
    except ProcessLookupError:
        return process.wait()


WATCH_EVERY_S = 1.0


def _watch(process: subprocess.Popen, spec: TrialSpec, workdir: Path) -> tuple[int | None, str]:
    """Wait for the trial; past a memory or disk cap, kill its group and say why. TimeoutExpired past the timeout."""
    deadline = time.monotonic() + spec.timeout_s
    while True:
        try:
            return process.wait(timeout=max(0.0, min(WATCH_EVERY_S, deadline - time.monotonic()))), ""
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                raise
        if spec.max_memory_mb is not None:
            used = _group_rss_mb(process.pid)
            if used > spec.max_memory_mb:
                return _kill_group(
                    process
                ), f"killed: its processes used {used:.0f} MB, over the {spec.max_memory_mb:g} MB memory cap"
        if spec.max_disk_mb is not None:
            used = _folder_mb(workdir)
            if used > spec.max_disk_mb:
                return _kill_group(
                    process
                ), f"killed: its folder grew to {used:.0f} MB, over the {spec.max_disk_mb:g} MB disk cap"


def _group_rss_mb(pgid: int) -> float:
    """Resident memory of every process in a process group (Linux /proc), in MB."""
    page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20
    total = 0.0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # field 5 of stat: the process group
                with open(f"/proc/{entry.name}/statm") as statm:
                    total += int(statm.read().split()[1]) * page_mb
        except (OSError, IndexError, ValueError):
            continue  # it ended meanwhile
    return total


def _folder_mb(folder: Path) -> float:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total / 2**20


def _kill_leftovers(pgid: int) -> None:
    """Children the script left behind die with it."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
