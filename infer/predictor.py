"""The Predictor: a verified bundle, ONNX Runtime sessions opened once, fused probabilities out.

    predictor = Predictor()                      # the shipped demo bundle, best device
    result = predictor.predict(read_exam(path))  # per task: fused probability and decision
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bundle import Bundle, available_precisions, check_metadata, load_bundle, read_manifest
from .calibration import plane_probability
from .errors import BundleError, InputError
from .fusion import subset_key
from .reading import Exam
from .registry import NOT_FOR_CLINICAL_USE, PLANES, SLICE_SIZE, TASKS, model_key
from .runtime import CPU, CUDA, gpu_present, open_session, physical_cores

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "int8")
DEMO_NOTICE = "Demo weights trained on synthetic phantoms."


@dataclass(frozen=True)
class TaskResult:
    probability: float
    decision: bool
    threshold: float
    planes: tuple[str, ...]


@dataclass
class Prediction:
    """Everything one exam's prediction says; `to_dict()` is what the JSON output holds."""

    tasks: dict[str, TaskResult]
    plane_probabilities: dict[str, dict[str, float]]
    planes: tuple[str, ...]
    cams: dict[str, dict[str, np.ndarray]]
    bundle_version: str
    bundle_sha256: str
    synthetic_weights: bool
    provider: str
    precision: str
    timings: dict[str, float]
    exam: dict = field(default_factory=dict)
    model_precisions: dict[str, str] = field(default_factory=dict)
    plane_logits: dict[str, dict[str, float]] = field(default_factory=dict)
    plane_calibration: dict = field(default_factory=dict)  # calibrated or not, and how (Bundle.plane_calibration)

    @property
    def notice(self) -> str:
        return NOT_FOR_CLINICAL_USE + (" " + DEMO_NOTICE if self.synthetic_weights else "")

    def to_dict(self, include_cams: bool = False) -> dict:
        out = {
            "notice": self.notice,
            "tasks": {t: {"probability": r.probability, "decision": r.decision, "threshold": r.threshold,
                          "planes_used": list(r.planes)} for t, r in self.tasks.items()},
            "plane_probabilities": self.plane_probabilities,
            "plane_probabilities_calibration": self.plane_calibration,
            "plane_logits": self.plane_logits,
            "planes": list(self.planes),
            "bundle": {"version": self.bundle_version, "manifest_sha256": self.bundle_sha256,
                       "synthetic_weights": self.synthetic_weights},
            "runtime": {"provider": self.provider, "precision": self.precision,
                        **({"model_precisions": self.model_precisions} if self.precision == "mixed" else {})},
            "timings_s": self.timings,
            "provenance": self.exam,
        }
        if include_cams:
            out["cams"] = {p: {t: c.tolist() for t, c in tasks.items()} for p, tasks in self.cams.items()}
        return out


class Predictor:
    """Loads a bundle once and keeps one ONNX Runtime session per model."""

    def __init__(self, bundle: str | Path | None = None, device: str = "auto", precision: str = "auto",
                 threads: int | None = None):
        import onnxruntime as ort

        if device not in DEVICES:
            raise InputError("BAD_OPTION", f"one of {', '.join(DEVICES)}, not {device!r}", option="device")
        if precision not in PRECISIONS:
            raise InputError("BAD_OPTION", f"one of {', '.join(PRECISIONS)}, not {precision!r}", option="precision")
        want_cuda = device == "cuda" or (device == "auto" and gpu_present() and CUDA in ort.get_available_providers())
        if precision == "auto":
            # int8 QDQ models pay off on CPU; on a GPU fp32 is the faster path.
            precision = "int8" if not want_cuda and "int8" in available_precisions(read_manifest(bundle)) else "fp32"
        self.bundle: Bundle = load_bundle(bundle, precision=precision)
        self.bundle_sha256 = self.bundle.manifest_sha256
        self.precision = self.bundle.model_precision  # "mixed" when some models failed the int8 gate
        self.model_precisions = {key: model.precision for key, model in self.bundle.models.items()}
        self.plane_calibration = self.bundle.plane_calibration
        threads = threads or physical_cores()
        providers = [CUDA, CPU] if want_cuda else [CPU]
        self.sessions = {}
        ort.set_default_logger_severity(4 if device == "auto" else 3)
        try:
            for key, model in self.bundle.models.items():
                try:
                    session = open_session(model.path, threads, spinning=False, providers=providers)
                except Exception as error:  # noqa: BLE001 - ORT raises plain exceptions for bad files
                    raise BundleError("MODEL_UNLOADABLE", f"ONNX Runtime cannot load {key}: {error}",
                                      model.path) from None
                check_metadata(model, session.get_modelmeta().custom_metadata_map, self.bundle.manifest)
                self.sessions[key] = session
        finally:
            ort.set_default_logger_severity(2)
        used = {s.get_providers()[0] for s in self.sessions.values()}
        self.provider = used.pop() if len(used) == 1 else "mixed"
        if device == "cuda" and self.provider != CUDA:
            raise InputError("CUDA_UNAVAILABLE", "cuda was asked for, but ONNX Runtime could not use CUDA here "
                             "(no GPU, or CUDA/cuDNN libraries missing)", option="device")

    def predict(self, exam: Exam | dict[str, np.ndarray]) -> Prediction:
        """Run the models of every plane the exam has, and fuse each task over those planes."""
        volumes = exam.volumes if isinstance(exam, Exam) else exam
        planes = tuple(p for p in PLANES if p in volumes)
        if not planes:
            raise InputError("NO_PLANES", "the exam holds none of the axial, coronal or sagittal planes")
        timings: dict[str, float] = {}
        logits: dict[str, dict[str, float]] = {t: {} for t in TASKS}
        cams: dict[str, dict[str, np.ndarray]] = {}
        started = time.perf_counter()
        for plane in planes:
            volume = np.ascontiguousarray(volumes[plane], dtype=np.uint8)
            if volume.ndim != 3 or volume.shape[1:] != (SLICE_SIZE, SLICE_SIZE):
                raise InputError("INVALID_VOLUME", f"{plane} volume has shape {volume.shape}, expected "
                                 f"(S, {SLICE_SIZE}, {SLICE_SIZE})")
            plane_started = time.perf_counter()
            cams[plane] = {}
            # The three task models of a plane read the same prepared input.
            for task in TASKS:
                logit, cam = self.sessions[model_key(plane, task)].run(["logit", "cam"], {"volume": volume})
                logits[task][plane] = float(logit.reshape(-1)[0])
                cams[plane][task] = cam
            timings[f"models_{plane}"] = time.perf_counter() - plane_started
        timings["models_total"] = time.perf_counter() - started

        results = {}
        for task in TASKS:
            fusion = self.bundle.fusion[task][subset_key(planes)]
            probability = fusion.probability(logits[task])
            results[task] = TaskResult(probability=probability, decision=probability >= fusion.threshold,
                                       threshold=fusion.threshold, planes=fusion.planes)
        # Calibrated where the bundle carries a calibration (Platt), the raw sigmoid otherwise.
        plane_probabilities = {p: {t: plane_probability(logits[t][p], self.bundle.models[model_key(p, t)].calibration)
                                   for t in TASKS} for p in planes}
        return Prediction(tasks=results, plane_probabilities=plane_probabilities, planes=planes, cams=cams,
                          bundle_version=self.bundle.version, bundle_sha256=self.bundle_sha256,
                          synthetic_weights=self.bundle.synthetic, provider=self.provider,
                          precision=self.precision, timings=timings,
                          exam=exam.to_dict() if isinstance(exam, Exam) else {},
                          model_precisions=self.model_precisions,
                          plane_logits={p: {t: logits[t][p] for t in TASKS} for p in planes},
                          plane_calibration=self.plane_calibration)
