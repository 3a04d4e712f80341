"""The training library: one entry per journey, behind `mrnet-train` and usable without it.

    run_baseline(spec, out)                         the mrnet-baseline models of a RunSpec
    run_advtrain(spec, out)                         their FGSM retraining (spec = baseline.advtrain(...))
    run_sweep(spec, eps, pcts, out, table_eps)      retraining over an (eps, retrain %) grid, Table 2
    run_pipeline(spec, out)                         baseline, FGSM retraining, bundle, robustness: the demo's journey
    run_robustness(runs, out, against, settings)    finished runs under FGSM and PGD attack (robustness.py)
    run_model(spec, run_dir, plane, task)           one (plane, task) model: the unit of work that a
                                                    process pool (or a cluster) runs

Every entry is resumable: finished models are skipped and unfinished ones resume from their last
checkpoint; a folder holding another configuration is refused. Nothing here prints: the caller
hears progress through `Hooks`.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import Callable

from mrnet.infer.dataset import MRNetSplit, fingerprint, load_split
from mrnet.infer.errors import InputError
from mrnet.infer.registry import model_key

from .rundir import RunFolder, RunRecord
from .spec import PRETRAINED, ModelJob, RunSpec


@dataclass
class Hooks:
    """What the caller hears while work goes on; every hook is optional."""

    # Per-model epoch and step progress, for models trained in this process.
    progress: Callable[[ModelJob], object] = lambda job: None
    model_done: Callable[[dict], None] = lambda summary: None
    announce: Callable[[str], None] = lambda message: None
    exported: Callable[[str], None] = lambda key: None
    stage: Callable[[str, int], None] = lambda name, models: None  # a stage begins, with its model count
    run_done: Callable[["RunResult"], None] = lambda result: None  # a run folder is trained and reported
    attacked: Callable[[str, int, int], None] = lambda run, done, total: None  # exams of a run under attack


@dataclass(frozen=True)
class RunResult:
    folder: Path
    summaries: list[dict]
    report: Path


@dataclass(frozen=True)
class SweepResult:
    runs: list[tuple[float, float, Path]]  # (eps, retrain %, run folder) per configuration
    table2: Path
    table2_csv: Path
    grid_csv: Path


@dataclass(frozen=True)
class RobustnessResult:
    folder: Path
    files: dict[str, Path]  # robustness (.csv), robustness_vs_baseline, robustness_exams, json, png, md
    reports: list[Path]  # the reports of `runs`, rewritten with the section


@dataclass(frozen=True)
class PipelineResult:
    baseline: RunResult
    advtrain: RunResult
    bundle: Path
    robustness: RobustnessResult


@dataclass
class _Prepared:
    spec: RunSpec
    folder: RunFolder
    record: RunRecord
    jobs: list[ModelJob] = field(default_factory=list)


def _versions() -> dict:
    import torch

    return {"mrnet-toolkit": version("mrnet-toolkit"), "torch": torch.__version__,
            "torchvision": version("torchvision")}


def _check_where_it_runs(spec: RunSpec) -> None:
    """Refuse, before any work, a device or a weights file that cannot be used."""
    if spec.pretrained not in PRETRAINED and not Path(spec.pretrained).is_file():
        raise InputError("BAD_PRETRAINED", "no such weights file (or auto, none, imagenet)", spec.pretrained,
                         option="pretrained")
    if spec.device == "cuda":
        from .loop import resolve_device

        resolve_device("cuda")


def splits_of(spec: RunSpec, tune_ids: tuple[str, ...]):
    """The run's fit, tuning and valid splits; the tuning exams are those the run recorded."""
    from .loop import Splits

    train = load_split(spec.data, "train", spec.planes)
    held_out = set(tune_ids)
    return Splits(fit=train.subset([i for i in train.ids if i not in held_out]), tune=train.subset(list(tune_ids)),
                  valid=load_split(spec.data, "valid", spec.planes))


def _tuning_split(spec: RunSpec, train: MRNetSplit) -> tuple[str, ...]:
    from .data import split_tuning

    return split_tuning(train, spec.preset.tune_fraction, spec.seed)[1].ids


def model_jobs(spec: RunSpec) -> list[ModelJob]:
    """One job per (plane, task), in registry order; FGSM retraining starts from the baseline's best.pt."""
    return [ModelJob(spec, plane, task,
                     str(RunFolder(spec.from_run).model(model_key(plane, task)).best) if spec.kind == "advtrain"
                     else None)
            for plane in spec.planes for task in spec.tasks]


def prepare(spec: RunSpec, out: str | Path) -> _Prepared:
    """Check the spec against the data (and its baseline run), write run.json, list the jobs."""
    _check_where_it_runs(spec)
    folder = RunFolder(out)
    train = load_split(spec.data, "train", spec.planes)
    valid = load_split(spec.data, "valid", spec.planes)
    record = RunRecord(kind=spec.kind, spec=spec, config_hash=spec.config_hash(),
                       data_fingerprint=fingerprint([train, valid], spec.planes),
                       synthetic_data=(Path(spec.data) / "phantom.json").exists(),
                       tune_ids=tuple(_tuning_split(spec, train)), versions=_versions())
    jobs = model_jobs(spec)
    if spec.kind == "advtrain":
        baseline = RunFolder(spec.from_run).record()
        if baseline.data_fingerprint != record.data_fingerprint or baseline.tune_ids != record.tune_ids:
            raise InputError("BASELINE_MISMATCH", "the baseline run was trained on other data or another "
                             "tuning split; retrain it on this data set", spec.from_run)
        for job in jobs:
            if not Path(job.init_from).exists():
                raise InputError("BASELINE_INCOMPLETE", f"no trained {job.key} model", Path(job.init_from).parent)
    if folder.exists():
        if folder.record().config_hash != record.config_hash:
            raise InputError("RUN_CONFIG_DIFFERS", "this folder holds a run with another configuration; "
                             "choose a new output folder", folder.path, option="out")
    else:
        folder.write_record(record)
    return _Prepared(spec, folder, record, jobs)


def run_model(spec: RunSpec, run_dir: str | Path, plane: str, task: str, progress=None) -> dict:
    """Train (or resume, or just read back) one model of a prepared run; returns its summary.

    Everything comes from the spec and the run folder, so it runs as well in another process or on
    another machine that sees the data and the run folder.
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
    return fit_model(job, splits_of(spec, record.tune_ids), folder.model(job.key), progress)


def _run_model_in_process(spec: RunSpec, run_dir: str, plane: str, task: str, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    return run_model(spec, run_dir, plane, task)


def _train(spec: RunSpec, out: str | Path, jobs: int, hooks: Hooks) -> RunResult:
    from . import report

    prepared = prepare(spec, out)
    hooks.stage(spec.kind, len(prepared.jobs))
    summaries = []
    if jobs <= 1:
        for job in prepared.jobs:
            summary = run_model(spec, prepared.folder.path, job.plane, job.task, hooks.progress(job))
            summaries.append(summary)
            hooks.model_done(summary)
    else:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(_run_model_in_process, spec, str(prepared.folder.path), job.plane, job.task,
                                   threads) for job in prepared.jobs]
            for future in as_completed(futures):
                summaries.append(future.result())
                hooks.model_done(summaries[-1])
        order = {job.key: k for k, job in enumerate(prepared.jobs)}
        summaries.sort(key=lambda s: order[s["model"]])
    result = RunResult(prepared.folder.path, summaries, report.write_run_report(prepared.folder.path))
    hooks.run_done(result)
    return result


def run_baseline(spec: RunSpec, out: str | Path, jobs: int = 1, hooks: Hooks | None = None) -> RunResult:
    """Train the baseline models of `spec` in `out` (`jobs` models at once, in processes)."""
    if spec.kind != "baseline":
        raise InputError("BAD_OPTION", f"run_baseline takes a baseline spec, not {spec.kind}", option="kind")
    return _train(spec, out, jobs, hooks or Hooks())


def run_advtrain(spec: RunSpec, out: str | Path, jobs: int = 1, hooks: Hooks | None = None) -> RunResult:
    """Retrain the baseline run `spec.from_run` with FGSM examples, in `out`."""
    if spec.kind != "advtrain":
        raise InputError("BAD_OPTION", f"run_advtrain takes an advtrain spec, not {spec.kind}", option="kind")
    return _train(spec, out, jobs, hooks or Hooks())


def advtrain_spec(from_run: str | Path, data: str | Path | None = None, device: str = "auto", workers: int = 0,
                  **changes) -> RunSpec:
    """The FGSM retraining spec of the baseline run in `from_run` (its data unless `data` says
    otherwise); `changes` are `RunSpec.advtrain`'s: eps, retrain_pct, protocol, clamp, epochs."""
    baseline = RunFolder(from_run).record(device, workers).spec
    if data is not None:
        baseline = replace(baseline, data=str(data))
    return baseline.advtrain(from_run, **changes)


def sweep_specs(spec: RunSpec, eps_values: list[float], pct_values: list[float]) -> list[RunSpec]:
    """One advtrain spec per (eps, retrain %) of the grid."""
    return [replace(spec, kind="advtrain", eps=eps, retrain_pct=pct) for eps in eps_values for pct in pct_values]


def _sweep_one(spec: RunSpec, folder: str, jobs: int) -> list[dict]:
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // jobs))
    return _train(spec, folder, 1, Hooks()).summaries


def run_sweep(spec: RunSpec, eps_values: list[float], pct_values: list[float], out: str | Path,
              table_eps: float, jobs: int = 1, hooks: Hooks | None = None) -> SweepResult:
    """Retrain `spec`'s baseline over the (eps, retrain %) grid, then write Table 2 and the grid.

    Each configuration has its own folder under OUT/runs keyed by a hash of its config; `jobs`
    configurations run at once, in processes.
    """
    from . import report

    hooks = hooks or Hooks()
    if table_eps not in eps_values:
        raise InputError("BAD_OPTION", f"{table_eps:g} is not in the eps values", option="table_eps")
    specs = sweep_specs(spec, eps_values, pct_values)
    runs = [(s.eps, s.retrain_pct, Path(out) / "runs" / s.config_hash()) for s in specs]
    hooks.stage("sweep", len(specs) * len(spec.planes) * len(spec.tasks))
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for summaries in pool.map(_sweep_one, specs, [str(f) for _, _, f in runs], [jobs] * len(specs)):
                for summary in summaries:
                    hooks.model_done(summary)
    else:
        for s, (_, _, folder) in zip(specs, runs):
            _train(s, folder, 1, replace(hooks, progress=lambda job: None, stage=lambda name, n: None,
                                         run_done=lambda result: None))
    paths = report.write_table2(out, spec.from_run, runs, table_eps)
    return SweepResult(runs, *paths)


def run_robustness(runs: list[str | Path], out: str | Path, against: str | Path | None = None, settings=None,
                   device: str = "auto", data: str | Path | None = None, jobs: int = 1,
                   hooks: Hooks | None = None) -> RobustnessResult:
    """Evaluate finished runs (and the baseline `against`) under attack; write OUT/robustness.csv, .png
    and the rest (`robustness_report.py`), and a robustness section into the report.md of each run
    in `runs` (not the baseline's: its report is rewritten only when it is evaluated in its own right).

    `settings` is a `robustness.AttackSettings` (default: the paper's ladder, PGD-10). `jobs` runs are
    scored at once, in processes."""
    from . import report, robustness, robustness_report

    hooks = hooks or Hooks()
    settings = settings or robustness.AttackSettings()
    runs, against = [Path(r) for r in runs], Path(against) if against else None
    if not runs:
        raise InputError("BAD_OPTION", "at least one run to evaluate", option="runs")
    hooks.stage("robustness", len(runs) + (against is not None))
    evaluation = robustness.evaluate(runs, against, settings, device, data, jobs, hooks.attacked)
    files = robustness_report.write_results(out, evaluation)
    reports = []
    for run in runs:
        RunFolder(run).point_to_robustness(out)
        reports.append(report.write_run_report(run))
    return RobustnessResult(Path(out), files, reports)


def _evaluated_already(out: Path, runs: list[Path], settings) -> bool:
    """The robustness folder holds this evaluation (the same settings and run configurations) already."""
    import json

    meta_path = out / "robustness.json"
    if not meta_path.exists() or not (out / "robustness.csv").exists():
        return False
    meta = json.loads(meta_path.read_text())
    return (meta["settings"] == settings.to_dict()
            and [r["config_hash"] for r in meta["runs"]] == [RunFolder(r).record().config_hash for r in runs])


def run_pipeline(spec: RunSpec, out: str | Path, jobs: int = 1, hooks: Hooks | None = None) -> PipelineResult:
    """Baseline, FGSM retraining (the preset's eps and retrain %), export, and the retrained run under
    attack against its baseline (the preset's ladder, `robustness.settings_for`): OUT/baseline,
    OUT/advtrain (its report compares against the baseline), OUT/bundle and OUT/robustness.
    Resumable like its parts."""
    from .export import export_run
    from .robustness import settings_for

    hooks = hooks or Hooks()
    out = Path(out)
    baseline = run_baseline(spec, out / "baseline", jobs, hooks)
    advtrain = run_advtrain(spec.advtrain(out / "baseline"), out / "advtrain", jobs, hooks)
    bundle = out / "bundle"
    if not (bundle / "manifest.json").exists():
        hooks.stage("export", len(spec.planes) * len(spec.tasks))
        export_run(out / "advtrain", bundle, on_model=hooks.exported)
    settings = settings_for(spec.preset.name)
    folder = out / "robustness"
    if _evaluated_already(folder, [out / "baseline", out / "advtrain"], settings):
        names = ("robustness", "robustness_vs_baseline", "robustness_exams")
        files = {**{n: folder / f"{n}.csv" for n in names},
                 **{k: folder / f"robustness.{k}" for k in ("json", "png", "md")}}
        robustness = RobustnessResult(folder, files, [advtrain.report])
    else:
        robustness = run_robustness([out / "advtrain"], folder, out / "baseline", settings, spec.device,
                                    jobs=jobs, hooks=hooks)
    return PipelineResult(baseline, advtrain, bundle, robustness)
