"""Where training jobs run: this process, local processes, or a Ray cluster (`ray_executor.py`).

A job is one model of a prepared run: (spec, run folder, plane, task), the unit `pipeline.run_model`
trains. An executor runs a list of jobs and returns one `Outcome` per job, in order. A job that
fails for a reason of its own (bad data, a diverged model) is recorded with its error code and the
others carry on; `pipeline` then writes what finished and reports the failures in one error.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from mrnet.infer.errors import MRNetError, RunError

from .hooks import Hooks
from .jobs import Job, Outcome, failure, train_job  # noqa: F401 - Outcome, failure: part of this interface


class Executor(Protocol):
    local: bool  # runs on this machine (the driver can check the device for it)

    def run(self, jobs: Sequence[Job], hooks: Hooks) -> list[Outcome]: ...

    def map(self, function, arguments: Sequence[tuple]) -> list:
        """`function(*args)` for each tuple of `arguments`, side by side; results in order; the first
        error is raised (for work that is all-or-nothing, such as scoring runs under attack)."""


def raise_failures(outcomes: Sequence[Outcome]) -> None:
    """One error for the failed jobs: the jobs' own error when they all failed alike with one of
    ours (e.g. every model refused the same bad option), else JOBS_FAILED listing each."""
    failed = [o for o in outcomes if o.failed]
    if not failed:
        return
    if len(failed) == len(outcomes) and len({o.code for o in failed}) == 1 and isinstance(failed[0].error, MRNetError):
        raise failed[0].error
    lines = "; ".join(f"{o.job.name} [{o.code}]" for o in failed[:8]) + (" ..." if len(failed) > 8 else "")
    rest = "the others finished; " if len(failed) < len(outcomes) else ""
    raise RunError("JOBS_FAILED", f"{len(failed)} of {len(outcomes)} jobs failed: {lines}; first: {failed[0].message}; "
                   f"{rest}running the same command again retries only the failed ones")


@dataclass
class LocalExecutor:
    """`processes` models at once in local processes (each with cores / processes torch threads),
    or, with one, in this process with per-model progress."""

    processes: int = 1
    local: bool = field(default=True, init=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def map(self, function, arguments: Sequence[tuple]) -> list:
        if self.processes <= 1 or len(arguments) <= 1:
            return [function(*args) for args in arguments]
        threads = max(1, (os.cpu_count() or 1) // self.processes)
        with ProcessPoolExecutor(max_workers=min(self.processes, len(arguments))) as pool:
            return list(pool.map(_with_threads, [threads] * len(arguments), [function] * len(arguments), arguments))

    def run(self, jobs: Sequence[Job], hooks: Hooks) -> list[Outcome]:
        import time

        outcomes: dict[int, Outcome] = {}
        started = time.perf_counter()

        def finish(k: int, outcome: Outcome) -> None:
            outcome.seconds = time.perf_counter() - started
            outcomes[k] = outcome
            if outcome.summary is not None:
                hooks.model_done(outcome.summary)
            failed = sum(o.failed for o in outcomes.values())
            hooks.board(len(outcomes) - failed, min(self.processes, len(jobs) - len(outcomes)), failed, len(jobs))

        if self.processes <= 1:
            for k, job in enumerate(jobs):
                try:
                    finish(k, Outcome(job, train_job(job, progress=hooks.progress(job))))
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as error:  # noqa: BLE001 - recorded with its code; the others carry on
                    finish(k, failure(job, error))
            return [outcomes[k] for k in range(len(jobs))]
        threads = max(1, (os.cpu_count() or 1) // self.processes)
        with ProcessPoolExecutor(max_workers=self.processes) as pool:
            futures = {pool.submit(train_job, job, threads): k for k, job in enumerate(jobs)}
            for future in as_completed(futures):
                k = futures[future]
                try:
                    finish(k, Outcome(jobs[k], future.result()))
                except Exception as error:  # noqa: BLE001 - recorded with its code; the others carry on
                    finish(k, failure(jobs[k], error))
        return [outcomes[k] for k in range(len(jobs))]


def _with_threads(threads: int, function, args: tuple):
    import torch

    torch.set_num_threads(threads)
    return function(*args)


EXECUTORS = ("local", "ray")


def make_executor(name: str = "local", jobs: int = 1, **ray_options) -> Executor:
    """`local` (`jobs` processes) or `ray` (options: address, cpus_per_job, gpus_per_job,
    max_retries, shared_run_dir; see `ray_executor.RayExecutor`)."""
    if name == "local":
        return LocalExecutor(jobs)
    if name == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(**ray_options)
    from mrnet.infer.errors import InputError

    raise InputError("BAD_OPTION", f"one of {', '.join(EXECUTORS)}, not {name!r}", option="executor")
