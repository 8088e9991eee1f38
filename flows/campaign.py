"""A campaign: the baseline first, then waves until a budget ends, then the summary in MLflow."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import yaml
from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from flows.iteration import wave_flow
from overnight import agent_run, progress
from overnight.backends import close_backend, make_backend
from overnight.budget import budget_left, trials_left
from overnight.config import CampaignConfig, deadline_after, load_config, resolve_planner
from overnight.knobs import check_something_to_turn
from overnight.memory.store import Memory
from overnight.pipeline import Pipeline, PipelineStopped
from tasks.report import report

STOP_GRACE_S = 120  # how long an interrupted campaign waits for its waves to record what finished


def _run_name() -> str:
    """The campaign's name, as the Prefect UI lists the run ("campaign tiny-gpt-shakespeare")."""
    path = Path(flow_run.parameters.get("config_path", ""))
    try:
        name = (flow_run.parameters.get("overrides") or {}).get("name") or yaml.safe_load(path.read_text())[
            "name"
        ]
    except Exception:  # the flow itself reports a broken config; the run still needs a name
        name = path.name
    return f"campaign {name}"


@flow(name="campaign", flow_run_name=_run_name, validate_parameters=False)
def campaign_flow(config_path: str, overrides: dict | None = None) -> agent_run.CampaignSummary:
    """Run the campaign described by a YAML config (dotted-key overrides allowed); returns the agent run's summary."""
    started = datetime.now()
    config = load_config(Path(config_path), overrides)
    check_something_to_turn(config, resolve_planner(config)[0])  # before a night of empty waves
    memory = agent_run.open_memory(config)
    resumed = agent_run.resumable_agent_run(memory)  # a dead process's agent run: picked up where it stopped
    backend = make_backend(
        config, agent_run.work_root(config)
    )  # one for the campaign: its clusters stay warm
    agent_run_id, waves, baseline_done = _start_or_resume(config, memory, resumed)
    deadline_ts = (
        deadline_after(started, config.budget.deadline).timestamp() if config.budget.deadline else None
    )

    def run_wave(wave: int, size: int, pipeline: Pipeline | None = None) -> dict:
        # Never more trials at once than a wave has (the baseline's copies included): runs compared with each other
        # share the machine alike. A pipelined campaign's worker slots hold that limit, so its threads must not: a
        # finished trial keeps its thread while the next one launches on its worker (Slot.let_others_start), and
        # a batch larger than the wave (confirmations) would wait for a thread that waits for it (5 s each time).
        threads = None if pipeline else max(1, min(size, config.wave_size))  # None: one per task submitted
        runner = ThreadPoolTaskRunner(max_workers=threads)
        left = budget_left(config, memory, agent_run_id, wave - 1, deadline_ts) if wave else ""
        return wave_flow.with_options(task_runner=runner)(
            config=config,
            backend=backend,
            agent_run_id=agent_run_id,
            wave=wave,
            size=size,
            budget_left=left,
            deadline_ts=deadline_ts,
            pipeline=pipeline,
        )

    try:
        run_waves = _overlapping_waves if config.pipeline else _waves_in_turn
        waves, stopped_by = run_waves(
            config, memory, agent_run_id, waves, baseline_done, deadline_ts, run_wave
        )
        summary = agent_run.summarise(config, memory, agent_run_id, waves, stopped_by)
        agent_run.finish_agent_run(memory, summary)
    except BaseException as error:
        memory.finish_agent_run(agent_run_id, {"waves": waves}, f"The agent run failed: {error}", failed=True)
        raise
    finally:  # at the end, on failure and on Ctrl-C alike: no forgotten clusters
        _close(backend)
    report_state = report(config, memory, agent_run_id, return_state=True)
    if (
        report_state.is_failed()
    ):  # the night's results are recorded; a broken chart must not fail the campaign
        get_run_logger().warning(f"The morning report could not be written: {report_state.message}")
    return summary


def _start_or_resume(
    config: CampaignConfig, memory: Memory, resumed: agent_run.Resumption | None
) -> tuple[str, int, bool]:
    """The agent run this flow run drives (a new one, or the dead process's, taken over), the waves it has done
    after the baseline, and whether its baseline is done."""
    me = agent_run.this_process()
    if resumed is None:
        planner, _ = resolve_planner(config)
        name = f"{planner} {datetime.now():%Y-%m-%d %H:%M}"
        return (
            agent_run.start_agent_run(config, memory, name, orchestrator_run=str(flow_run.id or "")),
            0,
            False,
        )
    note = f"resumed {datetime.now():%Y-%m-%d %H:%M:%S} by {me}: {resumed.previous_owner} had died"
    memory.take_over(resumed.agent_run_id, me, note, flow_run=str(flow_run.id or ""))
    _mark_crashed(resumed.orchestrator_run, f"its process died; resumed by flow run {flow_run.id}")
    progress.emit("resumed", agent_run_id=resumed.agent_run_id, waves_done=resumed.waves_done)
    return resumed.agent_run_id, resumed.waves_done, resumed.baseline_done


def _close(backend) -> None:
    """Release the backend's clusters; a failure is logged with what to remove by hand, the night's results stand."""
    try:
        close_backend(backend)
    except Exception as error:
        get_run_logger().error(f"Teardown failed: {error}")


def _waves_in_turn(
    config: CampaignConfig,
    memory: Memory,
    agent_run_id: str,
    waves_done: int,
    baseline_done: bool,
    deadline_ts: float | None,
    run_wave: Callable[[int, int], dict],
) -> tuple[int, str]:
    """The baseline (unless a resumed agent run has it), then one wave after another until a budget ends. Returns
    the waves run after the baseline and the budget that ended them."""
    if not baseline_done:
        run_wave(0, config.baseline_repeats)
    waves = waves_done
    while True:
        size, stopped_by = trials_left(config, memory, agent_run_id, waves, deadline_ts)
        if size == 0:
            return waves, stopped_by
        waves += 1
        run_wave(waves, size)


def _overlapping_waves(
    config: CampaignConfig,
    memory: Memory,
    agent_run_id: str,
    waves_done: int,
    baseline_done: bool,
    deadline_ts: float | None,
    run_wave: Callable[[int, int, Pipeline], dict],
) -> tuple[int, str]:
    """`pipeline: true`: each wave runs in a thread of its own, the next one planned while the current one runs
    (overnight/pipeline.py says how they share the workers); wave 1 is planned while the baseline runs. Returns the
    waves run after the baseline and the budget that ended them; raises the first wave's failure after the other
    waves have recorded what finished."""
    first = waves_done + 1 if baseline_done else 0
    pipeline = Pipeline(config.wave_size, first_wave=first)
    threads: list[threading.Thread] = []
    errors: dict[int, BaseException] = {}
    waves, stopped_by = first - 1, ""

    def one_wave(wave: int, size: int) -> None:
        try:
            run_wave(wave, size, pipeline)
        except BaseException as error:
            errors[wave] = error
            pipeline.stop(f"stopped because wave {wave} failed: {error}")
        finally:
            pipeline.finished(wave)

    try:
        while pipeline.wait_for_room(waves):
            if waves < 0:
                size = config.baseline_repeats
            else:
                size, stopped_by = trials_left(
                    config, memory, agent_run_id, waves, deadline_ts, pipeline.waves_in_flight()
                )
                if size == 0:
                    break
            waves += 1
            pipeline.started(waves)
            # A copy of this thread's context: the wave's flow run is a subflow of the campaign's in Prefect.
            thread = threading.Thread(
                target=contextvars.copy_context().run, args=(one_wave, waves, size), name=f"wave-{waves}"
            )
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
    except BaseException:  # Ctrl-C: the trials are stopped already; each wave records what finished
        pipeline.stop("interrupted by the user")
        for thread in threads:
            thread.join(STOP_GRACE_S)
        raise
    if errors:  # the cause, not the waves it stopped
        causes = [e for _, e in sorted(errors.items()) if not isinstance(e, PipelineStopped)]
        raise (causes or list(errors.values()))[0]
    return waves, stopped_by


def _mark_crashed(flow_run_id: str, why: str) -> None:
    """The dead process's flow run, its wave subflows and their task runs, left Running in Prefect, become Crashed."""
    if not flow_run_id:
        return
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.states import Crashed

    try:
        with get_client(sync_client=True) as client:
            children = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])
                )
            )
            flow_runs = [client.read_flow_run(flow_run_id), *children]
            tasks = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id={"any_": [r.id for r in flow_runs]})
            )
            for task in tasks:
                if task.state and not task.state.is_final():
                    client.set_task_run_state(task.id, Crashed(message=why), force=True)
            for run in flow_runs:
                if run.state and not run.state.is_final():
                    client.set_flow_run_state(run.id, Crashed(message=why), force=True)
    except Exception as error:  # Prefect's record is cosmetic here; the resumed campaign must go on
        get_run_logger().warning(f"Could not mark the dead flow run {flow_run_id} crashed: {error}")
