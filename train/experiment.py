"""Runs of the experiment: the nine baselines, their FGSM retraining, and the sweep over (eps, p).

A run folder holds `run.json` (its configuration, tuning ids, data fingerprint, versions) and one
folder per model under `models/`. Running the same command again skips finished models and resumes
unfinished ones; a folder that holds a different configuration is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import Callable

from mrnet.infer.dataset import fingerprint, load_split
from mrnet.infer.errors import InputError
from mrnet.infer.registry import PLANES, TASKS, model_key

from .checkpoint import save_json
from .loop import ModelJob, Progress, Splits, fit_model
from .presets import Preset


@dataclass(frozen=True)
class RunSpec:
    """The configuration of one run (nine models, or a subset of planes and tasks)."""

    data: str
    preset: Preset
    kind: str = "baseline"  # or "advtrain"
    planes: tuple[str, ...] = PLANES
    tasks: tuple[str, ...] = TASKS
    seed: int = 0
    pretrained: str = "auto"
    select_on: str = "tune"
    device: str = "auto"
    from_run: str | None = None
    eps: float = 0.0
    retrain_pct: float = 0.0
    protocol: str = "seed"
    clamp: str = "valid"
    workers: int = 0

    def identity(self) -> dict:
        """What must match for a folder to be resumed (not the device or the loader workers)."""
        out = asdict(self)
        out["preset"] = self.preset.to_dict()
        out["planes"], out["tasks"] = list(self.planes), list(self.tasks)
        out["data"] = str(Path(self.data).resolve())
        out["from_run"] = str(Path(self.from_run).resolve()) if self.from_run else None
        for volatile in ("device", "workers"):
            out.pop(volatile)
        return out

    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class Run:
    """A prepared run: its folder, its splits, and the jobs still to do."""

    spec: RunSpec
    out: Path
    splits: Splits
    jobs: list[ModelJob] = field(default_factory=list)


def prepare_splits(data: str, tune_fraction: float, seed: int, planes=PLANES) -> tuple[Splits, str, bool]:
    """Open train and valid, hold out the tuning split; also return the fingerprint and `synthetic`."""
    from .data import split_tuning

    train = load_split(data, "train", planes)
    valid = load_split(data, "valid", planes)
    fit, tune = split_tuning(train, tune_fraction, seed)
    synthetic = (Path(data) / "phantom.json").exists()
    return Splits(fit=fit, tune=tune, valid=valid), fingerprint([train, valid], planes), synthetic


def _versions() -> dict:
    import torch

    return {"mrnet-toolkit": version("mrnet-toolkit"), "torch": torch.__version__,
            "torchvision": version("torchvision")}


def read_run(path: str | Path) -> dict:
    run_json = Path(path) / "run.json"
    if not run_json.exists():
        raise InputError("NOT_A_RUN", "no run.json here: not a training run folder", path)
    return json.loads(run_json.read_text())


def prepare(spec: RunSpec, out: str | Path) -> Run:
    """Validate the spec against the data (and the baseline run), write run.json, list the jobs."""
    out = Path(out)
    splits, data_fingerprint, synthetic = prepare_splits(spec.data, spec.preset.tune_fraction, spec.seed,
                                                         spec.planes)
    record = {"kind": spec.kind, "config": spec.identity(), "config_hash": spec.config_hash(),
              "data_fingerprint": data_fingerprint, "synthetic_data": synthetic,
              "tune_ids": list(splits.tune.ids), "versions": _versions()}
    if spec.kind == "advtrain":
        baseline = read_run(spec.from_run)
        if baseline["data_fingerprint"] != data_fingerprint or baseline["tune_ids"] != record["tune_ids"]:
            raise InputError("BASELINE_MISMATCH", "the baseline run was trained on other data or another "
                             "tuning split; retrain it on this data set", spec.from_run)
    existing = out / "run.json"
    if existing.exists():
        previous = json.loads(existing.read_text())
        if previous["config_hash"] != record["config_hash"]:
            raise InputError("RUN_CONFIG_DIFFERS", "this folder holds a run with another configuration; "
                             "choose a new --out", out)
    else:
        out.mkdir(parents=True, exist_ok=True)
        save_json(record, existing)
    run = Run(spec=spec, out=out, splits=splits)
    for plane in spec.planes:
        for task in spec.tasks:
            init_from = None
            if spec.kind == "advtrain":
                init_from = Path(spec.from_run) / "models" / model_key(plane, task) / "best.pt"
                if not init_from.exists():
                    raise InputError("BASELINE_INCOMPLETE", f"no trained {model_key(plane, task)} model",
                                     init_from.parent)
            run.jobs.append(ModelJob(
                plane=plane, task=task, preset=spec.preset, mode=spec.kind, seed=spec.seed,
                pretrained=spec.pretrained, init_from=str(init_from) if init_from else None, eps=spec.eps,
                retrain_pct=spec.retrain_pct, protocol=spec.protocol, clamp=spec.clamp,
                select_on=spec.select_on, device=spec.device, workers=spec.workers))
    return run


def model_dir(run_dir: str | Path, key: str) -> Path:
    return Path(run_dir) / "models" / key


def _fit_in_worker(job: ModelJob, splits: Splits, out: str, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    return fit_model(job, splits, model_dir(out, job.key))


def execute(run: Run, jobs: int = 1, progress_for: Callable[[ModelJob], Progress] | None = None,
            on_done: Callable[[dict], None] | None = None) -> list[dict]:
    """Train every model of the run; `jobs` > 1 trains several models at once in processes."""
    on_done = on_done or (lambda summary: None)
    summaries = []
    if jobs <= 1:
        for job in run.jobs:
            summary = fit_model(job, run.splits, model_dir(run.out, job.key),
                                progress_for(job) if progress_for else None)
            summaries.append(summary)
            on_done(summary)
        return summaries
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_fit_in_worker, job, run.splits, str(run.out), threads) for job in run.jobs]
        for future in as_completed(futures):
            summary = future.result()
            summaries.append(summary)
            on_done(summary)
    order = {job.key: k for k, job in enumerate(run.jobs)}
    return sorted(summaries, key=lambda s: order[s["model"]])


def sweep_specs(base: RunSpec, eps_values: list[float], pct_values: list[float]) -> list[RunSpec]:
    """One advtrain spec per (eps, retrain %) of the grid."""
    return [replace(base, kind="advtrain", eps=eps, retrain_pct=pct) for eps in eps_values for pct in pct_values]
