"""`mrnet-train`: check data, synthesise phantoms, train, retrain adversarially, export.

Heavy imports (torch) happen inside the commands that need them, so `check` and `synth` start fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from mrnet.infer import console
from mrnet.infer.registry import PLANES, SPLITS, TASK_TITLES, TASKS

from .cli_display import TrainingProgress, out, print_robustness_table, print_table2_headline

app = typer.Typer(cls=console.GuardedGroup, add_completion=False, no_args_is_help=True,
                  pretty_exceptions_show_locals=False,
                  help="Train, harden and export the nine MRNet knee-MRI models. Not for clinical use.")


@app.callback()
def _options(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False):
    console.set_debug(debug)


@app.command()
def check(
    root: Annotated[Path, typer.Argument(help="MRNet-v1.0 folder (train/, valid/, *.csv).")],
    deep: Annotated[bool, typer.Option(help="Also read every voxel to check the 0..255 span.")] = False,
):
    """Validate an MRNet-v1.0 data set: list every problem, then summarise it."""
    from mrnet.infer.dataset import check_dataset

    report = check_dataset(root, deep=deep)
    table = Table(title=f"MRNet data set {root}")
    table.add_column("split")
    table.add_column("exams", justify="right")
    for task in TASKS:
        table.add_column(f"{TASK_TITLES[task]} %", justify="right")
    for plane in PLANES:
        table.add_column(f"{plane} slices", justify="right")
    for split in SPLITS:
        summary = report.summaries.get(split)
        if summary is None:
            continue
        prevalence = [f"{100 * summary.prevalence[t]:.1f}" if summary.exams else "-" for t in TASKS]
        ranges = [f"{r[0]}-{r[1]}" if r else "-" for r in (summary.slice_range[p] for p in PLANES)]
        table.add_row(split, str(summary.exams), *prevalence, *ranges)
    out.print(table)
    for problem in report.problems:
        style = "red" if problem.severity == "error" else "yellow"
        out.print(f"[{style}]{problem.severity.upper()}[/{style}] ", end="")
        out.print(str(problem).split(" ", 1)[1], markup=False)
    out.print(f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)")
    if report.errors:
        raise typer.Exit(2)


@app.command()
def synth(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="Folder to write the MRNet layout into.")],
    train: Annotated[int, typer.Option(min=1, help="Training exams.")] = 100,
    valid: Annotated[int, typer.Option(min=1, help="Validation exams.")] = 30,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed writes the same data.")] = 0,
    difficulty: Annotated[float, typer.Option(min=0.0, max=1.0, help="0 easy .. 1 hard.")] = 0.5,
    slices: Annotated[str, typer.Option(help="Slice-count range per plane, MIN-MAX within 17-61.")] = "20-40",
    workers: Annotated[Optional[int], typer.Option(help="Processes (default: one per core).")] = None,
):
    """Write a synthetic knee-phantom data set in the MRNet-v1.0 layout (plus phantom.json)."""
    from rich.progress import Progress

    from mrnet.infer.errors import InputError
    from mrnet.infer.synthetic.dataset import write_dataset
    from mrnet.infer.synthetic.phantom import PhantomConfig

    try:
        low, high = (int(v) for v in slices.split("-"))
        config = PhantomConfig(difficulty=difficulty, slice_range=(low, high))
    except ValueError as error:
        raise InputError("BAD_OPTION", f"--slices {slices!r}: {error}") from None
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InputError("OUTPUT_NOT_EMPTY", "folder exists and is not empty; choose a new one", out_dir)
    with Progress(transient=True) as progress:
        bar = progress.add_task("phantom exams", total=train + valid)
        write_dataset(out_dir, train, valid, seed=seed, config=config, workers=workers,
                      progress=lambda: progress.advance(bar))
    out.print(f"wrote {train} train + {valid} valid phantom exams to {out_dir} (synthetic, seed {seed})")


# ---------------------------------------------------------------------------------------------
# Training: options become RunSpecs, `pipeline` does the work, this layer draws and prints.


def _seeds(text: str | None) -> tuple[int, ...] | None:
    from mrnet.infer.errors import InputError

    if text is None:
        return None
    try:
        seeds = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError("BAD_OPTION", f"comma-separated whole numbers, not {text!r}", option="seeds") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise InputError("BAD_OPTION", f"one or more distinct seeds, not {text!r}", option="seeds")
    return seeds


def _spec(data: Path, preset: str, backbone, epochs, planes: str, tasks: str, seed: int, pretrained: str,
          select_on: str, device: str, workers: int, lr: float | None = None):
    """A baseline RunSpec from the command line's options (the spec checks them itself)."""
    from mrnet.infer.errors import InputError
    from mrnet.infer.registry import parse_choices
    from mrnet.train.presets import get_preset
    from mrnet.train.spec import RunSpec

    try:
        chosen_planes, chosen_tasks = parse_choices(planes, PLANES, "plane"), parse_choices(tasks, TASKS, "task")
    except ValueError as error:
        raise InputError("BAD_OPTION", str(error)) from None
    return RunSpec(data=str(data), preset=get_preset(preset).with_overrides(backbone=backbone, epochs=epochs, lr=lr),
                   planes=chosen_planes, tasks=chosen_tasks, seed=seed, pretrained=pretrained, select_on=select_on,
                   device=device, workers=workers)


Data = Annotated[Path, typer.Argument(metavar="DATA", help="MRNet-v1.0 folder (or a phantom from `synth`).")]
Planes = Annotated[str, typer.Option(help="Comma-separated planes, or all.")]
Tasks = Annotated[str, typer.Option(help="Comma-separated tasks (abnormal, acl, meniscus), or all.")]
PresetOpt = Annotated[str, typer.Option(help="paper (mrnet-baseline, 50 epochs) or demo (minutes on a CPU).")]
BackboneOpt = Annotated[Optional[str], typer.Option(help="alexnet (mrnet-baseline) or tiny; default: the preset's.")]
EpochsOpt = Annotated[Optional[int], typer.Option(min=1, help="Override the preset's number of epochs.")]
SeedsOpt = Annotated[str, typer.Option(help="Replicate seeds, comma-separated: each a full replicate (initial "
                                              "weights, exam order, augmentation, FGSM subset); several write "
                                              "OUT/seed-<k>.")]
PretrainedOpt = Annotated[str, typer.Option(help="auto, none, imagenet or a local weights file.")]
SelectOpt = Annotated[str, typer.Option(help="tune (held out of train) or valid (biased; the paper's protocol).")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
JobsOpt = Annotated[int, typer.Option(min=1, help="Models trained at once, in separate processes.")]
WorkersOpt = Annotated[int, typer.Option(min=0, help="Data-loader processes per model.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]
FromOpt = Annotated[Path, typer.Option("--from", help="The baseline run folder (or replicate set).")]
ExecutorOpt = Annotated[str, typer.Option(help="local (processes on this machine) or ray (a Ray cluster).")]
RayAddressOpt = Annotated[Optional[str], typer.Option(
    "--ray-address", help="Ray cluster address (default: RAY_ADDRESS, else a local cluster for this command).")]
CpusOpt = Annotated[float, typer.Option("--cpus-per-job", min=0.01, help="ray: CPUs each model's task asks for.")]
GpusOpt = Annotated[Optional[float], typer.Option(
    "--gpus-per-job", min=0.0, help="ray: GPUs per task; fractions share a GPU (default: 1 if the cluster has GPUs).")]
RetriesOpt = Annotated[int, typer.Option("--max-retries", min=0, help="ray: retries of a task whose worker died.")]
SharedOpt = Annotated[Optional[bool], typer.Option(
    "--shared-run-dir/--no-shared-run-dir", help="ray: the nodes see the run folder (default: detected per task).")]
ProtocolOpt = Annotated[str, typer.Option(help="seed (the paper) or mixed.")]
ClampOpt = Annotated[str, typer.Option(help="valid, or seed-compat (the paper's [0, 1]).")]


@app.command()
def baseline(data: Data, out_dir: Annotated[Path, typer.Option("--out", help="Run folder.")],
             planes: Planes = "all", tasks: Tasks = "all", preset: PresetOpt = "paper",
             backbone: BackboneOpt = None, epochs: EpochsOpt = None, seeds: SeedsOpt = "0",
             lr: Annotated[Optional[float], typer.Option(help="Override the preset's learning rate.")] = None,
             pretrained: PretrainedOpt = "auto", select_on: SelectOpt = "tune", device: DeviceOpt = "auto",
             jobs: JobsOpt = 1, workers: WorkersOpt = 0, quiet: QuietOpt = False,
             executor: ExecutorOpt = "local", ray_address: RayAddressOpt = None, cpus_per_job: CpusOpt = 1.0,
             gpus_per_job: GpusOpt = None, max_retries: RetriesOpt = 3, shared_run_dir: SharedOpt = None):
    """Train the mrnet-baseline models, one per (plane, task). Re-running resumes."""
    from mrnet.train.pipeline import baseline_replicates, run_replicates

    chosen = _seeds(seeds)
    spec = _spec(data, preset, backbone, epochs, planes, tasks, chosen[0], pretrained, select_on, device, workers, lr)
    with _executor(executor, jobs, ray_address, cpus_per_job, gpus_per_job, max_retries, shared_run_dir) as runner, \
            TrainingProgress(quiet, jobs if executor == "local" else 2) as ui:
        result = run_replicates(baseline_replicates(spec, chosen), out_dir, hooks=ui.hooks(), executor=runner)
    if len(chosen) > 1:
        out.print(f"report of the {len(chosen)} seeds: {result.report}")


@app.command()
def advtrain(data: Data, from_run: FromOpt, out_dir: Annotated[Path, typer.Option("--out", help="Run folder.")],
             eps: Annotated[Optional[float], typer.Option(min=0.0, help="FGSM step, normalised scale.")] = None,
             retrain_pct: Annotated[Optional[float], typer.Option(
                 "--retrain-pct", min=0.0, max=100.0, help="% of training exams made adversarial per epoch.")] = None,
             protocol: ProtocolOpt = "seed", clamp: ClampOpt = "valid", epochs: EpochsOpt = None,
             seeds: Annotated[Optional[str], typer.Option(
                 help="Replicate seeds to retrain (default: every seed the baseline has).")] = None,
             device: DeviceOpt = "auto", jobs: JobsOpt = 1, workers: WorkersOpt = 0, quiet: QuietOpt = False,
             executor: ExecutorOpt = "local", ray_address: RayAddressOpt = None, cpus_per_job: CpusOpt = 1.0,
             gpus_per_job: GpusOpt = None, max_retries: RetriesOpt = 3, shared_run_dir: SharedOpt = None):
    """Retrain a baseline run (or each seed of a replicate set) with FGSM adversarial examples."""
    from mrnet.train.pipeline import advtrain_replicates, run_replicates

    specs = advtrain_replicates(from_run, _seeds(seeds), data, device, workers, eps=eps, retrain_pct=retrain_pct,
                                protocol=protocol, clamp=clamp, epochs=epochs)
    with _executor(executor, jobs, ray_address, cpus_per_job, gpus_per_job, max_retries, shared_run_dir) as runner, \
            TrainingProgress(quiet, jobs if executor == "local" else 2) as ui:
        result = run_replicates(specs, out_dir, hooks=ui.hooks(), executor=runner)
    if len(specs) > 1:
        out.print(f"report of the {len(specs)} seeds: {result.report}")


def _executor(name: str, jobs: int, address, cpus: float, gpus, retries: int, shared):
    """The executor the options ask for (a context manager: a local Ray cluster stops at its end)."""
    from mrnet.train.executors import make_executor

    if name == "local":
        return make_executor("local", jobs)
    return make_executor(name, address=address, cpus_per_job=cpus, gpus_per_job=gpus, max_retries=retries,
                         shared_run_dir=shared)


def _floats(text: str, option: str) -> list[float]:
    from mrnet.infer.errors import InputError

    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError("BAD_OPTION", f"comma-separated numbers, not {text!r}", option=option) from None


@app.command()
def sweep(data: Data, from_run: FromOpt, out_dir: Annotated[Path, typer.Option("--out", help="Sweep folder.")],
          eps: Annotated[str, typer.Option(help="Comma-separated eps values.")] = "0,1e-5,1e-4,1e-3,3e-3",
          retrain_pct: Annotated[str, typer.Option("--retrain-pct", help="Comma-separated %.")] = "1,2,6,10",
          table_eps: Annotated[Optional[float], typer.Option(
              help="The eps Table 2 shows (default: a table for each non-zero eps).")] = None,
          protocol: ProtocolOpt = "seed", clamp: ClampOpt = "valid", epochs: EpochsOpt = None,
          seeds: Annotated[Optional[str], typer.Option(
              help="Replicate seeds (default: every seed the baseline has).")] = None,
          device: DeviceOpt = "auto", jobs: JobsOpt = 1, quiet: QuietOpt = False,
          executor: ExecutorOpt = "local", ray_address: RayAddressOpt = None, cpus_per_job: CpusOpt = 1.0,
          gpus_per_job: GpusOpt = None, max_retries: RetriesOpt = 3, shared_run_dir: SharedOpt = None):
    """Retrain over a grid of eps x retrain %, then write the paper's Table 2 (and the grid).

    Each configuration has its own folder keyed by a hash of its config; re-running skips finished
    ones and resumes unfinished ones.
    """
    from mrnet.train.pipeline import advtrain_replicates, run_sweep

    eps_values, pct_values = _floats(eps, "eps"), _floats(retrain_pct, "retrain_pct")
    spec = advtrain_replicates(from_run, _seeds(seeds), data, device, 0, protocol=protocol, clamp=clamp,
                               epochs=epochs)
    with _executor(executor, jobs, ray_address, cpus_per_job, gpus_per_job, max_retries, shared_run_dir) as runner, \
            TrainingProgress(quiet, jobs=max(jobs, 2)) as ui:  # one bar over the grid's models
        result = run_sweep(spec, eps_values, pct_values, out_dir, table_eps, hooks=ui.hooks(), executor=runner)
    print_table2_headline(result.table2_csv)
    out.print(f"Table 2: {result.table2}  ({result.table2_csv.name}, full grid {result.grid_csv.name})")


# ---------------------------------------------------------------------------------------------
# Export and the whole pipeline


@app.command()
def export(run_dir: Annotated[Path, typer.Argument(metavar="RUN", help="A finished baseline or advtrain run.")],
           out_dir: Annotated[Path, typer.Option("--out", help="New bundle folder.")],
           precision: Annotated[str, typer.Option(
               help="fp32, or int8: also a calibrated int8 twin of each model that keeps its valid AUC "
                    "within 0.005 (and its task's fused AUC too); the others stay fp32.")] = "fp32",
           quiet: QuietOpt = False):
    """Export a run's nine models to ONNX (preprocessing inside), fit the fusion, write the manifest."""
    import json

    from mrnet.infer.errors import InputError
    from mrnet.train.export import PRECISIONS, export_run

    if precision not in PRECISIONS:
        raise InputError("BAD_OPTION", f"one of {', '.join(PRECISIONS)}, not {precision!r}", option="precision")
    messages = []
    with TrainingProgress(quiet) as ui:
        ui.stage("export", 9 * (2 if precision == "int8" else 1))
        bundle = export_run(run_dir, out_dir, precision=precision, on_message=messages.append, on_model=ui.exported)
    for message in messages:
        out.print(f"[yellow]WARNING[/yellow] {escape(message)}")
    if precision == "int8":
        report = json.loads((bundle / "manifest.json").read_text())["quantization"]
        table = Table(title=f"int8 gate on valid (|AUC delta| <= {report['gate']['max_abs_auc_delta']})")
        for column in ("model", "fp32 AUC", "int8 AUC", "delta", "shipped"):
            table.add_column(column, justify="left" if column in ("model", "shipped") else "right")
        rows = [(k, r, "int8" if r["passed"] else "fp32") for k, r in report["models"].items()]
        rows += [(f"{t} (fused)", r, f"{r['int8_models']} int8") for t, r in report["fusion"].items()]
        for name, r, shipped in rows:
            table.add_row(name, f"{r['fp32_auc']:.4f}", f"{r['int8_auc']:.4f}", f"{r['auc_delta']:+.4f}", shipped)
        out.print(table)
        out.print(f"int8 models: {report['int8_models']} of {len(report['models'])} "
                  f"(bundle precision {report['precision']})")
    out.print(f"bundle: {bundle}")


@app.command()
def pipeline(data: Data, out_dir: Annotated[Path, typer.Option("--out", help="Pipeline folder.")],
             preset: PresetOpt = "demo", backbone: BackboneOpt = None, epochs: EpochsOpt = None, seeds: SeedsOpt = "0",
             pretrained: PretrainedOpt = "auto", device: DeviceOpt = "auto", jobs: JobsOpt = 1,
             workers: WorkersOpt = 0, quiet: QuietOpt = False,
             executor: ExecutorOpt = "local", ray_address: RayAddressOpt = None, cpus_per_job: CpusOpt = 1.0,
             gpus_per_job: GpusOpt = None, max_retries: RetriesOpt = 3, shared_run_dir: SharedOpt = None):
    """Baseline, FGSM retraining, fusion, export and report, in one command (resumable).

    Writes OUT/baseline, OUT/advtrain (with report.md against the baseline), OUT/bundle and
    OUT/robustness (the retrained run under attack against the baseline, with the preset's ladder).
    """
    from mrnet.train.pipeline import run_pipeline

    chosen = _seeds(seeds)
    spec = _spec(data, preset, backbone, epochs, "all", "all", chosen[0], pretrained, "tune", device, workers)
    with _executor(executor, jobs, ray_address, cpus_per_job, gpus_per_job, max_retries, shared_run_dir) as runner, \
            TrainingProgress(quiet, jobs if executor == "local" else 2) as ui:
        result = run_pipeline(spec, out_dir, hooks=ui.hooks(), seeds=chosen, executor=runner)
    out.print(f"bundle: {result.bundle}\nreport: {result.advtrain.report}\n"
              f"robustness: {result.robustness.files['robustness']}")


@app.command()
def robustness(
    runs: Annotated[list[Path], typer.Argument(metavar="RUN...", help="Finished runs to attack (a retrained one).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for robustness.csv, .png and .md.")],
    against: Annotated[Optional[Path], typer.Option(help="The baseline run, attacked alike and compared.")] = None,
    attack: Annotated[str, typer.Option(help="Comma-separated: fgsm, pgd.")] = "fgsm,pgd",
    eps: Annotated[str, typer.Option(help="Comma-separated, increasing, in grey levels of the uint8 volume "
                                          "(eps / 49.73 on the normalised scale).")] = "0,0.5,1,2,4",
    pgd_steps: Annotated[int, typer.Option(help="PGD steps of 2.5 eps / steps, from a random start.")] = 10,
    split: Annotated[str, typer.Option(help="valid (the test split) or tune.")] = "valid",
    seed: Annotated[int, typer.Option(help="Seed of PGD's random starts.")] = 0,
    data: Annotated[Optional[Path], typer.Option(help="The data set, if not where the runs recorded it.")] = None,
    device: DeviceOpt = "auto", jobs: JobsOpt = 1, quiet: QuietOpt = False,
    executor: ExecutorOpt = "local", ray_address: RayAddressOpt = None, cpus_per_job: CpusOpt = 1.0,
    gpus_per_job: GpusOpt = None, max_retries: RetriesOpt = 3,
):
    """Attack finished runs' models and fused tasks with FGSM and PGD; AUC and decisions against eps.

    Writes OUT/robustness.csv, robustness.png, robustness.md (and per-exam logits), and a robustness
    section into each run's report.md. Not for clinical use.
    """
    from mrnet.infer.errors import InputError
    from mrnet.infer.registry import parse_choices
    from mrnet.train.pipeline import run_robustness
    from mrnet.train.robustness import ATTACKS, AttackSettings

    try:
        attacks = parse_choices(attack, ATTACKS, "attack")
    except ValueError as error:
        raise InputError("BAD_OPTION", str(error), option="attack") from None
    settings = AttackSettings(attacks=attacks, eps=tuple(_floats(eps, "eps")), pgd_steps=pgd_steps, split=split,
                              seed=seed)
    with _executor(executor, jobs, ray_address, cpus_per_job, gpus_per_job, max_retries, True) as runner, \
            TrainingProgress(quiet, jobs if executor == "local" else 2) as ui:
        result = run_robustness(runs, out_dir, against, settings, device, data, hooks=ui.hooks(), executor=runner)
    if not quiet:
        print_robustness_table(result.files["robustness"], settings, split)
    out.print(f"robustness: {result.files['robustness']}  ({result.files['png'].name}, {result.files['md'].name})")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
