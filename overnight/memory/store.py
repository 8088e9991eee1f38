"""MLflow as the campaign's memory. Every MLflow call of overnight goes through this module.

Layout: experiment = campaign; top-level run = agent run (one execution of the campaign); nested run = wave; nested in
the wave = trial. The champion is an experiment tag pointing at a trial run whose artifacts hold its full files.

All calls go through one lock: MLflow on SQLite loses writes beyond about a dozen concurrent writers, and trials finish
from many threads at once. One writer at a time costs little (tens of ms per trial) and loses nothing.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
import time
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlparse

from mlflow.entities import Metric, Param, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.file_utils import local_file_uri_to_path

from overnight.memory import lineage
from overnight.memory.records import (
    CHAMPION_TAG,
    FLOW_RUN,
    KIND,
    NIGHT,
    NOTE,
    OUTCOME,
    OWNER,
    PARENT_RUN,
    PREFIX,
    STATUS,
    SUGGESTION,
    TAKEN,
    AgentRunRecord,
    CampaignStatus,
    ChampionVersion,
    Run,
    TrialRecord,
    campaign_status,
    last_night,
    llm_totals,
    trial_record,
)
from overnight.memory.snapshot import MemorySnapshot, failures, rank
from overnight.memory.sql import read_runs
from overnight.pricing import Usage
from overnight.secrets import scrub
from overnight.trial import Outcome, TrialResult

# A repair call's usage metrics on the wave run are repair_*, as a plan's are plan_*; overnight.repair_of and
# overnight.repaired_by link a crashed trial and its repair.
REPAIR_CALL, REPAIR_OF, REPAIRED_BY = "repair", "repair_of", "repaired_by"

# MLflow's own record of an experiment's type: its UI's experiment-type selector writes this tag ("Machine learning" =
# custom_model_development, "GenAI apps & agents" = genai_development). MLflow 3.17's UI does not read it while its
# workflow-based navigation is on (hard-coded on in the OSS build): there the view follows the URL's
# ?workflowType=machine_learning, else the browser's last choice of "GenAI" / "Model training" (GenAI at first), so
# every link overnight prints carries that parameter (ui_url). The tag declares the campaign's type to the MLflow
# builds and tools that do read it.
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
ML_VIEW = "workflowType=machine_learning"


class Memory:
    def __init__(
        self, tracking_uri: str, campaign: str, goal: str, metric: str, artifact_root: Path | None = None
    ):
        os.environ.setdefault(
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"
        )  # no tqdm bars in the CLI's output
        self.tracking_uri = tracking_uri
        self.goal = goal
        self.metric = metric
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self._lock = threading.RLock()
        self._sql: tuple | None = None  # (the SQL store or None), once looked up
        self._artifact_uris: dict[str, str] = {}  # run id -> artifact URI (fixed when the run is created)
        experiment = self.client.get_experiment_by_name(campaign)
        if experiment is None:
            location = None
            if artifact_root is not None and not tracking_uri.startswith(
                ("http://", "https://", "databricks")
            ):
                artifact_root.mkdir(parents=True, exist_ok=True)
                location = artifact_root.resolve().as_uri()
            experiment_id = self.client.create_experiment(
                campaign, artifact_location=location, tags={EXPERIMENT_KIND: MODEL_TRAINING}
            )
        else:
            experiment_id = experiment.experiment_id
            if experiment.tags.get(EXPERIMENT_KIND) is None:  # a campaign from before the tag was set
                self.client.set_experiment_tag(experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)
        self.experiment_id: str = experiment_id

    # --- writing -------------------------------------------------------------------------------------------------

    def start_agent_run(
        self, name: str, params: dict[str, object], description: str = "", owner: str = ""
    ) -> str:
        """The top-level run of one execution; `owner` ("host:pid") tells a later run whether it is still alive."""
        with self._lock:
            run = self.client.create_run(
                self.experiment_id,
                run_name=name,
                tags={KIND: "agent_run", STATUS: "running", NOTE: description, OWNER: owner},
            )
            self._log_params(run.info.run_id, params)
            return run.info.run_id

    def take_over(self, agent_run_id: str, owner: str, note: str, flow_run: str = "") -> None:
        """This process resumes an agent run whose owner died; the note says when and why."""
        with self._lock:
            self.client.set_tag(agent_run_id, OWNER, owner)
            self.client.set_tag(agent_run_id, FLOW_RUN, flow_run)
            self.client.set_tag(agent_run_id, PREFIX + "resumed", note[:4000])

    def start_wave(self, agent_run_id: str, wave: int) -> str:
        """The wave's run; a wave that was started by a process that died is picked up again (idempotent)."""
        existing = self.wave_run(agent_run_id, wave)
        if existing and existing[1] == "RUNNING":
            return existing[0]
        with self._lock:
            run = self.client.create_run(
                self.experiment_id,
                run_name=f"wave {wave}" if wave else "baseline",
                tags={
                    KIND: "wave",
                    PARENT_RUN: agent_run_id,
                    PREFIX + "wave": str(wave),
                },
            )
            return run.info.run_id

    def start_trial(
        self,
        *,
        wave_run_id: str,
        agent_run_id: str,
        trial_id: str,
        wave: int,
        hypothesis: str,
        rationale: str,
        params: dict[str, object],
        expected: str = "",
        source: str = "",
        files: dict[str, str],
        diff: str,
        change: str = "",
        fingerprint: str,
        parent_champion: str,
        role: str = "candidate",
        seed: int = 0,
        budget_s: float = 0.0,
        measures: str = "",
        pinned: str = "",
        factors: dict[str, tuple[str, int]] | None = None,
    ) -> str:
        """Record a trial as it is dispatched, with its full files: the champion can be rebuilt from them alone.

        role: baseline | candidate | confirmation | champion (a re-measurement of the champion); `measures` is the
        run id of the trial a confirmation or champion run measures again, with a new seed; `change` is the diff in
        one line (proposals.compact_change), as a planner's history shows it."""
        with self._lock:
            run = self.client.create_run(
                self.experiment_id,
                run_name=trial_id,
                tags={
                    **_trial_tags(wave_run_id, agent_run_id, trial_id, wave, hypothesis),
                    STATUS: "running",
                    PREFIX + "rationale": rationale[:4000],
                    PREFIX + "expected": expected[:1000],
                    PREFIX + "change": change[:1000],
                    PREFIX + "proposed_by": source,
                    PREFIX + "fingerprint": fingerprint,
                    PREFIX + "parent_champion": parent_champion,
                    PREFIX + "role": role,
                    PREFIX + "seed": str(seed),
                    PREFIX + "budget_s": repr(float(budget_s)),
                    PREFIX + "measures": measures,
                    PREFIX + "pinned": pinned,
                    PREFIX + "factors": json.dumps(factors or {}),
                    NOTE: f"{hypothesis}\n\n{rationale}".strip(),
                },
            )
            run_id = run.info.run_id
            self._log_params(run_id, params)
            self.client.log_text(run_id, diff or "(no change: the champion as it is)\n", "diff.patch")
            for path, text in files.items():
                self.client.log_text(run_id, text, f"files/{path}")
            return run_id

    def record_invalid(
        self,
        *,
        wave_run_id: str,
        agent_run_id: str,
        trial_id: str,
        wave: int,
        hypothesis: str,
        reason: str,
        proposal_json: str,
    ) -> str:
        """A proposal that failed validation: recorded with the reason, never dispatched."""
        with self._lock:
            run = self.client.create_run(
                self.experiment_id,
                run_name=trial_id,
                tags={
                    **_trial_tags(wave_run_id, agent_run_id, trial_id, wave, hypothesis),
                    STATUS: "finished",
                    OUTCOME: Outcome.INVALID.value,
                    PREFIX + "reason": reason[:4000],
                    NOTE: f"{hypothesis}\n\nInvalid: {reason}",
                },
            )
            self.client.log_text(run.info.run_id, proposal_json, "proposal.json")
            self.client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
            return run.info.run_id

    def record_dispatch(self, run_id: str, where: str) -> None:
        """Where the trial runs (backend, host, folder or cluster), as soon as it starts."""
        with self._lock:
            self.client.set_tag(run_id, PREFIX + "where", where)

    def finish_trial(self, run_id: str, result: TrialResult) -> None:
        with self._lock:
            metrics = {k: v for k, v in result.metrics.items() if math.isfinite(v)}
            metrics["duration_s"] = result.duration_s
            if result.wall_s is not None:  # the engine's clock wins over a script line of that name
                metrics["wall_s"] = result.wall_s
            self.client.log_batch(run_id, metrics=_metric_list(metrics))
            self.client.set_tag(run_id, OUTCOME, result.outcome.value)
            self.client.set_tag(run_id, STATUS, "finished")
            if result.reason:
                self.client.set_tag(run_id, PREFIX + "reason", scrub(result.reason)[:4000])
            if result.exit_code is not None:
                self.client.set_tag(run_id, PREFIX + "exit_code", str(result.exit_code))
            for key, value in result.placement.items():
                self.client.set_tag(run_id, PREFIX + key, str(value))
            if result.cost_usd is not None:
                self.client.log_metric(run_id, "compute_usd", result.cost_usd)
            self.client.log_text(run_id, scrub(result.log_tail) or "(no output)\n", "log_tail.txt")
            status = RunStatus.FINISHED if result.outcome is Outcome.OK else RunStatus.FAILED
            self.client.set_terminated(run_id, RunStatus.to_string(status))

    def record_decision(
        self, run_id: str, decision: str, reason: str, numbers: dict[str, float | int | str] | None = None
    ) -> None:
        """A trial's decision, its reason, and the verdict's numbers (metrics `<stage>_gain`, `_se`, `_p_value`...)."""
        with self._lock:
            self.client.set_tag(run_id, PREFIX + "decision", decision)
            self.client.set_tag(run_id, PREFIX + "decision_reason", reason[:4000])
            if numbers:
                stage = numbers.get("stage", "verdict")
                values = {
                    f"{stage}_{key}": float(value)
                    for key, value in numbers.items()
                    if isinstance(value, (int, float))
                    and not isinstance(value, bool)
                    and math.isfinite(value)
                }
                self.client.log_batch(run_id, metrics=_metric_list(values))
                self.client.set_tag(run_id, PREFIX + "rule", str(numbers.get("rule", "")))
                if "error_control" in numbers:
                    self.client.set_tag(run_id, PREFIX + "error_control", str(numbers["error_control"]))

    def record_effects(self, wave_run_id: str, effects: list[dict]) -> None:
        """A factorial wave's main effects and interactions: metrics effect_<key>, effect_<key>_se, effects.json."""
        with self._lock:
            values = {}
            for effect in effects:
                values[f"effect_{effect['key']}"] = effect["estimate"]
                values[f"effect_{effect['key']}_se"] = effect["se"]
            self.client.log_batch(wave_run_id, metrics=_metric_list(values))
            self.client.log_text(wave_run_id, json.dumps(effects, indent=2), "effects.json")

    def set_champion(self, run_id: str, previous: str, gain: float | None = None, why: str = "") -> None:
        """Crown a trial; its parent link makes the champion's lineage walkable. `gain`: its confirmed improvement
        over the previous champion (metric units, positive = better), `why`: the verdict behind it."""
        with self._lock:
            if gain is not None:
                self.client.log_metric(run_id, "confirmed_gain", gain)
            if why:
                self.client.set_tag(run_id, lineage.WHY, why[:4000])
            self.client.set_tag(run_id, lineage.PARENT, previous)
            self.client.set_tag(run_id, lineage.CROWNED, "true")
            self.client.set_experiment_tag(self.experiment_id, CHAMPION_TAG, run_id)

    def record_noise_floor(self, agent_run_id: str, floor, wave: int) -> None:
        """The noise floor as it stands after a wave (metrics noise_sigma, noise_n, noise_dof at step = wave)."""
        with self._lock:
            self.client.log_batch(agent_run_id, metrics=_metric_list(floor.as_dict(), step=wave))

    def record_plan(self, wave_run_id: str, note: str, usage: Usage, cost_usd: float, planner: str) -> None:
        """What planning the wave cost, and the planner's note (e.g. a fallback to the offline planner)."""
        with self._lock:
            self.client.set_tag(wave_run_id, PREFIX + "planner", planner)
            if note:
                self.client.set_tag(wave_run_id, PREFIX + "planner_fallback", "true")
                self.client.set_tag(wave_run_id, PREFIX + "planner_note", note[:4000])
            self.client.log_batch(wave_run_id, metrics=_metric_list(_usage_metrics("plan", usage, cost_usd)))

    def record_memory_queries(
        self, wave_run_id: str, queries: list[dict], usage: Usage, cost_usd: float
    ) -> None:
        """The memory queries the planner made while planning the wave (part of the plan's usage, not added to it):
        metrics `plan_memory_queries` and `plan_query_*` tokens and dollars, and memory_queries.json with each one."""
        metrics = {"plan_memory_queries": len(queries)}
        metrics.update(
            {
                f"plan_query_{k.removeprefix('plan_')}": v
                for k, v in _usage_metrics("plan", usage, cost_usd).items()
            }
        )
        with self._lock:
            self.client.log_batch(wave_run_id, metrics=_metric_list(metrics))
            self.client.log_text(wave_run_id, json.dumps(queries, indent=2), "memory_queries.json")

    def record_reflection_usage(self, wave_run_id: str, usage: Usage, cost_usd: float) -> None:
        with self._lock:
            self.client.log_batch(
                wave_run_id, metrics=_metric_list(_usage_metrics("reflect", usage, cost_usd))
            )

    # --- repairs: a trial that crashed before its first result, and the repair its planner gave in the wave --------

    def repair_links(self, run_id: str) -> dict[str, str]:
        """Who proposed a trial and how it is tied to a repair: {proposed_by, repair_of, repaired_by} ("" if unset;
        repaired_by is "none" where no repair came)."""
        with self._lock:
            tags = self.client.get_run(run_id).data.tags
        return {key: tags.get(PREFIX + key, "") for key in ("proposed_by", REPAIR_OF, REPAIRED_BY)}

    def link_repair(self, crashed_run_id: str, repair_run_id: str) -> None:
        """Tie a crashed trial and its repair both ways (tags overnight.repaired_by and overnight.repair_of)."""
        with self._lock:
            self.client.set_tag(crashed_run_id, PREFIX + REPAIRED_BY, repair_run_id)
            self.client.set_tag(repair_run_id, PREFIX + REPAIR_OF, crashed_run_id)

    def record_no_repair(self, wave_run_id: str, crashed_run_id: str, note: str) -> None:
        """No repair came for a crashed trial: it is marked handled, and the reason is a line of the wave's
        overnight.repair_note."""
        with self._lock:
            self.client.set_tag(crashed_run_id, PREFIX + REPAIRED_BY, "none")
            earlier = self.client.get_run(wave_run_id).data.tags.get(PREFIX + "repair_note", "")
            lines = "\n".join(line for line in (earlier, note.splitlines()[0] if note else "") if line)
            self.client.set_tag(wave_run_id, PREFIX + "repair_note", lines[-4000:])

    def record_repair_usage(self, wave_run_id: str, usage: Usage, cost_usd: float) -> None:
        """A repair call's tokens and dollars, added to the wave's repair_* metrics (a wave may repair several)."""
        with self._lock:
            so_far = self.client.get_run(wave_run_id).data.metrics
            metrics = {
                key: so_far.get(key, 0.0) + value
                for key, value in _usage_metrics(REPAIR_CALL, usage, cost_usd).items()
            }
            self.client.log_batch(wave_run_id, metrics=_metric_list(metrics))

    def add_suggestion(self, text: str) -> str:
        """Queue a person's hypothesis for the next wave (an experiment tag, so it outlives any run)."""
        key = f"{SUGGESTION}{time.time_ns()}"
        with self._lock:
            self.client.set_experiment_tag(self.experiment_id, key, text[:4000])
        return key

    def take_suggestion(self, key: str, note: str) -> None:
        with self._lock:
            self.client.set_experiment_tag(self.experiment_id, f"{key}{TAKEN}", note[:4000])

    def finish_wave(
        self, wave_run_id: str, metrics: dict[str, float], reflection: str, table: list[dict]
    ) -> None:
        with self._lock:
            self.client.log_batch(wave_run_id, metrics=_metric_list(metrics))
            self.client.log_text(wave_run_id, reflection, "reflection.md")
            self.client.log_text(wave_run_id, json.dumps(table, indent=2), "trials.json")
            self.client.set_tag(wave_run_id, NOTE, reflection[:5000])
            self.client.set_terminated(wave_run_id)

    def abandon_wave(self, wave_run_id: str, reason: str) -> None:
        """A wave that died: its unfinished trials are marked killed with the reason; nothing stays RUNNING."""
        with self._lock:
            children = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`{PARENT_RUN}` = '{wave_run_id}' and attributes.status = 'RUNNING'",
                max_results=10000,
            )
            for run in children:
                self.client.set_tag(run.info.run_id, STATUS, "killed")
                self.client.set_tag(run.info.run_id, PREFIX + "reason", f"the wave stopped: {reason}"[:4000])
                self.client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
            self.client.set_tag(wave_run_id, NOTE, f"The wave stopped: {reason}"[:5000])
            self.client.set_terminated(wave_run_id, RunStatus.to_string(RunStatus.FAILED))

    def finish_agent_run(
        self, run_id: str, metrics: dict[str, float], summary: str, failed: bool = False
    ) -> None:
        with self._lock:
            self.client.log_batch(run_id, metrics=_metric_list(metrics))
            self.client.log_text(run_id, summary, "summary.md")
            self.client.set_tag(run_id, STATUS, "failed" if failed else "finished")
            self.client.set_terminated(
                run_id, RunStatus.to_string(RunStatus.FAILED if failed else RunStatus.FINISHED)
            )

    def log_report(self, agent_run_id: str, markdown: str, chart: Path) -> None:
        with self._lock:
            self.client.log_text(agent_run_id, markdown, "report/report.md")
            self.client.log_artifact(agent_run_id, str(chart), "report")

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        """Tags on any run of the campaign (keys under `overnight.`), e.g. a warning about the program."""
        with self._lock:
            for key, value in tags.items():
                self.client.set_tag(run_id, key, scrub(str(value))[:4000])

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        """Metrics on any run of the campaign (finite values only)."""
        values = {k: float(v) for k, v in metrics.items() if math.isfinite(v)}
        with self._lock:
            self.client.log_batch(run_id, metrics=_metric_list(values, step=step))

    def _log_params(self, run_id: str, params: dict[str, object]) -> None:
        items = [Param(str(k), str(v)[:6000]) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(run_id, params=items[start : start + 100])

    # --- reading -------------------------------------------------------------------------------------------------

    def unfinished_agent_run(self) -> AgentRunRecord | None:
        """The newest agent run still marked running: its process is alive, or it died and can be resumed."""
        run = self._running_agent_run()
        if run is None:
            return None
        return AgentRunRecord(
            run.info.run_id,
            run.info.run_name or "",
            run.info.start_time,
            dict(run.data.params),
            dict(run.data.metrics),
            owner=run.data.tags.get(OWNER, ""),
            flow_run=run.data.tags.get(FLOW_RUN, run.data.params.get("prefect_flow_run_id", "")).strip("-"),
        )

    def _running_agent_run(self):
        """The newest agent run MLflow marks RUNNING (an MLflow Run), or None."""
        with self._lock:
            runs = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`{KIND}` = 'agent_run' and attributes.status = 'RUNNING'",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
        return runs[0] if runs else None

    def agent_run_on(self, night: date | None = None) -> AgentRunRecord:
        """The newest agent run, or the newest one started on the given date."""
        with self._lock:
            runs = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`{KIND}` = 'agent_run'",
                order_by=["attributes.start_time DESC"],
                max_results=1000,
            )
        for run in runs:
            started = datetime.fromtimestamp(run.info.start_time / 1000).date()
            if night is None or started == night:
                return AgentRunRecord(
                    run.info.run_id,
                    run.info.run_name or "",
                    run.info.start_time,
                    dict(run.data.params),
                    dict(run.data.metrics),
                    night=run.data.tags.get(NIGHT, ""),
                )
        raise LookupError(f"no agent run {'on ' + str(night) if night else 'yet'} in this campaign")

    def wave_run(self, agent_run_id: str, wave: int) -> tuple[str, str] | None:
        """The run id and MLflow status of an agent run's wave, if it was started."""
        with self._lock:
            runs = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`{KIND}` = 'wave' and tags.`{PARENT_RUN}` = '{agent_run_id}' "
                f"and tags.`{PREFIX}wave` = '{wave}'",
                max_results=10,
            )
        return (runs[0].info.run_id, runs[0].info.status) if runs else None

    def status(self) -> CampaignStatus | None:
        """What runs now: the newest running agent run, its current wave, its running trials, its spend so far."""
        with self._lock:
            return campaign_status(self._runs, self.metric)

    def last_night(self) -> str:
        """The newest finished agent run's improvement line (tag overnight.night); "" before the first finished."""
        with self._lock:
            return last_night(self._runs)

    def noise_floor(self, agent_run_id: str) -> dict[str, float]:
        """The latest noise floor of an agent run: {noise_sigma, noise_n, noise_dof}, empty before the baseline."""
        with self._lock:
            metrics = self.client.get_run(agent_run_id).data.metrics
        return {k: v for k, v in metrics.items() if k.startswith("noise_")}

    def spend_usd(self, agent_run_id: str) -> float:
        """Dollars the agent run's planner has spent so far (plans, repairs and reflections of all its waves)."""
        return self.llm_totals(agent_run_id).get("usd", 0.0)

    def llm_totals(self, agent_run_id: str) -> dict[str, float]:
        """Tokens and dollars of the agent run's planner calls: input_tokens, output_tokens, ..., usd."""
        with self._lock:
            waves = self._runs({KIND: "wave", PARENT_RUN: agent_run_id})
        return llm_totals(waves)

    def pending_suggestions(self) -> dict[str, str]:
        """Suggestions no wave has taken up yet, oldest first: key -> text."""
        with self._lock:
            tags = self.client.get_experiment(self.experiment_id).tags
        return {
            k: v
            for k, v in sorted(tags.items())
            if k.startswith(SUGGESTION) and not k.endswith(TAKEN) and f"{k}{TAKEN}" not in tags
        }

    def trials(self, agent_run_id: str = "", decision: str = "") -> list[TrialRecord]:
        """Every trial of the campaign (all agent runs), oldest first; only one agent run's, or only those with one
        decision, when given (the filter runs in the query: a night's trials do not read the whole history)."""
        match = {KIND: "trial"}
        if agent_run_id:
            match[PREFIX + "agent_run_id"] = agent_run_id
        if decision:
            match[PREFIX + "decision"] = decision
        with self._lock:
            return [self._record(run) for run in self._runs(match)]

    def find_trial(self, agent_run_id: str, trial_id: str) -> TrialRecord | None:
        """A trial of this agent run by its stable id (`<agent>-w<wave>-t<i>`...), if it was recorded."""
        match = {KIND: "trial", PREFIX + "agent_run_id": agent_run_id, PREFIX + "trial_id": trial_id}
        with self._lock:
            runs = self._runs(match)
        return self._record(runs[0]) if runs else None

    def find_trial_by_run(self, run_id: str) -> TrialRecord | None:
        with self._lock:
            try:
                return self._record(self._get(run_id))
            except MlflowException:
                return None

    def wave_trials(self, wave_run_id: str) -> list[TrialRecord]:
        """The trials recorded under a wave run, oldest first."""
        with self._lock:
            return [self._record(run) for run in self._runs({KIND: "trial", PARENT_RUN: wave_run_id})]

    def best(self, n: int = 5) -> list[TrialRecord]:
        return rank(self.trials(), self.goal)[:n]

    def failed(self, n: int = 5) -> list[TrialRecord]:
        return failures(self.trials())[-n:]

    def champion(self) -> TrialRecord | None:
        with self._lock:
            run_id = self._champion_id()
            return self._record(self._get(run_id)) if run_id else None

    def lineage(self) -> list[TrialRecord]:
        """The champion and its predecessors, newest first."""
        return [self._record(run) for run in self._lineage_runs()]

    def champion_versions(self) -> list[ChampionVersion]:
        """The champion's lineage for a person to review, oldest first (`lineage.versions`): the program as
        shipped, then each change that was crowned, with its files and diffs. Empty when there is no champion."""
        runs = self._lineage_runs()
        files = {run.run_id: self.trial_files(run.run_id) for run in runs}
        return lineage.versions(runs, files, self.metric, self.goal)

    def _lineage_runs(self) -> list[Run]:
        """The champion's run and its predecessors', newest first: one query for every run ever crowned, then the
        walk along their parent tags (`lineage.chain`)."""
        with self._lock:
            run_id = self._champion_id()
            crowned = {run.run_id: run for run in self._runs({lineage.CROWNED: "true"})} if run_id else {}
            return lineage.chain(run_id or "", crowned, self._get)

    def _champion_id(self) -> str | None:
        return self.client.get_experiment(self.experiment_id).tags.get(CHAMPION_TAG)

    def champion_files(self) -> dict[str, str]:
        """Rebuild the champion's editable files from its MLflow artifacts alone."""
        champion = self.champion()
        if champion is None:
            raise LookupError("this campaign has no champion yet")
        return self.trial_files(champion.run_id)

    def trial_texts(self, run_id: str) -> dict[str, str]:
        """A trial's long texts, which records leave out: its rationale, expected effect and decision's reason."""
        with self._lock:
            tags = self.client.get_run(run_id).data.tags
        keys = ("rationale", "expected", "decision_reason")
        return {key: tags.get(PREFIX + key, "") for key in keys}

    def trial_files(self, run_id: str) -> dict[str, str]:
        local = self._local_artifact(run_id, "files")
        if local is not None and local.is_dir():
            return _read_tree(local)
        with self._lock, tempfile.TemporaryDirectory() as scratch:
            return _read_tree(Path(self.client.download_artifacts(run_id, "files", scratch)))

    def read_artifact(self, run_id: str, path: str) -> str:
        """The text of one artifact, or an empty string when the run has none by that name."""
        local = self._local_artifact(run_id, path)
        if local is not None:
            try:
                return local.read_text()
            except OSError:
                return ""
        with self._lock, tempfile.TemporaryDirectory() as scratch:
            try:
                return Path(self.client.download_artifacts(run_id, path, scratch)).read_text()
            except (OSError, MlflowException):
                return ""

    def insights(self, n: int = 8) -> list[str]:
        """Reflections of the last n finished waves, oldest first."""
        with self._lock:
            waves = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`{KIND}` = 'wave' and attributes.status = 'FINISHED'",
                max_results=n,
                order_by=["attributes.start_time DESC"],
            )
        return [w.data.tags.get(NOTE, "") for w in reversed(waves) if w.data.tags.get(NOTE)]

    def snapshot(self, n_insights: int = 8, n_failure_logs: int = 10) -> MemorySnapshot:
        """Everything a planner may read, as frozen records."""
        trials = tuple(self.trials())
        failed = [t for t in trials if t.outcome not in (None, Outcome.OK, Outcome.INVALID)][-n_failure_logs:]
        return MemorySnapshot(
            metric=self.metric,
            goal=self.goal,
            trials=trials,
            champion=self.champion(),
            lineage=tuple(self.lineage()),
            insights=tuple(self.insights(n_insights)),
            failure_logs={t.run_id: self.read_artifact(t.run_id, "log_tail.txt") for t in failed},
        )

    def ui_url(self, base: str = "http://127.0.0.1:5000", run_id: str = "") -> str:
        """The campaign's runs table, or one run's page, in the MLflow UI's model-training view."""
        page = f"runs/{run_id}" if run_id else "runs"
        return f"{base}/#/experiments/{self.experiment_id}/{page}?{ML_VIEW}"

    # --- the store underneath ------------------------------------------------------------------------------------

    def _runs(self, match: dict[str, str]) -> list[Run]:
        """The campaign's active runs whose tags equal `match`, oldest first (as MLflow orders: start time, run id).

        On a SQL store (SQLite, PostgreSQL...) this reads the rows it needs in four plain queries on MLflow's tables
        (`sql.read_runs`); behind a tracking server, through MLflow's search."""
        store = self._sql_store()
        if store is None:
            return self._runs_by_search(match)
        from sqlalchemy import text

        sqlite = store.engine.dialect.name == "sqlite"
        with store.engine.connect() as db:

            def rows(query: str, values: dict) -> list:
                if sqlite:  # sqlite3 takes these named parameters as they are, and its plain tuples cost half
                    return db.connection.driver_connection.execute(query, values).fetchall()
                return db.execute(text(query), values).all()

            found = read_runs(rows, self.experiment_id, match, sqlite)
        self._artifact_uris.update((run.run_id, run.artifact_uri) for run in found)
        return found

    def _runs_by_search(self, match: dict[str, str]) -> list[Run]:
        """`_runs` through MLflow's search API: for a store behind a tracking server."""
        runs, token = [], None
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                filter_string=" and ".join(f"tags.`{key}` = '{value}'" for key, value in match.items()),
                max_results=5000,
                order_by=["attributes.start_time ASC"],
                page_token=token,
            )
            runs.extend(_plain(run) for run in page)
            token = page.token
            if not token:
                return runs

    def _sql_store(self):
        """The SQL store under the client (a SQLite file or a database server), or None (a tracking server)."""
        if self._sql is None:
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            store = getattr(getattr(self.client, "_tracking_client", None), "store", None)
            self._sql = (store,) if isinstance(store, SqlAlchemyStore) else (None,)
        return self._sql[0]

    def _get(self, run_id: str) -> Run:
        run = _plain(self.client.get_run(run_id))
        self._artifact_uris[run.run_id] = run.artifact_uri
        return run

    def _local_artifact(self, run_id: str, path: str) -> Path | None:
        """Where a run's artifact lies when its artifacts are local files, else None (download it).

        MLflow's download copies the files into a scratch folder after looking the run up again (tens of ms per
        call); the digest reads ten failure logs per wave and a report every champion version's files."""
        uri = self._artifact_uris.get(run_id)
        if uri is None:
            try:
                with self._lock:
                    uri = self._get(run_id).artifact_uri
            except MlflowException:
                return None
        if urlparse(uri).scheme not in ("", "file"):
            return None
        return Path(local_file_uri_to_path(uri)) / path

    def _record(self, run: Run) -> TrialRecord:
        return trial_record(run, self.metric)


def _read_tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def _plain(run) -> Run:
    return Run(
        run.info.run_id,
        run.info.run_name or "",
        run.info.start_time,
        run.info.status,
        run.info.artifact_uri,
        dict(run.data.tags),
        dict(run.data.params),
        dict(run.data.metrics),
    )


def _trial_tags(
    wave_run_id: str, agent_run_id: str, trial_id: str, wave: int, hypothesis: str
) -> dict[str, str]:
    """What every trial run carries: its place in the tree and its hypothesis."""
    return {
        KIND: "trial",
        PARENT_RUN: wave_run_id,
        PREFIX + "agent_run_id": agent_run_id,
        PREFIX + "trial_id": trial_id,
        PREFIX + "wave": str(wave),
        PREFIX + "hypothesis": hypothesis[:4000],
    }


def _usage_metrics(call: str, usage: Usage, cost_usd: float) -> dict[str, float]:
    return {
        f"{call}_input_tokens": usage.input_tokens,
        f"{call}_output_tokens": usage.output_tokens,
        f"{call}_cache_read_tokens": usage.cache_read_tokens,
        f"{call}_cache_creation_tokens": usage.cache_creation_tokens,
        f"{call}_cache_creation_1h_tokens": usage.cache_creation_1h_tokens,
        f"{call}_llm_calls": usage.calls,
        f"{call}_usd": cost_usd,
    }


def _metric_list(metrics: dict[str, float], step: int = 0):
    now = int(time.time() * 1000)
    return [
        Metric(key, float(value), now, step) for key, value in metrics.items() if math.isfinite(float(value))
    ]
