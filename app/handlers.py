"""What the web demo does, as plain functions that the Gradio layer (`ui.py`) calls.

`predict_files` reads an upload with `read_exam` and runs the shared `Predictor`; the slice viewer
draws slices with the model's class activation map over them (`mrnet.infer.overlay`, which the
DICOM Secondary Capture uses too); the rest turns results, errors and
the bundle's provenance into what the page shows. Nothing here imports gradio, so the tests call
these functions directly; nothing here prints, and no message carries more than a file's base name.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrnet.infer.calibration import METHOD_NAMES
from mrnet.infer.errors import InputError, MRNetError
from mrnet.infer.overlay import render_slice, strongest_slice
from mrnet.infer.predictor import Predictor
from mrnet.infer.reading import SeriesInfo, read_exam
from mrnet.infer.registry import NOT_FOR_CLINICAL_USE, PLANES, TASK_TITLES, TASKS

DEMO_BANNER = "Not for clinical use; demo weights trained on synthetic phantoms"
NOT_IN_EXAM = "not in this exam"
FINDINGS_HEADERS = ["finding", "probability", "threshold", "decision", "fused over"]
PLANES_HEADERS = ["plane", "series", "slices", *(f"p {TASK_TITLES[t]}" for t in TASKS)]
# An error modal listing a thousand unreadable files helps nobody; the rest are counted.
MAX_ERROR_LINES = 12


@dataclass(frozen=True)
class Viewer:
    """What the slice viewer needs from one prediction; kept in the browser session's state."""

    volumes: dict[str, np.ndarray]
    cams: dict[str, dict[str, np.ndarray]]

    @property
    def planes(self) -> tuple[str, ...]:
        return tuple(self.volumes)

    def slices(self, plane: str) -> int:
        return int(self.volumes[plane].shape[0])

    def strongest_slice(self, plane: str, task: str) -> int:
        return strongest_slice(self.cams[plane][task])

    def frame(self, plane: str, task: str, index: int, overlay: bool = True) -> np.ndarray:
        return render_slice(self.volumes[plane], self.cams[plane][task], index, overlay)


@dataclass(frozen=True)
class PredictOutputs:
    """One upload's answer: what the page and the API show, and what the slice viewer keeps."""

    probabilities: dict[str, float]  # gr.Label: finding and decision -> fused probability
    findings: list[list]  # FINDINGS_HEADERS rows, one per task
    planes: list[list]  # PLANES_HEADERS rows, one per plane (absent planes say so)
    report: dict  # Prediction.to_dict(), the same JSON that `mrnet-predict --format json` gives
    warnings: list[str]  # what the reader had to work around
    viewer: Viewer


def predict_files(paths: Sequence[str | Path], predictor: Predictor) -> PredictOutputs:
    """Read the uploaded files as one exam and predict. Raises `MRNetError` (with a code) when the
    files are no exam or the bundle cannot score it."""
    if not paths:
        raise InputError("NO_FILES", "no files uploaded: add an exam's DICOM files, a zip, NIfTI or npy files")
    started = time.perf_counter()
    exam = read_exam([str(p) for p in paths])
    read_s = time.perf_counter() - started
    prediction = predictor.predict(exam)
    prediction.timings["read"] = read_s

    probabilities, findings = {}, []
    for task in TASKS:
        result = prediction.tasks[task]
        decision = "positive" if result.decision else "negative"
        probabilities[f"{TASK_TITLES[task]}: {decision}"] = result.probability
        findings.append([TASK_TITLES[task], round(result.probability, 3), round(result.threshold, 3), decision,
                         "+".join(result.planes)])
    planes = []
    for plane in PLANES:
        if plane in exam.sources:
            source = exam.sources[plane]
            planes.append([plane, series_text(source), source.n_slices,
                           *(round(prediction.plane_probabilities[plane][t], 3) for t in TASKS)])
        else:
            planes.append([plane, NOT_IN_EXAM, None, *(None for _ in TASKS)])
    return PredictOutputs(probabilities=probabilities, findings=findings, planes=planes,
                          report=prediction.to_dict(), warnings=list(exam.warnings),
                          viewer=Viewer(volumes=dict(exam.volumes), cams=prediction.cams))


def series_text(source: SeriesInfo) -> str:
    """The series a plane came from, as a radiographer names it: number, description, echo."""
    parts = []
    if source.series_number is not None:
        parts.append(f"series {source.series_number}")
    if source.description:
        parts.append(f"“{source.description}”")
    if not parts:
        parts.append(source.source)
    if source.echo is not None and source.echo.echoes > 1:
        te = f", TE {source.echo.echo_time_ms:.1f} ms" if source.echo.echo_time_ms is not None else ""
        parts.append(f"echo {source.echo.number} of {source.echo.echoes}{te}")
    return ", ".join(parts)


def error_lines(error: MRNetError, hide_folders: Collection[str | Path] = ()) -> list[str]:
    """The reader's one line per problem (each with its code), without the server's folders."""
    lines = [line.strip() for line in error.one_line().splitlines() if line.strip()]
    if len(lines) > MAX_ERROR_LINES:
        lines = lines[:MAX_ERROR_LINES - 1] + [f"… and {len(lines) - MAX_ERROR_LINES + 1} more problems"]
    for folder in hide_folders:
        # The folder and any subfolders (an upload's own folder) go; the file's base name stays.
        pattern = re.compile(re.escape(str(folder).rstrip("/")) + r"/(?:[^/\s]+/)*")
        lines = [pattern.sub("", line) for line in lines]
    return lines


# ---------------------------------------------------------------------------------------------
# The model card shown on the page


def banner_text(predictor: Predictor) -> str:
    """Always "not for clinical use"; demo bundles (synthetic weights) say so as well."""
    return DEMO_BANNER if predictor.bundle.synthetic else NOT_FOR_CLINICAL_USE


def planes_label(predictor: Predictor) -> str:
    """The planes table's title: whether its per-plane probabilities are calibrated, and how."""
    calibration = predictor.bundle.plane_calibration
    if calibration["calibrated"]:
        return (f"Planes: series used and per-plane probabilities, calibrated ({METHOD_NAMES[calibration['method']]} "
                "fitted on the tuning split)")
    if calibration["method"] == "none":
        return "Planes: series used and per-plane probabilities (raw sigmoids: this bundle carries no calibration)"
    return "Planes: series used and per-plane probabilities (calibrated for some models only, raw for the others)"


def bundle_markdown(predictor: Predictor) -> str:
    """The bundle's version and provenance, as Markdown."""
    manifest = predictor.bundle.manifest
    provenance = manifest.get("provenance", {})
    training = provenance.get("training", {})
    lines = [f"**Model bundle** `{predictor.bundle.version}`"
             + (" — demo bundle, weights trained on synthetic phantoms" if predictor.bundle.synthetic else ""),
             f"- Trained on: {provenance.get('dataset', 'not recorded')}"
             + (f" (data {provenance['data_fingerprint']})" if provenance.get("data_fingerprint") else ""),
             "- Training: " + (", ".join(f"{key} {value}" for key, value in training.items()) or "not recorded"),
             f"- Runtime: ONNX Runtime {predictor.provider}, {predictor.precision}",
             f"- Intended use: {manifest.get('intended_use', NOT_FOR_CLINICAL_USE)}"]
    return "\n".join(lines)

