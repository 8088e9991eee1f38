"""The ways a trial can end, as tiny scripts, and a runner that puts one through any backend.

test_conformance.py runs them on every backend and expects the same outcomes; slurm_trials.py runs them through the
SkyPilot backend in a process of its own. The program they run in has an editable `train.py` and two read-only
files, `data.txt` and `prepare.py`; the metric is `loss`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from overnight.backends.base import Backend
from overnight.trial import TrialSpec

METRIC = "loss"
READ_ONLY = ("data.txt", "prepare.py")
# A variable of the orchestrator's environment (an API key, a cloud credential), set wherever the endings run: no
# trial may see it.
SECRET = ("FAKE_SECRET_TOKEN", "orchestrator-only-value")
LONG_TIMEOUT_S = 300  # the hard timeout of every ending but `timeout`: never reached


@dataclass(frozen=True)
class Ending:
    script: str
    short_timeout: bool = False  # run under the backend's short hard timeout (it is meant to hit it)
    env: dict[str, str] = field(default_factory=dict)
    overhead_allowance_s: float = 120  # what the whole run may take past its 1 s budget (+10%)


ENDINGS = {
    # A run as it should be: it sees its seed and its own variables, none of the orchestrator's, and may make files.
    "ok": Ending(
        "import os\nprint('step 1')\nprint('loss: 0.5')\nprint('seed', os.environ['OVERNIGHT_SEED'])\n"
        "print('leaked', sorted(k for k in os.environ if 'SECRET' in k))\nprint('extra', os.environ.get('EXTRA'))\n"
        "open('checkpoint.bin', 'w').write('a file the run makes is its own business')\n",
        env={"EXTRA": "yes"},
    ),
    "crash": Ending("print('loss: 0.5')\nraise SystemExit(3)\n"),
    "timeout": Ending("import time\nprint('loss: 9', flush=True)\ntime.sleep(600)\n", short_timeout=True),
    "nan": Ending("print('loss: nan')\n"),
    "no_metric": Ending("print('all done, but I forgot to report')\n"),
    "result_file": Ending(
        "import json, os\njson.dump({'loss': 0.25}, open(os.environ['OVERNIGHT_RESULT'], 'w'))\n"
    ),
    # One read-only file modified, the other removed; the metric it prints would be the best yet.
    "read_only_changed": Ending(
        "import os\nopen('data.txt', 'w').write('rigged')\nos.remove('prepare.py')\nprint('loss: 0.0')\n"
    ),
    # Past its 1 s budget by its own account, then by the engine's clock whatever it claims (no allowance here).
    "over_budget": Ending("print('loss: 0.5')\nprint('training_seconds: 5')\n"),
    "over_budget_wall": Ending(
        "import time\ntime.sleep(2)\nprint('loss: 0.5')\nprint('training_seconds: 0.9')\n",
        overhead_allowance_s=0,
    ),
    # A child the script starts and never waits for (a data loader, a server), holding the script's output open.
    "child_left_behind": Ending(
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print('child', child.pid)\nprint('loss: 0.5')\n"
    ),
}


def write_program(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "train.py").write_text("print('loss: 1.0')\n")
    (folder / "data.txt").write_text("read-only data\n")
    (folder / "prepare.py").write_text("def evaluate(loss):\n    return loss\n")
    return folder


def run_ending(backend: Backend, name: str, command: str, short_timeout_s: float) -> dict:
    """Run one ending through the backend; its result as plain data (what crosses a process boundary as JSON)."""
    ending = ENDINGS[name]
    spec = TrialSpec(
        f"conf-{name.replace('_', '-')}",
        {"train.py": ending.script},
        seed=7,
        command=command,
        time_budget_s=1,
        timeout_s=short_timeout_s if ending.short_timeout else LONG_TIMEOUT_S,
        env=ending.env,
        overhead_allowance_s=ending.overhead_allowance_s,
    )
    started = time.monotonic()
    result = backend.run(spec)
    return {
        "outcome": result.outcome.value,
        "reason": result.reason,
        "metrics": result.metrics,
        "exit_code": result.exit_code,
        "log_tail": result.log_tail,
        "placement": result.placement,
        "seconds": round(time.monotonic() - started, 1),
        "wall_s": result.wall_s,
    }


def gone(pid: int, within_s: float = 5) -> bool:
    """The process has ended, or ends within a moment: a killed process closes its files before it is a zombie."""
    from helpers import alive  # tests/helpers.py, on the path under pytest (not in slurm_trials.py's process)

    deadline = time.monotonic() + within_s
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)
