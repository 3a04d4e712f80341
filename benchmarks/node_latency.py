"""mrnet-node latency: from a study's last instance received to its SR stored at the destination.

Real peers on this machine: dcmtk's storescu sends phantom studies (3 planes x S slices, one
series per plane, written by pydicom) to `python -m mrnet.node.cli` (shipped demo bundle), which
sends each SR to dcmtk's storescp. The latency is the node's own measure, from its log: from the
moment the study's last instance was stored in the work folder to the moment the destination
acknowledged the SR's C-STORE. As a cross-check from outside, the table also gives the time from
storescu's exit to the SR file appearing in storescp's folder (polled every 10 ms); with several
studies at once that one is not meaningful (a storescu may exit late: the node's threads share
the interpreter while a study is scored). The node waits --stable-seconds before it starts on a
study; the table gives the latency with and without that wait, and "report ready" (read + predict
+ SR built) from the node's log:

    .venv/bin/python benchmarks/node_latency.py [--runs 5] [--concurrent 4] [--slices 32] [--stable 2]

First `--runs` studies one after another (median), then `--concurrent` studies sent at once by
as many storescu processes. Needs dcmtk (`make system-deps`).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pydicom

from common import load_average, log, machine, print_table
from mrnet.node.studies import study_key

REPO = Path(__file__).resolve().parents[1]


def _dcmtk(tool: str) -> str:
    """dcmtk's own tool: pynetdicom installs Python tools of the same names into the venv."""
    for folder in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin"]:
        path = Path(folder) / tool
        if path.is_file() and "dcmtk" in subprocess.run([str(path), "--version"], capture_output=True, text=True).stdout:
            return str(path)
    sys.exit(f"dcmtk's {tool} is not installed (make system-deps)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _write_studies(folder: Path, count: int, slices: int) -> list[tuple[Path, str]]:
    from mrnet.infer.synthetic.phantom import PhantomConfig, make_exam
    from mrnet.infer.synthetic.scanner_files import Study, write_study

    studies = []
    for k in range(count):
        volumes, _ = make_exam(200 + k, config=PhantomConfig(slice_range=(slices, slices)))
        study = Study(seed=200 + k)
        write_study(volumes, folder / f"study{k}", study)
        studies.append((folder / f"study{k}", study.uid))
    return studies


def _send(port: int, folder: Path, calling: str) -> subprocess.Popen:
    return subprocess.Popen([_dcmtk("storescu"), "-aet", calling, "-aec", "MRNET", "+sd", "+r", "127.0.0.1", str(port),
                             str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _arrivals(received: Path, seen: dict[str, float]) -> None:
    """Record the time each new SR file (by its StudyInstanceUID) shows up."""
    for path in received.glob("SR*"):
        if path.name in seen:
            continue
        try:
            uid = pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID
        except Exception:  # noqa: BLE001 - still being written
            continue
        seen[path.name] = time.perf_counter()
        seen[uid] = seen[path.name]


def _round(node_log: Path, port: int, received: Path, studies, seen: dict) -> list[tuple[float, float]]:
    """Send `studies` at once; per study, (storescu exited, SR file seen) times."""
    senders = [(_send(port, folder, f"SCU{k}"), uid) for k, (folder, uid) in enumerate(studies)]
    done: dict[str, float] = {}
    deadline = time.monotonic() + 600
    while (len(done) < len(senders) or any(uid not in seen for _, uid in senders)) and time.monotonic() < deadline:
        for sender, uid in senders:
            if uid not in done and sender.poll() is not None:
                if sender.returncode != 0:
                    sys.exit(f"storescu failed ({sender.returncode}); node log: {node_log}")
                done[uid] = time.perf_counter()
        _arrivals(received, seen)
        time.sleep(0.01)
    if any(uid not in seen for _, uid in senders):
        sys.exit(f"not every SR arrived within 600 s; node log: {node_log}")
    return [(done[uid], seen[uid]) for _, uid in senders]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrent", type=int, default=4)
    parser.add_argument("--slices", type=int, default=32)
    parser.add_argument("--stable", type=float, default=2.0, help="the node's --stable-seconds")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mrnet-node-bench-"))
    log(f"writing {args.runs + args.concurrent} phantom studies of 3 x {args.slices} slices in {work}")
    studies = _write_studies(work / "studies", args.runs + args.concurrent, args.slices)
    received, dest_port, node_port = work / "received", _free_port(), _free_port()
    received.mkdir()
    load_before = load_average()
    storescp = subprocess.Popen([_dcmtk("storescp"), "--output-directory", str(received), "-aet", "DEST", str(dest_port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    node_log = work / "node.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / ".pkgroot"), os.environ.get("PYTHONPATH")]))}
    with open(node_log, "w") as out:
        node = subprocess.Popen([sys.executable, "-m", "mrnet.node.cli", "--ae-title", "MRNET", "--port", str(node_port),
                                 "--destination", f"DEST@127.0.0.1:{dest_port}", "--work-dir", str(work / "node"),
                                 "--stable-seconds", str(args.stable)], stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        started = time.perf_counter()
        while subprocess.run([_dcmtk("echoscu"), "-aec", "MRNET", "127.0.0.1", str(node_port)],
                             capture_output=True).returncode != 0:
            if node.poll() is not None or time.perf_counter() - started > 120:
                sys.exit(f"the node did not start; see {node_log}")
            time.sleep(0.1)
        log(f"node ready in {time.perf_counter() - started:.1f} s")
        seen: dict[str, float] = {}
        serial, cpu = [], []
        node_process = psutil.Process(node.pid)
        for k in range(args.runs):
            log(f"one study at a time: run {k + 1} of {args.runs}")
            before = sum(node_process.cpu_times()[:2])
            serial += _round(node_log, node_port, received, [studies[k]], seen)
            time.sleep(0.2)  # the sender's last log line and bookkeeping
            cpu.append(sum(node_process.cpu_times()[:2]) - before)
        log(f"{args.concurrent} studies at once")
        burst = _round(node_log, node_port, received, studies[args.runs:], seen)
    finally:
        for process in (node, storescp):
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
    text = node_log.read_text()
    ready = {key: float(t) for key, t in re.findall(r"study (\w+): \d+ instance\(s\), planes \S+, report ready in ([\d.]+) s", text)}
    stored = {key: float(t) for key, t in re.findall(r"result (\w+)-\w+: .* stored at .*; ([\d.]+) s after", text)}

    def node_measure(batch):
        keys = [study_key(uid) for _, uid in batch]
        return [stored[k] for k in keys], [ready[k] for k in keys]

    print(f"machine: {machine()}")
    print(f"load average before: {load_before}; after: {load_average()}")
    print(f"study: 3 planes x {args.slices} slices ({3 * args.slices} instances); --stable-seconds {args.stable:g}; "
          f"demo bundle; dcmtk storescu -> mrnet-node -> dcmtk storescp on 127.0.0.1")
    latencies, readies = node_measure(studies[:args.runs])
    outside = [done - last for last, done in serial]
    rows = [[f"run {k + 1}", f"{latencies[k]:.2f}", f"{latencies[k] - args.stable:.2f}", f"{readies[k]:.2f}",
             f"{cpu[k]:.2f}", f"{outside[k]:.2f}"] for k in range(args.runs)]
    rows.append(["median", f"{statistics.median(latencies):.2f}", f"{statistics.median(latencies) - args.stable:.2f}",
                 f"{statistics.median(readies):.2f}", f"{statistics.median(cpu):.2f}", f"{statistics.median(outside):.2f}"])
    print_table("One study at a time: last instance stored -> SR stored at the destination (s); node CPU: the "
                "node process's user + system time for the whole study (receiving included)",
                ["", "latency", "beyond stable", "report ready", "node CPU", "outside: storescu exit -> SR file"], rows)
    latencies, readies = node_measure(studies[args.runs:])
    order = sorted(range(len(latencies)), key=latencies.__getitem__)
    rows = [[f"study {n + 1}", f"{latencies[k]:.2f}", f"{latencies[k] - args.stable:.2f}", f"{readies[k]:.2f}"]
            for n, k in enumerate(order)]
    rows.append(["median", f"{statistics.median(latencies):.2f}", f"{statistics.median(latencies) - args.stable:.2f}",
                 f"{statistics.median(readies):.2f}"])
    span = max(done for _, done in burst) - min(last for last, _ in burst)
    print_table(f"{args.concurrent} studies sent at once (one storescu each), by latency (s); all {args.concurrent} "
                f"SRs stored {span:.2f} s after the first storescu finished",
                ["", "latency", "beyond stable", "report ready"], rows)


if __name__ == "__main__":
    main()
