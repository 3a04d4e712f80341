"""Load on the web demo: bursts of clients upload a phantom exam at once through gradio_client.

Starts the demo in this process (shipped demo bundle, upload folder in a temporary directory), then
for each burst size sends that many `/predict` calls at the same moment, each from its own client
(its own session, as separate visitors), and prints the latency from upload to answer:

    .venv/bin/python benchmarks/app_load.py [--clients 1,4,8] [--concurrency 2] [--same-exam]

By default every client sends a different phantom knee; --same-exam sends one knee from all of them
(Gradio then stores the uploads at one path, the case `app/uploads.py` is built for). The last
column counts uploaded files still on disk once the grace period is over: it should be 0.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

GRACE_S = 1.0


def _write_exams(folder: Path, count: int, same: bool) -> list[list[Path]]:
    from mrnet.infer.synthetic.phantom import PhantomConfig, make_exam

    exams = []
    for k in range(1 if same else count):
        volumes, _ = make_exam(100 + k, config=PhantomConfig(slice_range=(20, 30)))
        (folder / f"exam{k}").mkdir()
        exams.append([folder / f"exam{k}" / f"{plane}.npy" for plane in volumes])
        for path, volume in zip(exams[-1], volumes.values()):
            np.save(path, volume)
    return exams * count if same else exams


def _burst(url: str, exams: list[list[Path]]) -> tuple[list[float], int]:
    from gradio_client import Client, handle_file

    clients = [Client(url, verbose=False) for _ in exams]
    start = threading.Barrier(len(exams))
    latencies, failures = [0.0] * len(exams), []

    def one(k: int) -> None:
        start.wait()
        started = time.perf_counter()
        try:
            clients[k].predict(files=[handle_file(str(p)) for p in exams[k]], api_name="/predict")
        except Exception as error:  # noqa: BLE001 - counted in the table
            failures.append(type(error).__name__)
        latencies[k] = time.perf_counter() - started

    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(exams))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, len(failures)


def main(bursts: list[int], concurrency: int, same: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="mrnet-app-load-") as scratch:
        from mrnet.app.ui import Limits, serving
        from mrnet.infer.predictor import Predictor

        uploads = Path(scratch) / "gradio"
        exams = _write_exams(Path(scratch), max(bursts), same)
        limits = Limits(concurrency=concurrency, upload_grace_s=GRACE_S)
        predictor = Predictor()
        with serving(predictor, uploads, limits) as demo:
            print(f"{predictor.provider}, {predictor.precision}, {os.cpu_count()} CPUs, concurrency {concurrency}, "
                  f"{'one exam for all' if same else 'one exam per client'}")
            print(f"{'clients':>7} {'failed':>6} {'p50 s':>7} {'p95 s':>7} {'max s':>7} {'exams/s':>8} {'left':>5}")
            for count in bursts:
                started = time.perf_counter()
                latencies, failed = _burst(demo.local_url, exams[:count])
                wall = time.perf_counter() - started
                time.sleep(GRACE_S + 0.5)
                left = sum(1 for p in uploads.rglob("*") if p.is_file())
                p50, p95 = np.percentile(latencies, [50, 95])
                print(f"{count:>7} {failed:>6} {p50:>7.2f} {p95:>7.2f} {max(latencies):>7.2f} "
                      f"{count / wall:>8.2f} {left:>5}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,4,8", help="burst sizes, comma-separated")
    parser.add_argument("--concurrency", type=int, default=2, help="exams the server scores at once")
    parser.add_argument("--same-exam", action="store_true", help="every client sends the same exam")
    args = parser.parse_args()
    main([int(c) for c in args.clients.split(",")], args.concurrency, args.same_exam)
