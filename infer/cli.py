"""`mrnet-predict`: abnormal / ACL tear / meniscal tear probabilities for knee exams.

Each EXAM is a folder (DICOM, recursively; NIfTI files, one per plane; or axial.npy, coronal.npy,
sagittal.npy), a zip of DICOM files, a single DICOM, NIfTI or npy file, or an MRNet data set root
with --split (and --ids). Exams are read one ahead of the one being scored.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from . import console
from .dicom_results.files import ReportFiles
from .errors import InputError, MRNetError
from .registry import NOT_FOR_CLINICAL_USE, PLANES, SPLITS, TASK_TITLES, TASKS

app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)
FORMATS = ("table", "json", "csv", "sr")


def _is_dataset_root(path: Path) -> bool:
    return path.is_dir() and any((path / f"{split}-abnormal.csv").exists() for split in SPLITS)


def _exam_sources(exams: list[Path], split: Optional[str], ids: Optional[str]) -> list[tuple[str, object, dict]]:
    """(name, what read_exam or the data set gives, known labels) for each exam to score."""
    from .dataset import load_split

    sources = []
    for path in exams:
        if _is_dataset_root(path):
            if split is None:
                raise InputError("SPLIT_REQUIRED", "an MRNet data set root needs --split train|valid", path)
            data = load_split(path, split)
            wanted = [i.strip() for i in ids.split(",")] if ids else list(data.ids)
            data = data.subset(wanted)
            for k, exam_id in enumerate(data.ids):
                labels = {t: int(data.labels[t][k]) for t in TASKS}
                sources.append((f"{path}/{split}/{exam_id}", ("dataset", data, exam_id), labels))
        else:
            if not path.exists():
                raise InputError("NOT_FOUND", "no such file or folder", path)
            sources.append((str(path), ("path", path), {}))
    return sources


def _read(source, series):
    from .reading import read_exam

    if source[0] == "dataset":
        _, data, exam_id = source
        return {plane: data.volume(exam_id, plane) for plane in PLANES}
    return read_exam(source[1], series=series)


def _parse_series(values: list[str]) -> dict[str, str]:
    series = {}
    for value in values:
        plane, _, uid = value.partition("=")
        if plane not in PLANES or not uid:
            raise InputError("BAD_OPTION", f"--series takes PLANE=SeriesInstanceUID, not {value!r}")
        series[plane] = uid
    return series


def _table(results: list[dict], out: Console) -> None:
    for result in results:
        prediction = result["prediction"]
        used = {"+".join(prediction["tasks"][t]["planes_used"]) for t in TASKS}
        calibration = prediction["plane_probabilities_calibration"]
        plane_note = (f"calibrated ({calibration['method']})" if calibration["calibrated"] else
                      "raw sigmoids" if calibration["method"] == "none" else "partly calibrated")
        table = Table(title=f"{result['exam']}", title_justify="left",
                      caption=f"fused over {', '.join(sorted(used))}; per-plane p {plane_note}", caption_justify="left")
        table.add_column("finding")
        table.add_column("fused p", justify="right")
        table.add_column("decision")
        for plane in PLANES:
            table.add_column(plane, justify="right")
        for task in TASKS:
            fused = prediction["tasks"][task]
            per_plane = [f"{prediction['plane_probabilities'][p][task]:.3f}" if p in prediction["plane_probabilities"]
                         else "–" for p in PLANES]
            decision = "positive" if fused["decision"] else "negative"
            if task in result.get("labels", {}):
                decision += f" (label {result['labels'][task]})"
            table.add_row(TASK_TITLES[task], f"{fused['probability']:.3f}", decision, *per_plane)
        out.print(table)
        exam = prediction.get("provenance", {})
        for plane, source in exam.get("sources", {}).items():
            out.print(f"  {plane}: {source.get('description') or source.get('source', '')} "
                      f"({source.get('n_slices')} slices; {source.get('reason', '')})", markup=False)
        for warning in exam.get("warnings", []):
            out.print(f"  warning: {warning}", markup=False)


def _csv(results: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["exam"]
    for task in TASKS:
        header += [f"{task}_probability", f"{task}_decision"]
    header += [f"{p}_{t}_probability" for p in PLANES for t in TASKS]
    header += ["planes", "bundle_version", "provider", "notice"]
    writer.writerow(header)
    for result in results:
        prediction = result["prediction"]
        row = [result["exam"]]
        for task in TASKS:
            row += [f"{prediction['tasks'][task]['probability']:.6f}", int(prediction["tasks"][task]["decision"])]
        row += [f"{prediction['plane_probabilities'][p][t]:.6f}" if p in prediction["plane_probabilities"] else ""
                for p in PLANES for t in TASKS]
        row += ["+".join(prediction["planes"]), prediction["bundle"]["version"], prediction["runtime"]["provider"],
                prediction["notice"]]
        writer.writerow(row)
    return buffer.getvalue()


@app.command(cls=console.GuardedCommand, no_args_is_help=True,
             help="Predict abnormal, ACL tear and meniscal tear for knee MRI exams. " + NOT_FOR_CLINICAL_USE)
def predict(
    exams: Annotated[list[Path], typer.Argument(metavar="EXAM...", help="Exam folders, zips or files.")],
    models: Annotated[Optional[Path], typer.Option(help="Model bundle folder (default: the shipped demo bundle).")] = None,
    output_format: Annotated[str, typer.Option("--format", help="table, json, csv, or sr (a DICOM Structured "
                                               "Report per exam, filed under the exam's study).")] = "table",
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Write the result here instead of stdout (--format "
                                                     "sr: a .dcm file, or a folder for several exams).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    precision: Annotated[str, typer.Option(help="auto (int8 on CPU when the bundle has it), fp32 or int8.")] = "auto",
    split: Annotated[Optional[str], typer.Option(help="For an MRNet data set root: train or valid.")] = None,
    ids: Annotated[Optional[str], typer.Option(help="For a data set root: comma-separated exam ids (default all).")] = None,
    series: Annotated[Optional[list[str]], typer.Option(help="PLANE=SeriesInstanceUID: force a DICOM series.")] = None,
    cams: Annotated[bool, typer.Option("--cams", help="Include the class activation maps in JSON.")] = False,
    overlays: Annotated[bool, typer.Option("--overlays", help="With --format sr, also a Secondary Capture per plane "
                                           "and task: the class activation map on its key slice.")] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
):
    console.set_debug(debug)
    if output_format not in FORMATS:
        raise InputError("BAD_OPTION", f"--format must be one of {', '.join(FORMATS)}")
    from .predictor import Predictor

    started = time.perf_counter()
    sources = _exam_sources(exams, split, ids)
    series_choice = _parse_series(series or [])
    reports = ReportFiles(out_file, len(sources), overlays) if output_format == "sr" else None
    predictor = Predictor(models, device=device, precision=precision)
    startup = time.perf_counter() - started

    results, failures = [], []
    from rich.progress import Progress

    with Progress(console=console.stderr, transient=True, disable=no_progress or len(sources) < 2) as bar, \
            ThreadPoolExecutor(max_workers=1) as reader:
        task = bar.add_task("exams", total=len(sources))
        pending = reader.submit(_read, sources[0][1], series_choice)
        for k, (name, _, labels) in enumerate(sources):
            read_started = time.perf_counter()
            try:
                exam = pending.result()
            except MRNetError as error:
                failures.append((name, error))
                exam = None
            wait = time.perf_counter() - read_started
            if k + 1 < len(sources):  # read the next exam while this one is scored
                pending = reader.submit(_read, sources[k + 1][1], series_choice)
            if exam is not None:
                prediction = predictor.predict(exam)
                prediction.timings["read_wait"] = wait
                results.append({"exam": name, "labels": labels, "prediction": prediction.to_dict(include_cams=cams)})
                if reports is not None:
                    try:
                        reports.write(name, exam, prediction, sources[k][1][1])
                    except MRNetError as error:
                        failures.append((name, error))
            bar.advance(task)

    text = ""
    if output_format == "json":
        document = {"notice": results[0]["prediction"]["notice"] if results else NOT_FOR_CLINICAL_USE,
                    "toolkit_version": version("mrnet-toolkit"), "bundle": str(models or "demo (shipped)"),
                    "provider": predictor.provider, "precision": predictor.precision,
                    "startup_s": startup, "total_s": time.perf_counter() - started,
                    "exams": [{"exam": r["exam"], **({"labels": r["labels"]} if r["labels"] else {}),
                               **r["prediction"]} for r in results],
                    "errors": [{"exam": name, "code": e.code, "message": e.one_line()} for name, e in failures]}
        text = json.dumps(document, indent=2) + "\n"
    elif output_format == "csv":
        text = _csv(results)
    if reports is not None:
        for path in reports.written:
            console.stderr.print(f"wrote {path}", markup=False)
        if reports.written:
            console.stderr.print(results[0]["prediction"]["notice"], markup=False)
    elif out_file is not None:
        if output_format == "table":
            buffer = Console(file=io.StringIO(), width=120, highlight=False)
            _table(results, buffer)
            text = buffer.file.getvalue() + (results[0]["prediction"]["notice"] + "\n" if results else "")
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(text)
    elif output_format == "table":
        out = Console(highlight=False)
        _table(results, out)
        if results:
            out.print(f"[bold]{results[0]['prediction']['notice']}[/bold]", soft_wrap=True)
    else:
        sys.stdout.write(text)

    for name, error in failures:
        # The reader names files relative to the exam; the exam's own path makes them findable.
        for line in error.one_line().splitlines():
            console.stderr.print(f"error: {name}: {line.strip()}", markup=False)
    if failures:
        raise typer.Exit(2)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
