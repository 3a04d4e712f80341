"""What the web demo does, as plain functions that the Gradio layer (`ui.py`) calls.

`predict_files` reads an upload with `read_exam` and runs the shared `Predictor`; `render_slice`
draws one slice with the model's class activation map over it; the rest turns results, errors and
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
from PIL import Image

from mrnet.infer.calibration import METHOD_NAMES
from mrnet.infer.errors import InputError, MRNetError
from mrnet.infer.reading import SeriesInfo, read_exam
from mrnet.infer.predictor import Predictor
from mrnet.infer.registry import NOT_FOR_CLINICAL_USE, PLANES, SLICE_SIZE, TASK_TITLES, TASKS

DEMO_BANNER = "Not for clinical use; demo weights trained on synthetic phantoms"
NOT_IN_EXAM = "not in this exam"
FINDINGS_HEADERS = ["finding", "probability", "threshold", "decision", "fused over"]
PLANES_HEADERS = ["plane", "series", "slices", *(f"p {TASK_TITLES[t]}" for t in TASKS)]
# An error modal listing a thousand unreadable files helps nobody; the rest are counted.
MAX_ERROR_LINES = 12

# The overlay: the positive part of the CAM (evidence for the finding), scaled by its maximum over
# the whole volume so that slices compare; below FLOOR nothing is drawn, above it the colour
# grows more opaque up to OPACITY.
CAM_FLOOR = 0.3
CAM_OPACITY = 0.5


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
# The slice viewer


def strongest_slice(cam: np.ndarray) -> int:
    """The slice holding the CAM's largest value: where the evidence for the finding is strongest."""
    return int(np.unravel_index(int(np.argmax(cam)), cam.shape)[0])


def _hot(level: np.ndarray) -> np.ndarray:
    """A black-red-yellow-white colour map for levels in 0..1, as (..., 3) floats in 0..1."""
    return np.stack([np.clip(3 * level, 0, 1), np.clip(3 * level - 1, 0, 1), np.clip(3 * level - 2, 0, 1)], axis=-1)


def upsample_cam(cam_slice: np.ndarray, size: tuple[int, int] = (SLICE_SIZE, SLICE_SIZE)) -> np.ndarray:
    """A (7, 7) map resized bilinearly to an image's (rows, columns)."""
    image = Image.fromarray(np.ascontiguousarray(cam_slice, dtype=np.float32), mode="F")
    return np.asarray(image.resize((size[1], size[0]), Image.Resampling.BILINEAR), dtype=np.float32)


def render_slice(volume: np.ndarray, cam: np.ndarray, index: int, overlay: bool = True) -> np.ndarray:
    """Slice `index` of a uint8 (S, H, W) volume as an RGB uint8 image, with the (S, 7, 7) CAM over it."""
    index = int(np.clip(index, 0, volume.shape[0] - 1))
    gray = np.repeat(volume[index].astype(np.float32)[..., None] / 255.0, 3, axis=-1)
    if not overlay:
        return (gray * 255).round().astype(np.uint8)
    peak = float(cam.max())
    level = np.clip(upsample_cam(cam[index], volume.shape[1:]) / peak, 0, 1) if peak > 0 else np.zeros(
        volume.shape[1:], np.float32)
    alpha = CAM_OPACITY * np.clip((level - CAM_FLOOR) / (1 - CAM_FLOOR), 0, 1)[..., None]
    return ((gray * (1 - alpha) + _hot(level) * alpha) * 255).round().astype(np.uint8)


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

