"""Small helpers shared by tests."""

import os
from pathlib import Path


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for a reaper (a container's init may never reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def processes_with(token: str) -> list[int]:
    """Live processes whose command line or environment carries `token` (a trial id, a marker argument): how a
    test finds a trial's processes from outside its box, where the pids it saw of itself mean nothing."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                seen = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
            except OSError:
                continue
            if token.encode() in seen and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def configure_campaign(program: Path, **changes) -> Path:
    """Set top-level keys of a test program's campaign.yaml (stores, budgets, planner); returns its path."""
    import yaml

    path = program / "campaign.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data))
    return path


SYNTHETIC = Path(__file__).resolve().parents[1] / "overnight" / "programs" / "synthetic"


def load_synthetic():
    """The synthetic program's truth module (expected_score, measure, NOISE_SIGMA...) and its default knob values."""
    import importlib.util

    from overnight.program import constants

    spec = importlib.util.spec_from_file_location("synthetic_truth", SYNTHETIC / "truth.py")
    truth = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(truth)
    found = constants((SYNTHETIC / "train.py").read_text())
    return truth, {name: found[name].value for name in truth.KNOBS}


def night_in_flight(memory) -> list[str]:
    """Through the real Memory API: a finished night that crowned a champion, then a night in flight (its baseline
    wave done, wave 1 running with two trials finished and two running), with planner and compute spend. Returns
    the running trials' ids."""
    from overnight.pricing import Usage
    from overnight.trial import Outcome, TrialResult

    def trial(agent, wave_run, wave, name, result=None, where=""):
        run_id = memory.start_trial(
            wave_run_id=wave_run,
            agent_run_id=agent,
            trial_id=name,
            wave=wave,
            hypothesis=f"try {name}",
            rationale="because",
            params={"X": 1.5},
            files={"train.py": "X = 1.5\n"},
            diff="",
            fingerprint=name,
            parent_champion="",
            role="baseline" if wave == 0 else "candidate",
        )
        if where:
            memory.record_dispatch(run_id, where)
        if result is not None:
            memory.finish_trial(run_id, result)
        return run_id

    def ok(name, loss, cost_usd=None):
        return TrialResult(name, Outcome.OK, {"loss": loss}, 60.0, 0, f"loss: {loss}\n", cost_usd=cost_usd)

    first = memory.start_agent_run("night 1", {"planner": "claude"})
    wave = memory.start_wave(first, 0)
    memory.record_plan(wave, "", Usage(1000, 200, 0, 0, 1), 0.01, "claude")
    baseline = trial(first, wave, 0, "n1-base", ok("n1-base", 0.9))
    memory.record_decision(baseline, "baseline", "the night's starting point")
    memory.set_champion(baseline, "")
    memory.finish_wave(wave, {}, "a reflection", [])
    memory.finish_agent_run(first, {}, "# Night 1\n")

    night = memory.start_agent_run("night 2", {"planner": "claude"})
    wave = memory.start_wave(night, 0)
    memory.record_plan(wave, "", Usage(1000, 200, 0, 0, 1), 0.0123, "claude")
    trial(night, wave, 0, "n2-base", ok("n2-base", 0.8))
    memory.record_reflection_usage(wave, Usage(800, 100, 0, 0, 1), 0.0045)
    memory.finish_wave(wave, {}, "a reflection", [])
    wave = memory.start_wave(night, 1)
    memory.record_plan(wave, "", Usage(2000, 400, 0, 0, 1), 0.031, "claude")
    memory.record_repair_usage(wave, Usage(500, 100, 0, 0, 1), 0.002)  # a crashed trial sent back to Claude
    trial(night, wave, 1, "n2-ok", ok("n2-ok", 0.7, cost_usd=0.02))
    trial(
        night,
        wave,
        1,
        "n2-crash",
        TrialResult("n2-crash", Outcome.CRASH, {}, 5.0, 1, "Traceback\n", "exit 1"),
    )
    trial(night, wave, 1, "n2-run", where="local host /tmp/work/n2-run")
    trial(night, wave, 1, "n2-start")
    return ["n2-run", "n2-start"]


def trial_span(run) -> tuple[float, float]:
    """When a local trial's process ran (an MLflow run of it): from the pid file the local backend writes as it
    launches it to its log's last line (the metric, printed as it ends). MLflow's run times would not do: the run is
    created when the trial is planned and ended after its result is recorded."""
    folder = Path(run.data.tags["overnight.where"].split(":", 1)[1])
    return (folder / ".overnight_pid").stat().st_mtime, (folder / "run.log").stat().st_mtime


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most (start, end) spans that overlap at one moment: trials running at once."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def start_campaign(config: Path, cwd: Path, env: dict):
    """`overnight run CONFIG` in a process of its own, its output merged and readable as text."""
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "overnight.cli", "run", str(config)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def write_results(heading: str, body: str, where: str) -> bool:
    """With OVERNIGHT_WRITE_RESULTS=1, replace benchmarks/RESULTS.md's section `heading` with `body`, the machine
    (`where`: what else ran on it), the date and the pytest command that printed it; True when it wrote."""
    if os.environ.get("OVERNIGHT_WRITE_RESULTS") != "1":
        return False
    import platform
    import shlex
    import sys
    from datetime import datetime, timezone

    sys.path.insert(0, str(Path(__file__).parents[1]))
    from benchmarks.results import write_section

    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    machine = f"{platform.platform()}, {os.cpu_count()} CPUs, {memory_gib:.0f} GiB; {where}"
    command = f"OVERNIGHT_WRITE_RESULTS=1 pytest {shlex.join(sys.argv[1:])}"
    text = f"{heading}\n\n{body.strip()}\n\nMachine: {machine}.\n"
    text += f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC with:\n\n```\n{command}\n```\n"
    write_section(heading, text)
    return True
