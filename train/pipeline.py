"""The training library: one entry per journey, behind `mrnet-train` and usable without it.

    run_baseline(spec, out)                         the mrnet-baseline models of a RunSpec
    run_advtrain(spec, out)                         their FGSM retraining (spec = baseline.advtrain(...))
    run_sweep(spec, eps, pcts, out, table_eps)      retraining over an (eps, retrain %) grid, Table 2
    run_pipeline(spec, out, seeds)                  baseline, FGSM retraining, bundle, robustness:
                                                    the demo's journey
    run_replicates(specs, out)                      the same run for several seeds (OUT/seed-<k>/)
    run_robustness(runs, out, against, settings)    finished runs under FGSM and PGD attack
    run_model(spec, run_dir, plane, task)           one (plane, task) model: the unit of work that a
                                                    process pool (or a cluster) runs

Every entry is resumable: finished models are skipped and unfinished ones resume from their last
checkpoint; a folder holding another configuration is refused. Nothing here prints: the caller
hears progress through `Hooks`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import Sequence

from mrnet.infer.dataset import MRNetSplit, fingerprint, load_split
from mrnet.infer.errors import InputError

from .executors import Executor, LocalExecutor, raise_failures
from .hooks import Hooks
from .jobs import Job, model_jobs, run_model  # noqa: F401 - run_model: the one-job entry, also here
from .rundir import RunFolder, RunRecord, replicate_folders, replicate_path
from .spec import PRETRAINED, ModelJob, RunSpec


@dataclass(frozen=True)
class RunResult:
    folder: Path
    summaries: list[dict]
    report: Path


@dataclass(frozen=True)
class ReplicateResult:
    runs: list[RunResult]  # one per seed
    report: Path  # the set's report; for one seed, the run's own


@dataclass(frozen=True)
class SweepResult:
    runs: list[tuple[float, float, int, Path]]  # (eps, retrain %, seed, run folder) per configuration
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
    baseline: ReplicateResult
    advtrain: ReplicateResult
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


def _check_where_it_runs(spec: RunSpec, check_device: bool) -> None:
    """Refuse, before any work, a device or a weights file that cannot be used."""
    if spec.pretrained not in PRETRAINED and not Path(spec.pretrained).is_file():
        raise InputError("BAD_PRETRAINED", "no such weights file (or auto, none, imagenet)", spec.pretrained,
                         option="pretrained")
    if spec.device == "cuda" and check_device:
        from .loop import resolve_device

        resolve_device("cuda")


def _tuning_split(spec: RunSpec, train: MRNetSplit) -> tuple[str, ...]:
    """Held out of train for selection and fusion. Its seed is fixed, not the run's: replicates of a
    run (other seeds) must be selected, fused and compared on the same tuning exams."""
    from .data import TUNING_SPLIT_SEED, split_tuning

    return split_tuning(train, spec.preset.tune_fraction, TUNING_SPLIT_SEED)[1].ids


def prepare(spec: RunSpec, out: str | Path, check_device: bool = True) -> _Prepared:
    """Check the spec against the data (and its baseline run), write run.json, list the jobs.
    `check_device`: the models train on this machine, so a device it lacks is refused here."""
    _check_where_it_runs(spec, check_device)
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


def _train_runs(runs: Sequence[tuple[RunSpec, Path]], executor: Executor, hooks: Hooks,
                stage: str | None = None) -> list[RunResult]:
    """Prepare every run, train all their unfinished models with `executor` (one job list, so a
    cluster runs seeds and configurations side by side), then report each run. A failed job leaves
    the others' work in place and is reported, with its code, after all runs are reported."""
    from . import report

    prepared = [prepare(spec, out, check_device=executor.local) for spec, out in runs]
    jobs = [Job(p.spec, p.folder.path, j.plane, j.task) for p in prepared for j in p.jobs
            if not p.folder.model(j.key).finished]
    hooks.stage(stage or runs[0][0].kind, len(jobs))
    outcomes = executor.run(jobs, hooks) if jobs else []
    results = []
    for p in prepared:
        summaries = [p.folder.model(j.key).summary() for j in p.jobs if p.folder.model(j.key).finished]
        result = RunResult(p.folder.path, summaries, report.write_run_report(p.folder.path))
        hooks.run_done(result)
        results.append(result)
    raise_failures(outcomes)
    return results


def _executor(executor: Executor | None, jobs: int) -> Executor:
    return executor if executor is not None else LocalExecutor(jobs)


def run_baseline(spec: RunSpec, out: str | Path, jobs: int = 1, hooks: Hooks | None = None,
                 executor: Executor | None = None) -> RunResult:
    """Train the baseline models of `spec` in `out` (`jobs` models at once, in local processes,
    unless an `executor` says where)."""
    if spec.kind != "baseline":
        raise InputError("BAD_OPTION", f"run_baseline takes a baseline spec, not {spec.kind}", option="kind")
    return _train_runs([(spec, Path(out))], _executor(executor, jobs), hooks or Hooks())[0]


def run_advtrain(spec: RunSpec, out: str | Path, jobs: int = 1, hooks: Hooks | None = None,
                 executor: Executor | None = None) -> RunResult:
    """Retrain the baseline run `spec.from_run` with FGSM examples, in `out`."""
    if spec.kind != "advtrain":
        raise InputError("BAD_OPTION", f"run_advtrain takes an advtrain spec, not {spec.kind}", option="kind")
    return _train_runs([(spec, Path(out))], _executor(executor, jobs), hooks or Hooks())[0]


def advtrain_spec(from_run: str | Path, data: str | Path | None = None, device: str = "auto", workers: int = 0,
                  **changes) -> RunSpec:
    """The FGSM retraining spec of the baseline run in `from_run` (its data unless `data` says
    otherwise); `changes` are `RunSpec.advtrain`'s: eps, retrain_pct, protocol, clamp, epochs."""
    baseline = RunFolder(from_run).record(device, workers).spec
    if data is not None:
        baseline = replace(baseline, data=str(data))
    return baseline.advtrain(from_run, **changes)


def run_replicates(specs: Sequence[RunSpec], out: str | Path, jobs: int = 1, hooks: Hooks | None = None,
                   executor: Executor | None = None) -> ReplicateResult:
    """The same run for each seed of `specs` (specs that differ in their seed, and for FGSM
    retraining in the baseline replicate they start from): OUT itself for one seed, OUT/seed-<k> for
    several, and then the set's report (mean +- sd across seeds, the two-level comparison)."""
    from .replicates import write_set_report

    hooks = hooks or Hooks()
    seeds = tuple(s.seed for s in specs)
    if not specs or len(set(seeds)) != len(seeds):
        raise InputError("BAD_OPTION", f"one spec per seed, each seed once, not {list(seeds)}", option="seeds")
    results = _train_runs([(s, replicate_path(out, s.seed, seeds)) for s in specs], _executor(executor, jobs), hooks)
    return ReplicateResult(results, results[0].report if len(results) == 1 else write_set_report(out))


def baseline_replicates(spec: RunSpec, seeds: Sequence[int]) -> list[RunSpec]:
    return [replace(spec, seed=seed) for seed in seeds]


def advtrain_replicates(from_run: str | Path, seeds: Sequence[int] | None = None, data: str | Path | None = None,
                        device: str = "auto", workers: int = 0, **changes) -> list[RunSpec]:
    """FGSM retraining specs of a baseline run or replicate set, one per seed (default: every seed
    the baseline has); `changes` as `advtrain_spec`'s."""
    folders = replicate_folders(from_run)
    missing = [seed for seed in (seeds or ()) if seed not in folders]
    if missing:
        raise InputError("BASELINE_INCOMPLETE", f"no baseline run for seed(s) {', '.join(map(str, missing))} "
                         f"(it has {', '.join(map(str, folders))})", from_run, option="seeds")
    return [advtrain_spec(folders[seed], data, device, workers, **changes) for seed in (seeds or folders)]


def sweep_specs(spec: RunSpec, eps_values: Sequence[float], pct_values: Sequence[float]) -> list[RunSpec]:
    """One advtrain spec per (eps, retrain %) of the grid."""
    return [replace(spec, kind="advtrain", eps=eps, retrain_pct=pct) for eps in eps_values for pct in pct_values]


def table_eps_values(eps_values: Sequence[float], table_eps: float | None) -> list[float]:
    """The eps Table 2 is written for: the one asked for, or else each non-zero eps (or the only one)."""
    if table_eps is not None:
        if table_eps not in eps_values:
            raise InputError("BAD_OPTION", f"{table_eps:g} is not one of the eps values "
                             f"{', '.join(f'{e:g}' for e in eps_values)}", option="table_eps")
        return [table_eps]
    nonzero = [e for e in dict.fromkeys(eps_values) if e != 0]
    return nonzero or list(dict.fromkeys(eps_values))


def run_sweep(specs: RunSpec | Sequence[RunSpec], eps_values: Sequence[float], pct_values: Sequence[float],
              out: str | Path, table_eps: float | None = None, jobs: int = 1, hooks: Hooks | None = None,
              executor: Executor | None = None) -> SweepResult:
    """Retrain a baseline over the (eps, retrain %) grid, then write Table 2 and the grid.

    `specs`: an advtrain spec of the baseline (`advtrain_spec`), or one per replicate seed
    (`advtrain_replicates`). Each (configuration, seed) has its own folder under OUT/runs keyed by a
    hash of its config; all their models are one job list for the executor (`jobs` local processes
    by default). Table 2 is written for `table_eps`, or for each non-zero eps.
    """
    from . import table2

    hooks = hooks or Hooks()
    specs = [specs] if isinstance(specs, RunSpec) else list(specs)
    tables = table_eps_values(eps_values, table_eps)
    grid = [s for base in specs for s in sweep_specs(base, eps_values, pct_values)]
    runs = [(s.eps, s.retrain_pct, s.seed, Path(out) / "runs" / s.config_hash()) for s in grid]
    _train_runs([(s, folder) for s, (*_, folder) in zip(grid, runs)], _executor(executor, jobs),
                replace(hooks, progress=lambda job: None, run_done=lambda result: None), stage="sweep")
    baselines = {s.seed: Path(s.from_run) for s in specs}
    paths = table2.write_table2(out, baselines, runs, tables)
    return SweepResult(runs, *paths)


def run_robustness(runs: list[str | Path], out: str | Path, against: str | Path | None = None, settings=None,
                   device: str = "auto", data: str | Path | None = None, jobs: int = 1,
                   hooks: Hooks | None = None, executor: Executor | None = None) -> RobustnessResult:
    """Evaluate finished runs (and the baseline `against`) under attack; write OUT/robustness.csv, .png
    and the rest (`robustness_report.py`), and a robustness section into the report.md of each run
    in `runs` (not the baseline's: its report is rewritten only when it is evaluated in its own right).

    `settings` is a `robustness.AttackSettings` (default: the paper's ladder, PGD-10). Each run is one
    job of the executor (`jobs` local processes by default; on Ray, the nodes need the run folders and
    the data at the same paths)."""
    from . import report, robustness, robustness_report

    hooks = hooks or Hooks()
    settings = settings or robustness.AttackSettings()
    runs, against = [Path(r) for r in runs], Path(against) if against else None
    if not runs:
        raise InputError("BAD_OPTION", "at least one run to evaluate", option="runs")
    hooks.stage("robustness", len(runs) + (against is not None))
    evaluation = robustness.evaluate(runs, against, settings, device, data, _executor(executor, jobs), hooks.attacked)
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


def run_pipeline(spec: RunSpec, out: str | Path, jobs: int = 1, hooks: Hooks | None = None,
                 seeds: Sequence[int] | None = None, executor: Executor | None = None) -> PipelineResult:
    """Baseline, FGSM retraining (the preset's eps and retrain %), export, and the retrained run under
    attack against its baseline (the preset's ladder, `robustness.settings_for`): OUT/baseline,
    OUT/advtrain (its report compares against the baseline), OUT/bundle and OUT/robustness, for
    `spec.seed` or for each of `seeds` (OUT/baseline/seed-<k>, ...; the bundle ships the first seed's
    models, and the first seed is attacked). Resumable like its parts."""
    from .export import export_run
    from .robustness import settings_for

    hooks = hooks or Hooks()
    out = Path(out)
    seeds = tuple(seeds or (spec.seed,))
    executor = _executor(executor, jobs)
    bases = baseline_replicates(spec, seeds)
    baseline = run_replicates(bases, out / "baseline", hooks=hooks, executor=executor)
    advtrain = run_replicates([b.advtrain(replicate_path(out / "baseline", b.seed, seeds)) for b in bases],
                              out / "advtrain", hooks=hooks, executor=executor)
    bundle = out / "bundle"
    if not (bundle / "manifest.json").exists():
        hooks.stage("export", len(spec.planes) * len(spec.tasks))
        export_run(advtrain.runs[0].folder, bundle, on_model=hooks.exported)
    settings = settings_for(spec.preset.name)
    folder = out / "robustness"
    attacked = [advtrain.runs[0].folder]
    reference = baseline.runs[0].folder
    if _evaluated_already(folder, [reference, *attacked], settings):
        names = ("robustness", "robustness_vs_baseline", "robustness_exams")
        files = {**{n: folder / f"{n}.csv" for n in names},
                 **{k: folder / f"robustness.{k}" for k in ("json", "png", "md")}}
        robustness = RobustnessResult(folder, files, [advtrain.runs[0].report])
    else:
        robustness = run_robustness(attacked, folder, reference, settings, spec.device, hooks=hooks,
                                    executor=executor)
    return PipelineResult(baseline, advtrain, bundle, robustness)

