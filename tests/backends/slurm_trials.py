"""Run each way a trial can end through the SkyPilot backend on a real cluster; print the outcomes as JSON.

    HOME=<sky home> python tests/backends/slurm_trials.py <infra> <workdir>

Run by test_skypilot_slurm.py in its own process, because SkyPilot reads HOME (its state and ~/.slurm/config) when
it is imported. One cluster: the first trial launches it, the others are queued onto it with `exec`; at the end it
is torn down by the backend's close(), as a campaign would.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from overnight.backends import close_backend, make_backend
from overnight.config import CampaignConfig
from overnight.trial import TrialSpec

SCRIPTS = {
    "ok": "import os\nprint('loss: 0.5')\nprint('seed', os.environ['OVERNIGHT_SEED'])\n",
    "crash": "print('loss: 0.5')\nraise SystemExit(3)\n",
    "nan": "print('loss: nan')\n",
    "no_metric": "print('all done, but I forgot to report')\n",
    "result_file": "import json, os\njson.dump({'loss': 0.25}, open(os.environ['OVERNIGHT_RESULT'], 'w'))\n",
    "tampered": "open('data.txt', 'w').write('rigged')\nprint('loss: 0.0')\n",
    "secrets": "import os\nprint('leaked', sorted(k for k in os.environ if 'FAKE_SECRET' in k))\nprint('loss: 1')\n",
    "timeout": "import time\nprint('loss: 9', flush=True)\ntime.sleep(600)\n",
}


def main() -> None:
    infra, workdir = sys.argv[1], Path(sys.argv[2])
    program = workdir / "program"
    program.mkdir(parents=True)
    (program / "train.py").write_text("print('loss: 1.0')\n")
    (program / "data.txt").write_text("read-only data\n")
    config = CampaignConfig(
        name="conformance",
        program=program,
        metric={"name": "loss"},
        command="python3 train.py",
        backend={
            "kind": "skypilot",
            "resources": {"infra": infra, "cpus": "1"},
            "pool_size": 1,
            "autostop_minutes": None,
        },
    )
    backend = make_backend(config, workdir / "work")
    results = {}
    try:
        for name, script in SCRIPTS.items():
            started = time.monotonic()
            spec = TrialSpec(
                f"conf-{name.replace('_', '-')}",
                {"train.py": script},
                seed=7,
                command=config.command,
                time_budget_s=1,
                timeout_s=20 if name == "timeout" else 300,
            )
            result = backend.run(spec)
            results[name] = {
                "outcome": result.outcome.value,
                "reason": result.reason,
                "metrics": result.metrics,
                "exit_code": result.exit_code,
                "log_tail": result.log_tail,
                "placement": result.placement,
                "seconds": round(time.monotonic() - started, 1),
            }
            print(
                f"{name}: {result.outcome.value} in {results[name]['seconds']} s", file=sys.stderr, flush=True
            )
    finally:
        close_backend(backend)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
