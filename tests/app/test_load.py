"""Eight clients upload at once: all answered, none fails, no upload left behind."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from helpers import files_under
from gradio_client import Client, handle_file

from mrnet.app.ui import Limits, serving

CLIENTS = 8


@pytest.mark.slow
def test_eight_clients_at_once_are_all_answered_and_leave_no_upload(predictor, phantom_files, tmp_path):
    uploads = tmp_path / "gradio-uploads"
    # A short grace period, so that the test sees the folder emptied; the default is 30 s.
    limits = Limits(upload_grace_s=1.0)
    with serving(predictor, uploads, limits) as demo:
        clients = [Client(demo.local_url, verbose=False) for _ in range(CLIENTS)]
        start = threading.Barrier(CLIENTS)
        latencies, answers, failures = [None] * CLIENTS, [None] * CLIENTS, []

        def one(k: int) -> None:
            start.wait()
            started = time.perf_counter()
            try:
                # Every client sends the same exam: Gradio stores identical uploads at one path, the
                # case where deleting an upload right after its first reading would break the others.
                answers[k] = clients[k].predict(files=[handle_file(str(p)) for p in phantom_files],
                                                api_name="/predict")
            except Exception as error:  # noqa: BLE001 - counted and shown below
                failures.append(f"client {k}: {type(error).__name__}: {error}")
            latencies[k] = time.perf_counter() - started

        threads = [threading.Thread(target=one, args=(k,)) for k in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

        assert failures == []
        assert all(answer is not None for answer in answers)
        first = answers[0][3]["tasks"]
        for answer in answers[1:]:  # the same exam gives the same answer, whatever else runs
            assert {t: r["probability"] for t, r in answer[3]["tasks"].items()} == pytest.approx(
                {t: r["probability"] for t, r in first.items()})
        deadline = time.monotonic() + limits.upload_grace_s + 10
        while files_under(uploads) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert files_under(uploads) == []

    p50, p95 = np.percentile(latencies, [50, 95])
    print(f"\n{CLIENTS} clients at once (upload + predict, concurrency {limits.concurrency}): "
          f"p50 {p50:.2f} s, p95 {p95:.2f} s, max {max(latencies):.2f} s")
