"""`mrnet-train`: check data, synthesise phantoms, train, retrain adversarially, export.

Heavy imports (torch) happen inside the commands that need them, so `check` and `synth` start fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from mrnet.infer import console
from mrnet.infer.registry import PLANES, SPLITS, TASK_TITLES, TASKS
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(cls=console.GuardedGroup, add_completion=False, no_args_is_help=True,
                  pretty_exceptions_show_locals=False,
                  help="Train, harden and export the nine MRNet knee-MRI models. Not for clinical use.")
out = Console(highlight=False, soft_wrap=True)


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
    from mrnet.infer.errors import InputError
    from mrnet.infer.synthetic.dataset import write_dataset
    from mrnet.infer.synthetic.phantom import PhantomConfig
    from rich.progress import Progress

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
# Training


class _TrainingProgress:
    """Rich progress bars for training: one bar per model, with epoch, loss, AUC and ETA."""

    def __init__(self, quiet: bool):
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.quiet = quiet
        self.bars = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"),
                             TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=out,
                             disable=quiet)

    def __enter__(self):
        self.bars.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bars.__exit__(*exc)

    def for_job(self, job):
        from mrnet.train.loop import Progress

        bar = self.bars.add_task(f"{job.key:<18} epoch 1/{job.epochs}", total=job.epochs, status="")
        state = {"epoch": 0, "auc": ""}

        def on_step(done, total, loss):
            self.bars.update(bar, completed=state["epoch"] + done / max(total, 1),
                             status=f"loss {loss:.4f} {state['auc']}")

        def on_epoch(record, epochs):
            state["epoch"] = record.epoch
            state["auc"] = f"tune AUC {record.tune_auc:.3f}"
            self.bars.update(bar, completed=record.epoch,
                             description=f"{job.key:<18} epoch {min(record.epoch + 1, epochs)}/{epochs}",
                             status=f"loss {record.train_loss:.4f} {state['auc']}")

        return Progress(on_step=on_step, on_epoch=on_epoch, announce=self.say)

    def say(self, message: str) -> None:
        if not self.quiet:
            self.bars.console.print(message, markup=False)

    def models_bar(self, total: int):
        bar = self.bars.add_task(f"{'models':<18}", total=total, status="")
        return lambda summary: self.bars.update(
            bar, advance=1, status=f"{summary['model']} valid AUC {summary['valid']['auc']:.3f}")


def _print_summary_table(summaries: list[dict], title: str) -> None:
    table = Table(title=title)
    for column in ("model", "epoch", "tune AUC", "valid AUC", "acc", "sens", "spec"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for s in summaries:
        v = s["valid"]
        table.add_row(s["model"], str(s["selected_epoch"]), f"{s['tune']['auc']:.3f}", f"{v['auc']:.3f}",
                      f"{v['accuracy']:.3f}", f"{v['sensitivity']:.3f}", f"{v['specificity']:.3f}")
    out.print(table)


def _run(spec, out_dir: Path, jobs: int, quiet: bool) -> list[dict]:
    """Prepare a run folder, train its models with progress bars, and write its report."""
    from mrnet.train import experiment, report

    run = experiment.prepare(spec, out_dir)
    with _TrainingProgress(quiet) as ui:
        if jobs > 1:
            summaries = experiment.execute(run, jobs=jobs, on_done=ui.models_bar(len(run.jobs)))
        else:
            summaries = experiment.execute(run, progress_for=ui.for_job)
    path = report.write_run_report(out_dir)
    if not quiet:
        _print_summary_table(summaries, f"{spec.kind} run {out_dir}")
    out.print(f"report: {path}")
    return summaries


def _spec(data: Path, preset: str, backbone, epochs, planes: str, tasks: str, seed: int, pretrained: str,
          select_on: str, device: str, workers: int, lr: float | None = None, **extra):
    from mrnet.infer.errors import InputError
    from mrnet.infer.registry import parse_choices
    from mrnet.train.experiment import RunSpec
    from mrnet.train.loop import SELECT_ON
    from mrnet.train.presets import get_preset

    try:
        chosen = get_preset(preset).with_overrides(backbone=backbone, epochs=epochs, lr=lr,
                                                   adv_epochs=extra.pop("adv_epochs", None))
        if select_on not in SELECT_ON:
            raise ValueError(f"--select-on must be one of {', '.join(SELECT_ON)}")
        return RunSpec(data=str(data), preset=chosen, planes=parse_choices(planes, PLANES, "plane"),
                       tasks=parse_choices(tasks, TASKS, "task"), seed=seed, pretrained=pretrained,
                       select_on=select_on, device=device, workers=workers, **extra)
    except ValueError as error:
        raise InputError("BAD_OPTION", str(error)) from None


Data = Annotated[Path, typer.Argument(metavar="DATA", help="MRNet-v1.0 folder (or a phantom from `synth`).")]
Planes = Annotated[str, typer.Option(help="Comma-separated planes, or all.")]
Tasks = Annotated[str, typer.Option(help="Comma-separated tasks (abnormal, acl, meniscus), or all.")]
PresetOpt = Annotated[str, typer.Option(help="paper (mrnet-baseline, 50 epochs) or demo (minutes on a CPU).")]
BackboneOpt = Annotated[Optional[str], typer.Option(help="alexnet (mrnet-baseline) or tiny; default: the preset's.")]
EpochsOpt = Annotated[Optional[int], typer.Option(min=1, help="Override the preset's number of epochs.")]
SeedOpt = Annotated[int, typer.Option(help="Seed of the tuning split, the order of exams and the initial weights.")]
PretrainedOpt = Annotated[str, typer.Option(help="auto, none, imagenet or a local weights file.")]
SelectOpt = Annotated[str, typer.Option(help="tune (held out of train) or valid (biased; the paper's protocol).")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
JobsOpt = Annotated[int, typer.Option(min=1, help="Models trained at once, in separate processes.")]
WorkersOpt = Annotated[int, typer.Option(min=0, help="Data-loader processes per model.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]


@app.command()
def baseline(data: Data, out_dir: Annotated[Path, typer.Option("--out", help="Run folder.")],
             planes: Planes = "all", tasks: Tasks = "all", preset: PresetOpt = "paper",
             backbone: BackboneOpt = None, epochs: EpochsOpt = None, seed: SeedOpt = 0,
             lr: Annotated[Optional[float], typer.Option(help="Override the preset's learning rate.")] = None,
             pretrained: PretrainedOpt = "auto", select_on: SelectOpt = "tune", device: DeviceOpt = "auto",
             jobs: JobsOpt = 1, workers: WorkersOpt = 0, quiet: QuietOpt = False):
    """Train the mrnet-baseline models, one per (plane, task). Re-running resumes."""
    spec = _spec(data, preset, backbone, epochs, planes, tasks, seed, pretrained, select_on, device, workers, lr)
    _run(spec, out_dir, jobs, quiet)


@app.command()
def advtrain(data: Data, from_run: Annotated[Path, typer.Option("--from", help="The baseline run folder.")],
             out_dir: Annotated[Path, typer.Option("--out", help="Run folder.")],
             eps: Annotated[Optional[float], typer.Option(min=0.0, help="FGSM step, normalised scale.")] = None,
             retrain_pct: Annotated[Optional[float], typer.Option(
                 "--retrain-pct", min=0.0, max=100.0, help="% of training exams made adversarial per epoch.")] = None,
             protocol: Annotated[str, typer.Option(help="seed (the paper) or mixed.")] = "seed",
             clamp: Annotated[str, typer.Option(help="valid, or seed-compat (the paper's [0, 1]).")] = "valid",
             epochs: EpochsOpt = None, device: DeviceOpt = "auto", jobs: JobsOpt = 1, workers: WorkersOpt = 0,
             quiet: QuietOpt = False):
    """Retrain a baseline run with FGSM adversarial examples (the seed paper's method)."""
    spec = _advtrain_spec(data, from_run, eps, retrain_pct, protocol, clamp, epochs, device, workers)
    _run(spec, out_dir, jobs, quiet)


def _advtrain_spec(data, from_run, eps, retrain_pct, protocol, clamp, epochs, device, workers):
    from mrnet.infer.errors import InputError
    from mrnet.train.adversarial import CLAMPS
    from mrnet.train.experiment import read_run
    from mrnet.train.loop import PROTOCOLS

    if protocol not in PROTOCOLS or clamp not in CLAMPS:
        raise InputError("BAD_OPTION", f"--protocol is one of {', '.join(PROTOCOLS)}; "
                                       f"--clamp is one of {', '.join(CLAMPS)}")
    base = read_run(from_run)["config"]
    preset = base["preset"]
    return _spec(data, preset["name"], preset["backbone"], preset["epochs"], ",".join(base["planes"]),
                 ",".join(base["tasks"]), base["seed"], base["pretrained"], base["select_on"], device, workers,
                 adv_epochs=epochs, kind="advtrain", from_run=str(from_run),
                 eps=preset["eps"] if eps is None else eps,
                 retrain_pct=preset["retrain_pct"] if retrain_pct is None else retrain_pct,
                 protocol=protocol, clamp=clamp)


def _floats(text: str, option: str) -> list[float]:
    from mrnet.infer.errors import InputError

    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError("BAD_OPTION", f"{option} takes comma-separated numbers, not {text!r}") from None


@app.command()
def sweep(data: Data, from_run: Annotated[Path, typer.Option("--from", help="The baseline run folder.")],
          out_dir: Annotated[Path, typer.Option("--out", help="Sweep folder.")],
          eps: Annotated[str, typer.Option(help="Comma-separated eps values.")] = "0,1e-5,1e-4,1e-3,3e-3",
          retrain_pct: Annotated[str, typer.Option("--retrain-pct", help="Comma-separated %.")] = "1,2,6,10",
          table_eps: Annotated[float, typer.Option(help="The eps shown in Table 2.")] = 1e-5,
          protocol: Annotated[str, typer.Option(help="seed or mixed.")] = "seed",
          clamp: Annotated[str, typer.Option(help="valid or seed-compat.")] = "valid",
          epochs: EpochsOpt = None, device: DeviceOpt = "auto", jobs: JobsOpt = 1, quiet: QuietOpt = False):
    """Retrain over a grid of eps x retrain %, then write the paper's Table 2 (and the grid).

    Each configuration has its own folder keyed by a hash of its config; re-running skips finished
    ones and resumes unfinished ones.
    """
    from concurrent.futures import ProcessPoolExecutor

    from mrnet.infer.errors import InputError
    from mrnet.train import experiment, report

    eps_values, pct_values = _floats(eps, "--eps"), _floats(retrain_pct, "--retrain-pct")
    if table_eps not in eps_values:
        raise InputError("BAD_OPTION", f"--table-eps {table_eps:g} is not in --eps")
    base = _advtrain_spec(data, from_run, None, None, protocol, clamp, epochs, device, 0)
    specs = experiment.sweep_specs(base, eps_values, pct_values)
    folders = [(s.eps, s.retrain_pct, out_dir / "runs" / s.config_hash()) for s in specs]
    with _TrainingProgress(quiet) as ui:
        advance = ui.models_bar(len(specs) * len(base.planes) * len(base.tasks))
        if jobs > 1:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                for summaries in pool.map(_sweep_one, specs, [f for _, _, f in folders], [jobs] * len(specs)):
                    for summary in summaries:
                        advance(summary)
        else:
            for spec, (_, _, folder) in zip(specs, folders):
                run = experiment.prepare(spec, folder)
                experiment.execute(run, on_done=advance)
    for _, _, folder in folders:
        report.write_run_report(folder)
    paths = report.write_table2(out_dir, from_run, folders, table_eps)
    out.print(f"Table 2: {paths[0]}  ({paths[1].name}, full grid {paths[2].name})")


def _sweep_one(spec, folder, jobs):
    import torch
    from mrnet.train import experiment

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // jobs))
    return experiment.execute(experiment.prepare(spec, folder))


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
        raise InputError("BAD_OPTION", f"--precision must be one of {', '.join(PRECISIONS)}")
    messages = []
    with _TrainingProgress(quiet) as ui:
        bar = ui.bars.add_task(f"{'export':<18}", total=9 * (2 if precision == "int8" else 1), status="")
        bundle = export_run(run_dir, out_dir, precision=precision, on_message=messages.append,
                            on_model=lambda key: ui.bars.update(bar, advance=1, status=key))
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
             preset: PresetOpt = "demo", backbone: BackboneOpt = None, epochs: EpochsOpt = None, seed: SeedOpt = 0,
             pretrained: PretrainedOpt = "auto", device: DeviceOpt = "auto", jobs: JobsOpt = 1,
             workers: WorkersOpt = 0, quiet: QuietOpt = False):
    """Baseline, FGSM retraining, fusion, export and report, in one command (resumable).

    Writes OUT/baseline, OUT/advtrain (with report.md against the baseline) and OUT/bundle.
    """
    from mrnet.train.export import export_run

    base = _spec(data, preset, backbone, epochs, "all", "all", seed, pretrained, "tune", device, workers)
    _run(base, out_dir / "baseline", jobs, quiet)
    adv = _advtrain_spec(data, out_dir / "baseline", None, None, "seed", "valid", None, device, workers)
    _run(adv, out_dir / "advtrain", jobs, quiet)
    bundle = out_dir / "bundle"
    if not (bundle / "manifest.json").exists():
        with _TrainingProgress(quiet) as ui:
            bar = ui.bars.add_task(f"{'export':<18}", total=9, status="")
            export_run(out_dir / "advtrain", bundle, on_model=lambda key: ui.bars.update(bar, advance=1, status=key))
    out.print(f"bundle: {bundle}\nreport: {out_dir / 'advtrain' / 'report.md'}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
