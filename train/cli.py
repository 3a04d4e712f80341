"""`mrnet-train`: check data, synthesise phantoms, train, retrain adversarially, export.

Heavy imports (torch) happen inside the commands that need them, so `check` and `synth` start fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
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
    from mrnet.infer.phantom import PhantomConfig, write_dataset

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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
