"""Training on a real Ray cluster: a head started on this machine for these tests, the same metrics
as the local executor, a worker killed mid-job and retried, and a job that fails on its own."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from helpers import train_cli
from mrnet.infer.errors import RunError
from mrnet.train.pipeline import advtrain_spec, run_sweep
from mrnet.train.ray_executor import RayExecutor
from mrnet.train.rundir import RunFolder

pytestmark = pytest.mark.slow
# Token authentication, with a token of the test cluster's own: Ray reads it when it is imported, so
# it is set before that, for the head this module starts and for the drivers in this process.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", __import__("secrets").token_hex(16))
ray = pytest.importorskip("ray")
ONE_PLANE = ("--preset", "demo", "--planes", "sagittal", "--tasks", "acl,meniscus")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head():
    """`ray start --head --block` in its own process group, with its own temp folder; stopped by that
    group's id. Ray 2.60 binds its services to the node's address, not only to loopback."""
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    port = _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    ray_cli = Path(sys.executable).with_name("ray")
    head = subprocess.Popen([str(ray_cli), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
                             "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = None
    deadline = time.time() + 120
    current = Path(temp) / "ray_current_cluster"  # the head writes its address here once it is up
    while time.time() < deadline and address is None and head.poll() is None:
        if current.is_file() and current.read_text().strip():
            address = current.read_text().strip()
        time.sleep(1)
    assert address, "the Ray head did not start"
    time.sleep(3)
    yield address
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()
    import psutil  # anything of this cluster still alive is found by its temp folder, and stopped

    for process in psutil.process_iter(["pid", "cmdline"]):
        if temp in " ".join(process.info["cmdline"] or []):
            process.kill()


@pytest.fixture(scope="module")
def baseline(phantom_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ray") / "baseline"
    train_cli("baseline", str(phantom_root), "--out", str(out), *ONE_PLANE, "--epochs", "1", "--jobs", "2")
    return out


def _predictions(sweep: Path) -> dict[str, str]:
    return {str(p.relative_to(sweep)): p.read_text() for p in sorted((sweep / "runs").rglob("predictions.csv"))}


def test_ray_gives_the_metrics_of_the_local_executor(phantom_root, baseline, ray_head, tmp_path):
    grid = ("--eps", "0,1e-3", "--retrain-pct", "10", "--epochs", "2")
    train_cli("sweep", str(phantom_root), "--from", str(baseline), "--out", str(tmp_path / "local"), *grid,
              "--jobs", "2")
    train_cli("sweep", str(phantom_root), "--from", str(baseline), "--out", str(tmp_path / "ray"), *grid,
              "--executor", "ray", "--ray-address", ray_head, "--no-shared-run-dir")
    train_cli("sweep", str(phantom_root), "--from", str(baseline), "--out", str(tmp_path / "shared"), *grid,
              "--executor", "ray", "--ray-address", ray_head, "--shared-run-dir")
    local = _predictions(tmp_path / "local")
    assert len(local) == 4
    assert _predictions(tmp_path / "ray") == local == _predictions(tmp_path / "shared")  # CPU: to the digit
    assert (tmp_path / "ray" / "grid.csv").read_text() == (tmp_path / "local" / "grid.csv").read_text()
    assert (tmp_path / "ray" / "table2.md").exists()
    assert not list((tmp_path / "ray").rglob(".executor-token"))


def test_a_worker_killed_mid_job_is_retried_and_the_sweep_finishes(phantom_root, baseline, ray_head, tmp_path):
    import psutil

    executor = RayExecutor(address=ray_head, max_retries=2)
    spec = advtrain_spec(baseline, phantom_root, epochs=6)
    done: dict = {}
    sweep = threading.Thread(target=lambda: done.update(result=run_sweep(
        spec, [1e-3], [10, 20], tmp_path / "sweep", executor=executor)))
    sweep.start()
    killed = None
    deadline = time.time() + 300
    while killed is None and time.time() < deadline and sweep.is_alive():
        for process in psutil.process_iter(["pid", "cmdline"]):
            if (process.info["cmdline"] or [""])[0].startswith("ray::_ray_job"):
                time.sleep(2)  # well into its first epochs
                process.kill()
                killed = process.info["pid"]
                break
        time.sleep(0.2)
    sweep.join(600)
    executor.close()
    assert killed is not None, "no training task was seen running"
    assert "result" in done and not sweep.is_alive()
    outcomes = executor.history
    assert len(outcomes) == 4 and not any(o.failed for o in outcomes)
    assert max(o.attempts for o in outcomes) >= 2  # the killed job ran again
    for *_, folder in done["result"].runs:
        assert len(RunFolder(folder).finished_models()) == 2


def test_a_job_that_fails_on_its_own_fails_once_and_the_others_finish(phantom_root, baseline, tmp_path):
    import shutil

    damaged = tmp_path / "baseline"
    shutil.copytree(baseline, damaged)
    (damaged / "models" / "sagittal-meniscus" / "best.pt").write_bytes(b"not a checkpoint")
    spec = advtrain_spec(damaged, phantom_root, epochs=1)
    executor = RayExecutor(max_retries=2)  # no address: a local cluster started for this run
    with executor, pytest.raises(RunError) as failed:
        run_sweep(spec, [1e-3], [10], tmp_path / "sweep", executor=executor)
    assert failed.value.code == "JOBS_FAILED" and "sagittal-meniscus" in failed.value.message
    by_key = {o.job.key: o for o in executor.history}
    assert by_key["sagittal-meniscus"].failed and by_key["sagittal-meniscus"].attempts == 1  # not retried
    assert not by_key["sagittal-acl"].failed
    (folder,) = [f for *_, f in [(None, p) for p in (tmp_path / "sweep" / "runs").iterdir()]]
    assert list(RunFolder(folder).finished_models()) == ["sagittal-acl"]
    assert (folder / "report.md").exists()  # what finished is reported
