"""Does my Slurm infra work with SkyPilot? Run two small CPU jobs on it through SkyPilot's Python SDK and time each step.

    HOME=/tmp/overnight-sky-home SKYPILOT_DISABLE_USAGE_COLLECTION=1 \\
        .venv/bin/python scripts/slurm/probe.py [--infra slurm/localslurm] [--cluster ovn-probe] [--keep] [--json out.json]

Run it with the HOME whose ~/.slurm/config names the Slurm cluster (scripts/slurm/up.sh writes one for a local
cluster; for a real cluster, write your own entry there). It launches a cluster, runs a job that exits 3, runs a second
job with `exec` that succeeds, reads back their logs, exit codes and statuses, then takes the cluster down (unless
--keep). Exit status 0 when every check passed, 1 otherwise; the last line is a one-line verdict.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import threading
import time

TIMINGS: dict[str, float] = {}
CHECKS: list[tuple[str, bool, str]] = []


class timed:
    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.t0 = time.monotonic()
        print(f"--- {self.name} ...", flush=True)

    def __exit__(self, *exc):
        TIMINGS[self.name] = round(time.monotonic() - self.t0, 1)
        print(f"--- {self.name}: {TIMINGS[self.name]} s", flush=True)


def check(name: str, ok: bool, detail: str = "") -> None:
    CHECKS.append((name, bool(ok), detail))
    print(f"[{'ok' if ok else 'FAIL'}] {name}{': ' + detail if detail else ''}", flush=True)


class ServerMemory(threading.Thread):
    """Samples the summed RSS of the local SkyPilot API server's process tree (Linux /proc), keeping the peak."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_kb = 0
        self.peak_procs = 0
        self.stop = threading.Event()

    @staticmethod
    def _procs() -> dict[int, tuple[int, int, str]]:
        out = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
                rss = 0
                with open(f"/proc/{d}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            rss = int(line.split()[1])
                out[int(d)] = (ppid, rss, cmd)
            except (OSError, ValueError, IndexError):
                continue
        return out

    def sample(self) -> None:
        procs = self._procs()
        roots = {p for p, (_, _, cmd) in procs.items() if "sky.server.server" in cmd}
        tree, changed = set(roots), True
        while changed:
            kids = {p for p, (pp, _, _) in procs.items() if pp in tree and p not in tree}
            tree |= kids
            changed = bool(kids)
        total = sum(procs[p][1] for p in tree)
        if total > self.peak_kb:
            self.peak_kb, self.peak_procs = total, len(tree)

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(0.5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--infra", default="slurm/localslurm")
    ap.add_argument("--cluster", default="ovn-probe")
    ap.add_argument("--keep", action="store_true", help="leave the cluster up at the end")
    ap.add_argument("--json", help="write timings, checks and findings to this file")
    args = ap.parse_args()
    print(f"HOME={os.environ.get('HOME')} infra={args.infra} cluster={args.cluster}", flush=True)
    mem = ServerMemory()
    mem.start()
    findings: dict[str, object] = {}

    with timed("import sky"):
        import sky
    findings["sky_version"] = sky.__version__

    with timed("sky.check (starts the local API server if none)"):
        from sky.client import sdk

        enabled = sky.get(sdk.check(infra_list=(args.infra.split("/")[0],), verbose=False))
    findings["check"] = enabled
    check("infra enabled", "slurm" in json.dumps(enabled).lower(), json.dumps(enabled))

    workdir = tempfile.mkdtemp(prefix="ovn-probe-workdir-")
    with open(os.path.join(workdir, "data.txt"), "w") as f:
        f.write("payload-from-workdir\n")
    resources = sky.Resources(infra=args.infra, cpus=1)
    task = sky.Task(
        name="probe-fail",
        run='echo hello; cat data.txt; echo "env=$OVN_PROBE_VAR"; python -c "print(\\"val: 1.5\\")"; exit 3',
        workdir=workdir,
        envs={"OVN_PROBE_VAR": "probe-42"},
        resources=resources,
    )
    cluster = args.cluster
    try:
        with timed("sky.launch + stream_and_get (job 1, exits 3)"):
            job1, handle = sky.stream_and_get(
                sky.launch(task, cluster_name=cluster, idle_minutes_to_autostop=None)
            )
        findings["launch_returns"] = {"job_id": job1, "handle_type": type(handle).__name__}
        check("launch returned a job id", isinstance(job1, int), f"job_id={job1!r}")
        if handle is not None:
            res = getattr(handle, "launched_resources", None)
            findings["handle"] = {
                "launched_resources": repr(res),
                "cloud": repr(getattr(res, "cloud", None)),
                "region": getattr(res, "region", None),
                "instance_type": getattr(res, "instance_type", None),
                "cpus": getattr(res, "cpus", None),
                "memory": getattr(res, "memory", None),
                "accelerators": getattr(res, "accelerators", None),
                "launched_nodes": getattr(handle, "launched_nodes", None),
                "head_ip": getattr(handle, "head_ip", None),
            }
            print(f"handle: {findings['handle']}", flush=True)

        with timed("sky.tail_logs(follow=True) job 1 -> exit code + text"):
            buf = io.StringIO()
            rc1 = sky.tail_logs(cluster, job1, follow=True, output_stream=buf)
        log1 = buf.getvalue()
        findings["job1"] = {"tail_logs_rc": rc1, "log_tail": log1[-800:]}
        check("job 1 log has the run's output", "hello" in log1 and "val: 1.5" in log1)
        check("job 1 saw its workdir and envs", "payload-from-workdir" in log1 and "env=probe-42" in log1)
        check("job 1 failure shows as tail_logs rc 100", rc1 == 100, f"rc={rc1}")
        check(
            "job 1 exit code 3 appears in the log", "[3]" in log1, "e.g. 'failed with return code list: [3]'"
        )

        with timed("sky.job_status"):
            st = sky.get(sky.job_status(cluster, [job1]))
        findings["job_status"] = {str(k): str(v) for k, v in st.items()}
        check("job_status says FAILED", str(st.get(job1)) == str(sky.JobStatus.FAILED), str(st))

        task2 = sky.Task(
            name="probe-ok",
            run='cat data.txt; echo "env=$OVN_PROBE_VAR"; nproc; echo done',
            workdir=workdir,
            envs={"OVN_PROBE_VAR": "probe-43"},
            resources=resources,
        )
        with timed("sky.exec + get (job 2)"):
            job2, _ = sky.get(sky.exec(task2, cluster_name=cluster))
        with timed("sky.tail_logs(follow=True, preload_content=False) job 2 -> lines"):
            lines = [
                line for line in sky.tail_logs(cluster, job2, follow=True, preload_content=False) if line
            ]
        log2 = "".join(lines)
        check(
            "job 2 (exec) ran in the same workdir", "payload-from-workdir" in log2 and "env=probe-43" in log2
        )
        with timed("sky.tail_logs job 2 rc (after finish)"):
            rc2 = sky.tail_logs(cluster, job2, follow=True, output_stream=io.StringIO())
        check("job 2 success shows as tail_logs rc 0", rc2 == 0, f"rc={rc2}")
        st2 = sky.get(sky.job_status(cluster, [job2]))
        check("job_status says SUCCEEDED", str(st2.get(job2)) == str(sky.JobStatus.SUCCEEDED), str(st2))

        with timed("sky.queue"):
            q = sky.get(sky.queue(cluster))
        findings["queue"] = [
            {k: str(getattr(r, k, None)) for k in ("job_id", "job_name", "status", "resources")} for r in q
        ]
        with timed("sky.download_logs"):
            paths = sky.download_logs(cluster, [str(job1), str(job2)])
        findings["download_logs"] = paths
        files = []
        for p in paths.values():  # paths come back as '~/sky_logs/<cluster>/<job_id>-<name>'
            for root, _, names in os.walk(os.path.expanduser(p)):
                files += [os.path.join(root, n) for n in names]
        check("download_logs gave local log files", bool(files), ", ".join(files[:4]))
        run_logs = [f for f in files if f.endswith("/run.log") and "/1-" in f and "/tasks/" not in f]
        if run_logs:
            with open(run_logs[0]) as f:
                findings["job1_run_log_file"] = f.read()[-600:]

        with timed("sky.status"):
            recs = sky.get(sky.status([cluster]))
        rec = recs[0] if recs else None
        if rec is not None:
            findings["status"] = {
                k: str(getattr(rec, k, None))
                for k in (
                    "name",
                    "status",
                    "cloud",
                    "region",
                    "resources_str",
                    "cpus",
                    "memory",
                    "accelerators",
                )
            }
        check(
            "status shows the cluster UP",
            rec is not None and "UP" in str(getattr(rec, "status", "")),
            str(findings.get("status")),
        )
    except Exception as e:  # a probe reports whatever broke
        check("no exception", False, f"{type(e).__name__}: {e}")
    finally:
        if not args.keep:
            with timed("sky.down"):
                try:
                    sky.get(sky.down(cluster))
                    check("cluster down", True)
                except Exception as e:
                    check("cluster down", False, f"{type(e).__name__}: {e}")
        shutil.rmtree(workdir, ignore_errors=True)
        mem.stop.set()
        mem.sample()
        findings["api_server_peak_rss_mb"] = round(mem.peak_kb / 1024)
        findings["api_server_peak_procs"] = mem.peak_procs
        print(
            f"API server peak RSS (summed over {mem.peak_procs} processes): {findings['api_server_peak_rss_mb']} MB"
        )

    failed = [name for name, ok, _ in CHECKS if not ok]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"timings_s": TIMINGS, "checks": CHECKS, "findings": findings}, f, indent=2, default=str
            )
    print("timings (s): " + ", ".join(f"{k}={v}" for k, v in TIMINGS.items()))
    verdict = "WORKS" if not failed else f"BROKEN ({'; '.join(failed)})"
    print(f"probe {args.infra}: {verdict}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
