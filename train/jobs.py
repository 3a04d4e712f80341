"""One model of a run, the unit of work: what a job is, and how it trains wherever it runs.

`run_model` needs only the spec and a folder holding the run's run.json (and the data at the
spec's path), so the same call trains a model in this process, in a local worker process or on a
cluster node (`executors.py`, `ray_executor.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from mrnet.infer.dataset import load_split
from mrnet.infer.errors import InputError, MRNetError
from mrnet.infer.registry import model_key

from .rundir import RunFolder
from .spec import ModelJob, RunSpec


@dataclass(frozen=True)
class Job:
    spec: RunSpec
    run_dir: Path
    plane: str
    task: str

    @property
    def key(self) -> str:
        return model_key(self.plane, self.task)

    @property
    def name(self) -> str:
        return f"{self.run_dir}/{self.key}"

    @property
    def epochs(self) -> int:
        return self.spec.preset.epochs if self.spec.kind == "baseline" else self.spec.preset.adv_epochs


def model_jobs(spec: RunSpec) -> list[ModelJob]:
    """One job per (plane, task), in registry order; FGSM retraining starts from the baseline's best.pt."""
    return [ModelJob(spec, plane, task,
                     str(RunFolder(spec.from_run).model(model_key(plane, task)).best) if spec.kind == "advtrain"
                     else None)
            for plane in spec.planes for task in spec.tasks]


def splits_of(spec: RunSpec, tune_ids: tuple[str, ...]):
    """The run's fit, tuning and valid splits; the tuning exams are those the run recorded."""
    from .loop import Splits

    train = load_split(spec.data, "train", spec.planes)
    held_out = set(tune_ids)
    return Splits(fit=train.subset([i for i in train.ids if i not in held_out]), tune=train.subset(list(tune_ids)),
                  valid=load_split(spec.data, "valid", spec.planes))


def run_model(spec: RunSpec, run_dir: str | Path, plane: str, task: str, progress=None,
              init_from: str | None = None) -> dict:
    """Train (or resume, or just read back) one model of a prepared run; returns its summary.

    Everything comes from the spec and the run folder, so it runs as well in another process or on
    another machine that sees the data and a run folder holding its run.json. `init_from` overrides
    where an FGSM retraining finds its baseline model (a copy, on a node without the baseline run).
    """
    from .loop import fit_model

    folder = RunFolder(run_dir)
    record = folder.record()
    if record.config_hash != spec.config_hash():
        raise InputError("RUN_CONFIG_DIFFERS", "this folder holds a run with another configuration",
                         folder.path, option="out")
    job = next((j for j in model_jobs(spec) if (j.plane, j.task) == (plane, task)), None)
    if job is None:
        raise InputError("BAD_OPTION", f"{plane}-{task} is not one of the run's models", folder.path)
    if init_from is not None:
        job = replace(job, init_from=init_from)
    return fit_model(job, splits_of(spec, record.tune_ids), folder.model(job.key), progress)


def train_job(job: Job, threads: int | None = None, progress=None, init_from: str | None = None) -> dict:
    """Run one job here (in this process); `threads` sets torch's intra-op threads."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    return run_model(job.spec, job.run_dir, job.plane, job.task, progress, init_from=init_from)


@dataclass
class Outcome:
    job: Job
    summary: dict | None = None  # done.json, when the job finished
    code: str | None = None  # the error code, when it failed
    message: str | None = None
    attempts: int = 1  # times the job was started (a retried job after its worker died: 2 or more)
    seconds: float = 0.0
    error: BaseException | None = field(default=None, repr=False)  # the exception, where it is at hand

    @property
    def failed(self) -> bool:
        return self.summary is None


def failure(job: Job, error: BaseException) -> Outcome:
    """The outcome of a job that raised: its code when it is one of ours, else the exception's type."""
    if isinstance(error, MRNetError):
        return Outcome(job, code=error.code, message=error.one_line(), error=error)
    return Outcome(job, code="JOB_FAILED", message=f"{type(error).__name__}: {error}", error=error)
