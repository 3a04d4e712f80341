"""What running training jobs on Ray costs against local processes, for small jobs on one machine.

A sweep of 8 tiny-model jobs (2 eps x 2 retrain % x 2 sagittal models, a few epochs each, on a
small phantom) runs with the local executor (`--jobs 2`) and on a Ray head started here with
2 CPUs, with the run folder shared (tasks write into it) and not shared (artefacts travel back to
the driver), interleaved round by round. Printed: wall time per variant (median), the overhead per
job against local processes, the cluster's start-up and connect time, and the artefact bytes a job
sends back. Ray's own fixed costs (task scheduling, worker start) are seconds; the jobs of the real
experiment last hours.

    .venv/bin/python benchmarks/cluster_overhead.py [--rounds 3] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from common import load_average, log, machine, print_table

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))


def start_head(temp: str) -> tuple[subprocess.Popen, str, float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    began = time.perf_counter()
    command = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", f"--port={port}",
               "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"]
    head = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    current = Path(temp) / "ray_current_cluster"
    while not (current.is_file() and current.read_text().strip()):
        if head.poll() is not None or time.perf_counter() - began > 180:
            raise RuntimeError("the Ray head did not start")
        time.sleep(0.5)
    return head, current.read_text().strip(), time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    from mrnet.infer.synthetic.dataset import write_dataset
    from mrnet.infer.synthetic.phantom import PhantomConfig
    from mrnet.train.executors import LocalExecutor
    from mrnet.train.pipeline import advtrain_spec, run_baseline, run_sweep
    from mrnet.train.presets import get_preset
    from mrnet.train.ray_executor import RayExecutor
    from mrnet.train.spec import RunSpec

    work = Path(tempfile.mkdtemp(prefix="cluster-bench-"))
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    log(f"phantom and baseline in {work}")
    write_dataset(work / "data", 48, 16, seed=3, config=PhantomConfig(slice_range=(17, 20)), workers=2)
    preset = get_preset("demo").with_overrides(epochs=args.epochs, adv_epochs=args.epochs)
    base = RunSpec(data=str(work / "data"), preset=preset, planes=("sagittal",), tasks=("acl", "meniscus"))
    run_baseline(base, work / "baseline", jobs=2)
    spec = advtrain_spec(work / "baseline", work / "data")
    grid = ([0.0, 1e-3], [10.0, 20.0])

    log("starting a Ray head (2 CPUs)")
    head, address, startup = start_head(temp)
    times: dict[str, list[float]] = {"local --jobs 2": [], "ray, run folder shared": [], "ray, not shared": []}
    connect, sent = [], []
    try:
        for round_ in range(args.rounds):
            for name in times:
                out = work / f"sweep-{round_}-{name.split()[0]}-{len(times[name])}"
                if name.startswith("local"):
                    executor = LocalExecutor(2)
                else:
                    executor = RayExecutor(address=address, shared_run_dir=name.endswith("shared"))
                    began = time.perf_counter()
                    executor.connect()
                    connect.append(time.perf_counter() - began)
                log(f"round {round_ + 1}: {name}")
                began = time.perf_counter()
                result = run_sweep(spec, *grid, out, executor=executor)
                times[name].append(time.perf_counter() - began)
                if isinstance(executor, RayExecutor):
                    executor.close()
                if name.endswith("not shared"):
                    folder = result.runs[0][-1] / "models" / "sagittal-acl"
                    sent.append(sum((folder / f).stat().st_size for f in ("best.pt", "metrics.csv",
                                                                           "predictions.csv", "done.json")))
                shutil.rmtree(out)
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(60)
        shutil.rmtree(work, ignore_errors=True)

    jobs, parallel = 8, 2
    local = median(times["local --jobs 2"])
    rows = [[name, f"{median(t):.1f}", f"{min(t):.1f}", f"{median(t) / local:.2f}x",
             f"{(median(t) - local) / (jobs / parallel):+.2f}"] for name, t in times.items()]
    print(f"machine: {machine()}; load average at the end: {load_average()}")
    print(f"{jobs} jobs (2 eps x 2 retrain % x 2 sagittal models, {args.epochs} epochs, 48 + 16 phantom exams), "
          f"{args.rounds} interleaved rounds; 2 at a time in every variant")
    print_table("sweep wall time", ["variant", "median s", "min s", "vs local", "overhead per job s"], rows)
    print_table("fixed costs", ["what", "value"],
                [["Ray head start-up (ray start --head)", f"{startup:.1f} s"],
                 ["driver connect (ray.init to the head)", f"{median(connect):.1f} s"],
                 ["artefacts a tiny job sends back (not shared)", f"{median(sent) / 1024:.0f} KiB"]])
    print(json.dumps({"times": times, "connect": connect, "startup": startup}))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
