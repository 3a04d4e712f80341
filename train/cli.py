"""`mrnet-train`: check data, synthesise phantoms, train, retrain adversarially, export.

Heavy imports (torch) happen inside the commands that need them, so `check` and `synth` start fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mrnet.infer import console
from mrnet.infer.registry import PLANES, SPLITS, TASK_TITLES, TASKS

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


class _TrainingProgress:
    """Rich progress bars: one bar per model (epoch, loss, AUC, ETA) when models train one at a time
    in this process, else one bar over the models of each stage."""

    def __init__(self, quiet: bool, jobs: int = 1):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.quiet, self.jobs = quiet, jobs
        self.bars = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"),
                             TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=out,
                             disable=quiet)
        self.stage_bar = None
        self.attack_bars: dict[str, object] = {}  # run -> its bar while its exams are attacked

    def __enter__(self):
        self.bars.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bars.__exit__(*exc)

    def hooks(self):
        from mrnet.train.pipeline import Hooks

        return Hooks(progress=self.for_job if self.jobs <= 1 else (lambda job: None), model_done=self.model_done,
                     announce=self.say, exported=self.exported, stage=self.stage, run_done=self.run_done,
                     attacked=self.attacked)

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

    def stage(self, name: str, models: int) -> None:
        self.stage_bar = None
        if name == "robustness":  # bars per run come with `attacked`, in this process only
            if self.jobs > 1:
                self.say(f"attacking {models} runs, {min(models, self.jobs)} at once")
            return
        if name == "export" or self.jobs > 1:
            label = "export" if name == "export" else "models"
            self.stage_bar = self.bars.add_task(f"{label:<18}", total=models, status="")

    def attacked(self, run: str, done: int, total: int) -> None:
        """One bar per run under attack (the runs are scored in this process only with --jobs 1)."""
        if run not in self.attack_bars:
            self.attack_bars[run] = self.bars.add_task(f"{'attack ' + Path(run).name:<18}", total=total,
                                                       status="exams")
        self.bars.update(self.attack_bars[run], completed=done)

    def model_done(self, summary: dict) -> None:
        if self.stage_bar is not None:
            self.bars.update(self.stage_bar, advance=1,
                             status=f"{summary['model']} valid AUC {summary['valid']['auc']:.3f}")

    def exported(self, key: str) -> None:
        if self.stage_bar is not None:
            self.bars.update(self.stage_bar, advance=1, status=key)

    def run_done(self, result) -> None:
        if not self.quiet:
            _print_summary_table(result.summaries, f"{result.summaries[0]['mode'] if result.summaries else ''} "
                                                   f"run {result.folder}")
        out.print(f"report: {result.report}")


def _print_summary_table(summaries: list[dict], title: str) -> None:
    table = Table(title=title)
    for column in ("model", "epoch", "tune AUC", "valid AUC", "acc", "sens", "spec"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for s in summaries:
        v = s["valid"]
        table.add_row(s["model"], str(s["selected_epoch"]), f"{s['tune']['auc']:.3f}", f"{v['auc']:.3f}",
                      f"{v['accuracy']:.3f}", f"{v['sensitivity']:.3f}", f"{v['specificity']:.3f}")
    out.print(table)


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
SeedOpt = Annotated[int, typer.Option(help="Seed of the tuning split, the order of exams and the initial weights.")]
PretrainedOpt = Annotated[str, typer.Option(help="auto, none, imagenet or a local weights file.")]
SelectOpt = Annotated[str, typer.Option(help="tune (held out of train) or valid (biased; the paper's protocol).")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
JobsOpt = Annotated[int, typer.Option(min=1, help="Models trained at once, in separate processes.")]
WorkersOpt = Annotated[int, typer.Option(min=0, help="Data-loader processes per model.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]
FromOpt = Annotated[Path, typer.Option("--from", help="The baseline run folder.")]
ProtocolOpt = Annotated[str, typer.Option(help="seed (the paper) or mixed.")]
ClampOpt = Annotated[str, typer.Option(help="valid, or seed-compat (the paper's [0, 1]).")]


@app.command()
def baseline(data: Data, out_dir: Annotated[Path, typer.Option("--out", help="Run folder.")],
             planes: Planes = "all", tasks: Tasks = "all", preset: PresetOpt = "paper",
             backbone: BackboneOpt = None, epochs: EpochsOpt = None, seed: SeedOpt = 0,
             lr: Annotated[Optional[float], typer.Option(help="Override the preset's learning rate.")] = None,
             pretrained: PretrainedOpt = "auto", select_on: SelectOpt = "tune", device: DeviceOpt = "auto",
             jobs: JobsOpt = 1, workers: WorkersOpt = 0, quiet: QuietOpt = False):
    """Train the mrnet-baseline models, one per (plane, task). Re-running resumes."""
    from mrnet.train.pipeline import run_baseline

    spec = _spec(data, preset, backbone, epochs, planes, tasks, seed, pretrained, select_on, device, workers, lr)
    with _TrainingProgress(quiet, jobs) as ui:
        run_baseline(spec, out_dir, jobs, ui.hooks())


@app.command()
def advtrain(data: Data, from_run: FromOpt, out_dir: Annotated[Path, typer.Option("--out", help="Run folder.")],
             eps: Annotated[Optional[float], typer.Option(min=0.0, help="FGSM step, normalised scale.")] = None,
             retrain_pct: Annotated[Optional[float], typer.Option(
                 "--retrain-pct", min=0.0, max=100.0, help="% of training exams made adversarial per epoch.")] = None,
             protocol: ProtocolOpt = "seed", clamp: ClampOpt = "valid", epochs: EpochsOpt = None,
             device: DeviceOpt = "auto", jobs: JobsOpt = 1, workers: WorkersOpt = 0, quiet: QuietOpt = False):
    """Retrain a baseline run with FGSM adversarial examples (the seed paper's method)."""
    from mrnet.train.pipeline import advtrain_spec, run_advtrain

    spec = advtrain_spec(from_run, data, device, workers, eps=eps, retrain_pct=retrain_pct, protocol=protocol,
                         clamp=clamp, epochs=epochs)
    with _TrainingProgress(quiet, jobs) as ui:
        run_advtrain(spec, out_dir, jobs, ui.hooks())


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
          table_eps: Annotated[float, typer.Option(help="The eps shown in Table 2.")] = 1e-5,
          protocol: ProtocolOpt = "seed", clamp: ClampOpt = "valid", epochs: EpochsOpt = None,
          device: DeviceOpt = "auto", jobs: JobsOpt = 1, quiet: QuietOpt = False):
    """Retrain over a grid of eps x retrain %, then write the paper's Table 2 (and the grid).

    Each configuration has its own folder keyed by a hash of its config; re-running skips finished
    ones and resumes unfinished ones.
    """
    from mrnet.train.pipeline import advtrain_spec, run_sweep

    eps_values, pct_values = _floats(eps, "eps"), _floats(retrain_pct, "retrain_pct")
    spec = advtrain_spec(from_run, data, device, 0, protocol=protocol, clamp=clamp, epochs=epochs)
    with _TrainingProgress(quiet, jobs=max(jobs, 2)) as ui:  # one bar over the grid's models
        result = run_sweep(spec, eps_values, pct_values, out_dir, table_eps, jobs, ui.hooks())
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
    with _TrainingProgress(quiet) as ui:
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
             preset: PresetOpt = "demo", backbone: BackboneOpt = None, epochs: EpochsOpt = None, seed: SeedOpt = 0,
             pretrained: PretrainedOpt = "auto", device: DeviceOpt = "auto", jobs: JobsOpt = 1,
             workers: WorkersOpt = 0, quiet: QuietOpt = False):
    """Baseline, FGSM retraining, fusion, export and report, in one command (resumable).

    Writes OUT/baseline, OUT/advtrain (with report.md against the baseline), OUT/bundle and
    OUT/robustness (the retrained run under attack against the baseline, with the preset's ladder).
    """
    from mrnet.train.pipeline import run_pipeline

    spec = _spec(data, preset, backbone, epochs, "all", "all", seed, pretrained, "tune", device, workers)
    with _TrainingProgress(quiet, jobs) as ui:
        result = run_pipeline(spec, out_dir, jobs, ui.hooks())
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
):
    """Attack finished runs' models and fused tasks with FGSM and PGD; AUC and decisions against eps.

    Writes OUT/robustness.csv, robustness.png, robustness.md (and per-exam logits), and a robustness
    section into each run's report.md. Not for clinical use.
    """
    from mrnet.infer.registry import parse_choices
    from mrnet.train.pipeline import run_robustness
    from mrnet.train.robustness import ATTACKS, AttackSettings

    from mrnet.infer.errors import InputError

    try:
        attacks = parse_choices(attack, ATTACKS, "attack")
    except ValueError as error:
        raise InputError("BAD_OPTION", str(error), option="attack") from None
    settings = AttackSettings(attacks=attacks, eps=tuple(_floats(eps, "eps")), pgd_steps=pgd_steps, split=split,
                              seed=seed)
    with _TrainingProgress(quiet, jobs) as ui:
        result = run_robustness(runs, out_dir, against, settings, device, data, jobs, ui.hooks())
    if not quiet:
        import csv

        with open(result.files["robustness"], newline="") as stream:
            rows = [r for r in csv.DictReader(stream) if r["model"].startswith("fused-")]
        table = Table(title=f"fused AUC under attack ({split} split, eps in grey levels). Not for clinical use.")
        for column in ("model", "run", "attack", *(f"eps {e:g}" for e in settings.eps)):
            table.add_column(column, justify="left" if not column.startswith("eps") else "right")
        cells = {}
        for r in rows:
            cells.setdefault((r["model"], r["run"], r["attack"]), {})[float(r["eps"])] = r["auc"]
        for (model, run, name), by_eps in cells.items():
            table.add_row(model, run, name, *(f"{float(by_eps[e]):.3f}" if by_eps.get(e) not in (None, "nan") else "–"
                                              for e in settings.eps))
        out.print(table)
    out.print(f"robustness: {result.files['robustness']}  ({result.files['png'].name}, {result.files['md'].name})")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
