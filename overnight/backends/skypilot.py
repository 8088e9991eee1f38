"""SkyPilot backend: trials run as jobs on a pool of warm clusters (Kubernetes, clouds, Slurm).

A cluster is launched once (its setup runs once); after that, trials are queued onto idle clusters with `sky.exec`,
each with its own workdir snapshot and envs, back to back. When the campaign ends, fails or is interrupted, every
cluster it launched is torn down (or stopped, or kept) as configured, so no cluster is forgotten.

SkyPilot is imported lazily: it costs seconds to import and is an optional extra.
"""

from __future__ import annotations

import io
import re
import shlex
import threading
import time
from pathlib import Path

from overnight.backends.base import (
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
from overnight.config import BackendSettings, CampaignConfig, ConfigError, SkyResources
from overnight.program import changed_files, file_hashes
from overnight.trial import Outcome, TrialFacts, TrialResult, TrialSpec, tail

INSTALL_HINT = "pip install 'overnight[skypilot]'"
RESULT_FILE = ".overnight_result.json"
# Lines the job's wrapper prints after the script, so that the log alone carries the result file, the hashes of the
# read-only files and, last, the exit code (the engine never trusts the script to report them). The exit code line
# comes last: where it is in the log, the wrapper ran to its end and the hashes before it are complete.
MARK = "[overnight]"
_EXIT = re.compile(rf"^{re.escape(MARK)} exit code (-?\d+)\s*$", re.M)
_RESULT = re.compile(rf"^{re.escape(MARK)} result (.*)$", re.M)
_HASH = re.compile(rf"^{re.escape(MARK)} sha256 ([0-9a-f]{{64}})\s+\*?(.+?)\s*$", re.M)
# What SkyPilot adds to each line of a job's log: colours, and a "(task-name, pid=1234) " prefix.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_PREFIX = re.compile(r"^\([^()\n]*pid=\d+[^()\n]*\) ?", re.M)
# The job states in which the script itself never ran to completion through no fault of its own.
_INFRA_STATES = {"FAILED_SETUP", "FAILED_DRIVER", "FAILED_PRECHECKS"}


def import_sky():
    """The `sky` package, or a clear error naming the install command."""
    try:
        import sky
    except ImportError as error:
        raise ConfigError(
            f"backend.kind is 'skypilot' but SkyPilot cannot be imported ({error}). Install it: {INSTALL_HINT}"
        ) from None
    return sky


def check_resources(resources: dict[str, SkyResources]) -> None:
    """Bad resources fail before anything launches, with SkyPilot's own message naming the config key."""
    sky = import_sky()
    for key, value in resources.items():
        try:
            sky.Resources.from_yaml_config(value.to_sky())
        except Exception as error:
            raise ConfigError(f"{key}: {error}") from None


def stage_resources(config: CampaignConfig) -> dict[str, SkyResources]:
    """The resources of each stage's clusters, by config key: the backend's, unless a stage names its own."""
    found = {"backend.resources": config.backend.resources}
    for stage in ("screen", "confirm"):
        own = getattr(config.decision, stage).resources
        if own is not None:
            found[f"decision.{stage}.resources"] = own
    return found


def trial_task_config(
    spec: TrialSpec, workdir: Path, settings: BackendSettings, read_only: list[str], resources: SkyResources
) -> dict[str, object]:
    """The SkyPilot task (YAML form) that runs one trial: its folder, its envs, the cluster's resources and setup."""
    hashes = " ".join(shlex.quote(name) for name in read_only)
    run = "\n".join(
        [
            f'export OVERNIGHT_RESULT="$PWD/{RESULT_FILE}"',
            # The script runs as a job of its own process group (set -m; SkyPilot runs this with `bash -i`, with
            # or without job control), killed when it ends, so that nothing it left behind outlives the trial, as
            # on the local backend: a child holding the job's output would keep the job running until the hard
            # timeout. A cancel's SIGTERM is passed on to the script's group.
            "set -m",
            f"bash -c {shlex.quote(spec.command)} < /dev/null &",
            "pid=$!",
            "set +m",
            "trap 'kill -TERM -- -$pid 2>/dev/null; wait $pid' TERM INT HUP",
            "wait $pid",
            "code=$?",
            "kill -KILL -- -$pid 2>/dev/null",
            f'if [ -f {RESULT_FILE} ]; then echo "{MARK} result $(tr -d "\\n" < {RESULT_FILE})"; fi',
            f"sha256sum -- {hashes} 2>/dev/null | sed 's/^/{MARK} sha256 /'" if read_only else ":",
            f'echo "{MARK} exit code $code"',
            "exit $code",
        ]
    )
    task: dict[str, object] = {
        "name": spec.trial_id,
        "workdir": str(workdir),
        "envs": trial_env(spec),  # OVERNIGHT_RESULT is set by the run script: only the cluster knows the path
        "resources": resources.to_sky(),
        "run": run,
    }
    if settings.setup:
        task["setup"] = "\n".join(settings.setup)
    return task


def cluster_names(prefix: str, campaign: str, size: int) -> list[str]:
    """Valid cluster names (lowercase letters, digits, dashes), stable for a campaign so a rerun reuses them."""
    slug = re.sub(r"[^a-z0-9]+", "-", campaign.lower()).strip("-")[:24].strip("-") or "campaign"
    return [f"{prefix}-{slug}-{i}" for i in range(size)]


class SkyPilotBackend(Backend):
    name = "skypilot"

    def __init__(self, config: CampaignConfig, work_root: Path):
        resources = stage_resources(config)
        check_resources(resources)
        self.program = config.program
        self.work_root = work_root
        self.metric = config.metric.name
        self.settings = config.backend
        self.fingerprints = file_hashes(config.program)
        self.read_only = sorted(set(self.fingerprints) - set(config.editable))
        # One pool of clusters per distinct stage resources: screening on cheap GPUs, confirming on the target ones.
        size = config.backend.pool_size or max(config.wave_size, config.baseline_repeats)
        screen, confirm = config.stage("screen").resources, config.stage("confirm").resources
        prefix = config.backend.cluster_prefix
        self.resources = {"screen": screen, "confirm": confirm}
        self.pools = {"screen": WorkerPool([Worker(n) for n in cluster_names(prefix, config.name, size)])}
        if confirm == screen:
            self.pools["confirm"] = self.pools["screen"]
        else:
            names = cluster_names(f"{prefix}-c", config.name, min(size, config.decision.confirm_runs * 2))
            self.pools["confirm"] = WorkerPool([Worker(n) for n in names])
        self._stopping = threading.Event()

    def where(self, trial_id: str) -> str:
        return f"skypilot {self.settings.resources.infra or 'any infra'}"

    # --- one trial ---------------------------------------------------------------------------------------------

    def run(self, spec: TrialSpec) -> TrialResult:
        started = time.monotonic()
        workdir = self.work_root / spec.trial_id
        if reason := prepare_trial_folder(self.program, workdir, spec.files):
            return infra_error(spec, started, reason)
        pool = self.pools.get(spec.stage, self.pools["screen"])
        try:
            cluster = pool.acquire(spec.pinned)
        except NoSuchHardware as error:
            return infra_error(spec, started, str(error))
        healthy = False
        try:
            result, healthy = self._run_on(cluster, spec, workdir, started)
        finally:
            pool.release(cluster, healthy)
        if self._stopping.is_set():
            raise TrialInterrupted(f"trial {spec.trial_id} was stopped: the campaign was interrupted")
        return result

    def _run_on(
        self, cluster: Worker, spec: TrialSpec, workdir: Path, started: float
    ) -> tuple[TrialResult, bool]:
        sky = import_sky()
        resources = self.resources.get(spec.stage, self.resources["screen"])
        task = sky.Task.from_yaml_config(
            trial_task_config(spec, workdir, self.settings, self.read_only, resources)
        )
        placement = {"cluster": cluster.name}
        # Submit: launch (provision + setup + run) on a cold cluster, exec (sync workdir + run) on a warm one.
        try:
            if cluster.up:
                job_id, handle = sky.get(sky.exec(task, cluster_name=cluster.name))
            else:
                cluster.ever_launched = True
                job_id, handle = sky.get(
                    sky.launch(
                        task,
                        cluster_name=cluster.name,
                        idle_minutes_to_autostop=self.settings.autostop_minutes,
                    )
                )
                cluster.up = True
                self._learn_hardware(cluster, handle)
        except (
            Exception
        ) as error:  # no capacity, quota, preemption, an unreachable cluster: never the trial's fault
            verb = "run on" if cluster.up else "launch"
            return infra_error(
                spec, started, f"SkyPilot could not {verb} {cluster.name}: {_one_line(error)}", placement
            ), False
        if job_id is None:
            return infra_error(spec, started, f"SkyPilot returned no job on {cluster.name}", placement), False
        cluster.job_id = job_id
        placement.update(job_id=str(job_id), hardware=cluster.hardware, accelerator=cluster.accelerator)
        if self._stopping.is_set():  # Ctrl-C came while the job was being submitted: it must not run on
            self._cancel(cluster.name, job_id)
            return infra_error(spec, started, "the campaign was interrupted", placement), True

        # Follow the job to its end; past the timeout it is cancelled.
        timed_out = threading.Event()

        def cancel_on_timeout() -> None:
            timed_out.set()
            self._cancel(cluster.name, job_id)

        timer = threading.Timer(spec.timeout_s, cancel_on_timeout)
        timer.daemon = True
        log = io.StringIO()
        job_started = time.monotonic()
        timer.start()
        try:
            sky.tail_logs(cluster.name, job_id, follow=True, output_stream=log)
            statuses = sky.get(sky.job_status(cluster.name, [job_id]))
        except Exception as error:  # the cluster died under the trial
            return infra_error(
                spec, started, f"lost {cluster.name} while job {job_id} ran: {_one_line(error)}", placement
            ), False
        finally:
            timer.cancel()
        job_seconds = time.monotonic() - job_started
        state = _state_name(statuses.get(job_id) if isinstance(statuses, dict) else None)
        placement["job_status"] = state

        text = clean_log(log.getvalue())
        (workdir / "run.log").write_text(text)
        cost = None if cluster.hourly_usd is None else round(cluster.hourly_usd * job_seconds / 3600, 6)
        result = self._result(spec, text, state, timed_out.is_set(), started, placement, cost, job_seconds)
        # A job that failed for infrastructure reasons leaves the cluster suspect: relaunch it next time.
        return result, result.outcome is not Outcome.INFRA_ERROR

    def _result(
        self,
        spec: TrialSpec,
        text: str,
        state: str,
        timed_out: bool,
        started: float,
        placement: dict,
        cost_usd: float | None = None,
        job_seconds: float | None = None,
    ) -> TrialResult:
        """The trial's result from its job's log and final state: an infra error, or what the judge makes of it.
        `job_seconds`: the job's run as the engine followed it (submitted to the warm cluster, to its log's end)."""
        if state in _INFRA_STATES:
            return infra_error(
                spec, started, f"the job ended {state} on {placement['cluster']}", placement, tail(text)
            )
        facts = self._facts(text, state, timed_out, job_seconds)
        if facts.ended_early and not timed_out and not self._stopping.is_set():
            # The engine cancels a job only past its timeout or on Ctrl-C; any other end before the script's is the
            # infrastructure's doing (a scancel, a node lost, a preemption), not the experiment's: run it again.
            return infra_error(
                spec,
                started,
                f"the job ended {facts.ended_early} on {placement['cluster']} before the script finished, "
                "and the engine did not cancel it (killed from outside: scancel, a lost node, a preemption)",
                placement,
                tail(facts.log),
            )
        return trial_result(spec, self.metric, facts, started, placement, cost_usd)

    def _facts(self, text: str, state: str, timed_out: bool, wall_s: float | None = None) -> TrialFacts:
        """What a job's log and final state say of the run. The wrapper's last line is the exit code: without it the
        job ended before the script did (cancelled, killed), and its read-only files were never hashed, so none
        counts as changed (the engine cannot know)."""
        exit_match = _EXIT.search(text)
        result_json = _RESULT.search(text)
        finished = exit_match is not None
        found = {path: digest for digest, path in _HASH.findall(text)}
        expected = {path: self.fingerprints[path] for path in self.read_only}
        return TrialFacts(
            exit_code=int(exit_match.group(1)) if finished else None,
            timed_out=timed_out,
            log=_without_marks(text),
            result_json=result_json.group(1) if result_json else None,
            changed_read_only=tuple(changed_files(expected, found, set())) if finished else (),
            ended_early="" if finished else (state or "unknown"),
            wall_s=wall_s,
        )

    def _learn_hardware(self, cluster: Worker, handle) -> None:
        """What the cluster really runs on, and its price per hour where known."""
        resources = getattr(handle, "launched_resources", None)
        accelerators = getattr(resources, "accelerators", None) or {}
        if accelerators:
            kind, count = next(iter(accelerators.items()))
            cluster.hardware, cluster.accelerator = kind, f"{kind}:{count:g}"
        else:
            cluster.hardware, cluster.accelerator = "cpu", ""
        if self.settings.price_per_hour is not None:
            cluster.hourly_usd = self.settings.price_per_hour
        else:
            try:
                cluster.hourly_usd = float(resources.get_cost(3600))
            except Exception:  # not in SkyPilot's catalog (e.g. Slurm, Kubernetes): the cost stays unknown
                cluster.hourly_usd = None

    # --- the pool's life -----------------------------------------------------------------------------------------

    def _cancel(self, cluster_name: str, job_id: int) -> None:
        sky = import_sky()
        try:
            sky.get(sky.cancel(cluster_name, job_ids=[job_id]))
        except Exception:  # the job may have ended meanwhile; following its log ends either way
            pass

    def _distinct_pools(self) -> list[WorkerPool]:
        return list({id(pool): pool for pool in self.pools.values()}.values())

    def interrupt(self) -> int:
        self._stopping.set()
        jobs = [job for pool in self._distinct_pools() for job in pool.running_jobs()]
        for cluster_name, job_id in jobs:
            self._cancel(cluster_name, job_id)
        return len(jobs)

    def close(self) -> None:
        """Tear down (or stop) every cluster this campaign launched, as configured; all at once."""
        launched = [c.name for pool in self._distinct_pools() for c in pool.workers if c.ever_launched]
        if not launched or self.settings.teardown == "keep":
            return
        sky = import_sky()
        verb = sky.down if self.settings.teardown == "down" else sky.stop
        failures: list[str] = []

        def finish(name: str) -> None:
            try:
                sky.get(verb(name))
            except Exception as error:
                failures.append(f"{name}: {_one_line(error)}")

        threads = [threading.Thread(target=finish, args=(name,)) for name in launched]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise RuntimeError(
                f"could not {self.settings.teardown} cluster(s) {'; '.join(failures)}. "
                f"Check `sky status` and remove them with `sky down <name>`."
            )


def clean_log(text: str) -> str:
    """The job's output as the script printed it: SkyPilot's colours and line prefixes removed."""
    return _PREFIX.sub("", _ANSI.sub("", text))


def _state_name(status) -> str:
    return getattr(status, "value", None) or (str(status) if status is not None else "")


def _one_line(error: Exception) -> str:
    """The error in one line, without the colours SkyPilot puts in its messages (they reach MLflow's reason)."""
    text = " ".join(_ANSI.sub("", str(error)).split())
    return f"{type(error).__name__}: {text[:500]}" if text else type(error).__name__


def _without_marks(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith(MARK))
