"""Training jobs on a Ray cluster: each (configuration, seed, plane, task) model is one Ray task.

    RayExecutor(address=None, cpus_per_job=1, gpus_per_job=None, max_retries=3, shared_run_dir=None)

The driver (the `mrnet-train` process) prepares the run folders, submits one task per unfinished
model and writes what comes back. Every node needs the toolkit installed and the data set at the
same path (a read-only mount or a copy); the run folder need not be shared:

- not shared: a task trains in a temporary folder on its node (the driver sends run.json and, for
  FGSM retraining, the baseline model) and returns best.pt, metrics.csv, predictions.csv and
  done.json, which the driver writes into the run folder (done.json last);
- shared (the task finds the token the driver wrote into the run folder, or `shared_run_dir=True`):
  the task trains in the run folder itself, checkpoints every epoch, and a retried task resumes from
  its last epoch.

A task whose worker process or node dies is retried up to `max_retries` times (Ray's own retry of
system failures); a task that raises (bad data, a diverged model) is not retried: it fails once with
its error code and the other tasks carry on. Ray is imported only here.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from mrnet.infer.errors import InputError

from .checkpoint import save_bytes, save_text
from .jobs import Job, Outcome, failure
from .hooks import Hooks
from .rundir import RunFolder

TOKEN_FILE = ".executor-token"  # written by the driver: a task that can read it shares the run folder
ARTEFACTS = ("best.pt", "metrics.csv", "predictions.csv")  # then done.json, last


def _board_class():
    import ray

    @ray.remote(num_cpus=0)
    class Board:
        """Which jobs have started, and how often (a retried job starts again)."""

        def __init__(self):
            self.starts: dict[str, int] = {}

        def started(self, name: str) -> None:
            self.starts[name] = self.starts.get(name, 0) + 1

        def get(self) -> dict[str, int]:
            return self.starts

    return Board


def _ray_job(job: Job, record: dict, token: str, init_model: bytes | None, threads: int, board,
             require_shared: bool | None) -> dict:
    """One model on a worker: in the shared run folder, or in a temporary one whose artefacts go back."""
    import ray

    from .jobs import train_job
    from .rundir import RunRecord

    ray.get(board.started.remote(job.name))
    folder = RunFolder(job.run_dir)
    token_file = folder.path / TOKEN_FILE
    shared = require_shared is not False and token_file.is_file() and token_file.read_text() == token
    if require_shared and not shared:
        raise InputError("RUN_DIR_NOT_SHARED", "the run folder is not visible from this node", folder.path,
                         option="shared_run_dir")
    if shared:
        return {"summary": train_job(job, threads), "files": None}
    with tempfile.TemporaryDirectory(prefix="mrnet-job-") as scratch:
        local = RunFolder(scratch)
        local.write_record(RunRecord.from_dict(record, job.spec.device, job.spec.workers))
        init_from = None
        if init_model is not None:
            init_from = str(Path(scratch) / "init.pt")
            Path(init_from).write_bytes(init_model)
        moved = Job(job.spec, local.path, job.plane, job.task)
        summary = train_job(moved, threads, init_from=init_from)
        model = local.model(job.key)
        return {"summary": summary, "files": {name: (model.path / name).read_bytes() for name in ARTEFACTS}}


def _call_with_threads(threads: int, function, args: tuple):
    import torch

    torch.set_num_threads(threads)
    return function(*args)


def _write_artefacts(job: Job, files: dict[str, bytes], summary: dict) -> None:
    """Into the driver's run folder, each file atomically, done.json last (it marks the model done)."""
    model = RunFolder(job.run_dir).model(job.key)
    for name in ARTEFACTS:
        save_bytes(files[name], model.path / name)
    model.write_summary(summary)


@dataclass
class RayExecutor:
    address: str | None = None  # None: RAY_ADDRESS, else a local cluster started in this process
    cpus_per_job: float = 1
    gpus_per_job: float | None = None  # None: 1 when the cluster has GPUs, else 0
    max_retries: int = 3
    shared_run_dir: bool | None = None  # None: detect per task
    local: bool = field(default=False, init=False)
    connected_here: bool = field(default=False, init=False)
    history: list[Outcome] = field(default_factory=list, init=False)  # every outcome of every run()

    def connect(self) -> None:
        import ray

        if ray.is_initialized():
            return
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        address = self.address or os.environ.get("RAY_ADDRESS")
        try:
            if address:
                ray.init(address=address, log_to_driver=False, logging_level="ERROR")
            else:
                ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                         logging_level="ERROR")
            self.connected_here = True
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise InputError("RAY_UNREACHABLE", f"cannot connect to the Ray cluster ({error})", address,
                             option="ray_address") from None

    def close(self) -> None:
        """Disconnect; a local cluster this executor started stops, a cluster it joined runs on."""
        import ray

        if self.connected_here and ray.is_initialized():
            ray.shutdown()
        self.connected_here = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _gpus(self) -> float:
        import ray

        if self.gpus_per_job is not None:
            return self.gpus_per_job
        return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0

    def map(self, function, arguments: Sequence[tuple]) -> list:
        """`function(*args)` for each tuple as Ray tasks (with this executor's resources and retries);
        the nodes must see what the arguments name (run folders, data)."""
        import ray
        from ray.exceptions import RayTaskError

        self.connect()
        task = ray.remote(_call_with_threads).options(num_cpus=self.cpus_per_job, num_gpus=self._gpus(),
                                                      max_retries=self.max_retries, retry_exceptions=False)
        refs = [task.remote(max(1, int(self.cpus_per_job)), function, args) for args in arguments]
        try:
            return ray.get(refs)
        except RayTaskError as error:
            raise (error.cause if error.cause is not None else error) from None

    def run(self, jobs: Sequence[Job], hooks: Hooks) -> list[Outcome]:
        import ray
        from ray.exceptions import RayTaskError

        self.connect()
        board = _board_class().remote()
        task = ray.remote(_ray_job).options(num_cpus=self.cpus_per_job, num_gpus=self._gpus(),
                                            max_retries=self.max_retries, retry_exceptions=False)
        tokens: dict[Path, str] = {}
        baselines: dict[str, object] = {}
        pending = {}
        started = time.perf_counter()
        for k, job in enumerate(jobs):
            folder = RunFolder(job.run_dir)
            if folder.path not in tokens:
                tokens[folder.path] = secrets.token_hex(16)
                save_text(tokens[folder.path], folder.path / TOKEN_FILE)
            init = None
            if job.spec.kind == "advtrain":
                best = RunFolder(job.spec.from_run).model(job.key).best
                if str(best) not in baselines:
                    baselines[str(best)] = ray.put(best.read_bytes())
                init = baselines[str(best)]
            record = folder.record().to_dict()
            threads = max(1, int(self.cpus_per_job))
            ref = task.remote(job, record, tokens[folder.path], init, threads, board, self.shared_run_dir)
            pending[ref] = k
        outcomes: dict[int, Outcome] = {}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in ready:
                    k = pending.pop(ref)
                    job = jobs[k]
                    try:
                        result = ray.get(ref)
                        if result["files"] is not None:
                            _write_artefacts(job, result["files"], result["summary"])
                        outcomes[k] = Outcome(job, result["summary"])
                        hooks.model_done(result["summary"])
                    except RayTaskError as error:
                        outcomes[k] = failure(job, error.cause if error.cause is not None else error)
                    except ray.exceptions.RayError as error:  # the worker died more often than allowed
                        outcomes[k] = Outcome(job, code="WORKER_DIED", message=f"{type(error).__name__}: {error}")
                    outcomes[k].seconds = time.perf_counter() - started
                starts = ray.get(board.get.remote())
                running = sum(1 for k in pending.values() if jobs[k].name in starts)
                failed = sum(o.failed for o in outcomes.values())
                hooks.board(len(outcomes) - failed, running, failed, len(jobs))
            starts = ray.get(board.get.remote())
            for outcome in outcomes.values():
                outcome.attempts = starts.get(outcome.job.name, 1)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            for path in tokens:
                (path / TOKEN_FILE).unlink(missing_ok=True)
        self.history += [outcomes[k] for k in range(len(jobs))]
        return [outcomes[k] for k in range(len(jobs))]
