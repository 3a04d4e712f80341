"""int8 models for CPU serving: static QDQ quantisation, calibrated on the tuning split, gated on AUC.

    quantize_model(fp32.onnx, int8.onnx, volumes)   # one model, calibrated on uint8 (S, 256, 256) volumes
    quantize_run(staging, entries, run, fusion)     # every model of a run's bundle, with the AUC gate

Weights are int8 per output channel, activations uint8 per tensor (ranges from MinMax calibration);
ORT fuses DequantizeLinear -> Conv -> QuantizeLinear into QLinearConv on the CPU. Only the backbone
(Conv, MaxPool) is quantised: the in-graph preprocessing (uint8 -> normalised float), the head and
the CAM stay fp32. They cost nothing, and the head is where the logit's precision matters.

The gate: on the valid split, each int8 model's AUC must stay within `gate` of its fp32 twin's
(both run in ONNX Runtime, so the delta is quantisation alone), and each task's fused AUC (the
three-plane fusion, same parameters) computed from the models that would ship within `gate` too.
A model that fails keeps only its fp32 file; a task whose fused AUC fails keeps fp32 for its three
models. Never `quantize_dynamic`: it quantises activations per call from each input's own range,
which is slower for convolutions and not calibrated on anything.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import onnx

from mrnet.infer.bundle import sha256_file
from mrnet.infer.dataset import MRNetSplit, load_split
from mrnet.infer.fusion import FusionModel, subset_key
from mrnet.infer.registry import model_key
from mrnet.infer.runtime import open_session

from . import metrics
from .onnx_file import read_metadata, set_metadata
from .rundir import RunRecord

AUC_GATE = 0.005
QUANTIZED_OPS = ("Conv", "MaxPool")
CALIBRATION_METHOD = "MinMax"


def _convs(nodes) -> list[str]:
    return [n.name for n in nodes if n.op_type == "Conv"]


# Which convolutions stay fp32, tried in order until the int8 model keeps its AUC on the tuning
# split. Measured on the tiny demo models: quantising the first convolution's input (the 4 x 4
# averaged, normalised slice, no longer on the uint8 grid) and the last one's output (the features
# the head pools) moved logits by more than their spread across exams; with both kept fp32, 8 of 9
# passed the valid gate against 1 of 9 with every convolution quantised.
LADDER: tuple[tuple[str, Callable[[list], list[str]]], ...] = (
    ("every conv", lambda nodes: []),
    ("all but the first conv", lambda nodes: _convs(nodes)[:1]),
    ("all but the first and last conv", lambda nodes: _convs(nodes)[:1] + _convs(nodes)[-1:]),
)


class _VolumeReader:
    """A CalibrationDataReader over uint8 volumes, one exam plane per batch (S is dynamic)."""

    def __init__(self, volumes: Iterable[np.ndarray]):
        self._volumes = iter(volumes)

    def get_next(self):
        volume = next(self._volumes, None)
        return None if volume is None else {"volume": np.ascontiguousarray(volume, dtype=np.uint8)}

    def __iter__(self):
        return self

    def __next__(self):
        batch = self.get_next()
        if batch is None:
            raise StopIteration
        return batch


def pre_process(fp32_path: str | Path, prepared_path: str | Path) -> None:
    """`quant_pre_process` without its symbolic shape inference: that pass cannot follow the
    exported max-over-slices (Gather over a Range of the dynamic slice count) and stops at the
    head's MatMul; ONNX's own shape inference and ORT's graph optimisation still run."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(fp32_path), str(prepared_path), skip_symbolic_shape=True)


def quantize_model(fp32_path: str | Path, int8_path: str | Path, volumes: Iterable[np.ndarray],
                   op_types: tuple[str, ...] = QUANTIZED_OPS, method: str = CALIBRATION_METHOD,
                   exclude: Callable[[list], list[str]] | None = None, extra_options: dict | None = None,
                   prepared: str | Path | None = None) -> None:
    """Static QDQ quantisation of one exported model, per channel, calibrated on `volumes`.

    `pre_process` runs first, into a temporary file, unless `prepared` is its output already
    (for quantising one model several ways without preparing it each time).
    """
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static

    class Reader(_VolumeReader, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory(prefix="mrnet-quant-") as scratch:
        if prepared is None:
            prepared = Path(scratch) / "prepared.onnx"
            pre_process(fp32_path, prepared)
        # MinMax reduces each tensor to its min and max inside the calibration graph, so memory
        # stays small over any number of exams (and CalibMaxIntermediateOutputs is not needed:
        # in ORT 1.31 it drops the collected batches instead of merging them).
        quantize_static(str(prepared), str(int8_path), Reader(volumes), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=list(op_types),
                        nodes_to_exclude=exclude(list(onnx.load(str(prepared)).graph.node)) if exclude else None,
                        calibrate_method=getattr(CalibrationMethod, method),
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True, **(extra_options or {})})


def calibration_split(run: RunRecord) -> MRNetSplit:
    """The run's tuning exams (held out of training; also what the fusion is fitted on)."""
    return load_split(run.spec.data, "train", run.spec.planes).subset(run.tune_ids)


def calibration_fingerprint(split: MRNetSplit, planes: tuple[str, ...]) -> str:
    """sha256 over the calibration exam ids and the sha256 of every volume file used."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"split": split.split, "ids": list(split.ids), "planes": list(planes)}).encode())
    for exam_id in split.ids:
        for plane in planes:
            digest.update(f"{plane}/{exam_id}:{sha256_file(split.volume_path(exam_id, plane))}".encode())
    return "sha256:" + digest.hexdigest()


def split_logits(path: Path, split: MRNetSplit, plane: str, cams: list | None = None) -> np.ndarray:
    """The model's exam logits over a split, in ONNX Runtime on the CPU (CAMs appended to `cams`)."""
    session = open_session(path)
    logits = []
    for exam_id in split.ids:
        logit, cam = session.run(["logit", "cam"], {"volume": np.ascontiguousarray(split.volume(exam_id, plane))})
        logits.append(float(logit[0]))
        if cams is not None:
            cams.append(cam)
    return np.array(logits)


def _cam_error(fp32: list[np.ndarray], int8: list[np.ndarray]) -> float:
    """Largest |int8 - fp32| CAM value over the exams, relative to the largest |fp32 CAM| value."""
    scale = max(float(np.abs(c).max()) for c in fp32) or 1.0
    return max(float(np.abs(a - b).max()) for a, b in zip(fp32, int8)) / scale


def _delta(fp32: float, int8: float) -> float:
    return int8 - fp32 if not (math.isnan(fp32) or math.isnan(int8)) else float("nan")


def _passes(delta: float, gate: float) -> bool:
    return not math.isnan(delta) and abs(delta) <= gate


def _fused_auc(fusion: FusionModel, logits: dict[str, np.ndarray], labels: np.ndarray) -> float:
    probabilities = [fusion.probability({p: float(logits[p][k]) for p in fusion.planes}) for k in range(labels.size)]
    return metrics.auc(labels, np.asarray(probabilities))


def discordance(a: np.ndarray, b: np.ndarray) -> float:
    """The fraction of exam pairs that two sets of scores put in a different order (ties count)."""
    i, j = np.triu_indices(len(a), k=1)
    return float(np.mean(np.sign(a[i] - a[j]) != np.sign(b[i] - b[j]))) if len(i) else 0.0


def _climb_ladder(fp32_path: Path, int8_path: Path, tune: MRNetSplit, plane: str,
                  gate: float) -> tuple[str, float]:
    """Quantise with the first LADDER step that reorders at most a fraction `gate` of the pairs of
    tuning exams (the last step when none does). An AUC moves only when a positive-negative pair
    swaps, so this bounds the AUC change if swaps fall evenly; it needs no labels and, over all
    pairs, is steadier than the AUC of a small tuning split. The valid split is not looked at here:
    it is kept for the gate. Returns the step's name and its tuning-split discordance."""
    reference = split_logits(fp32_path, tune, plane)
    with tempfile.TemporaryDirectory(prefix="mrnet-quant-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        pre_process(fp32_path, prepared)  # once for every step
        for k, (name, exclude) in enumerate(LADDER):
            quantize_model(fp32_path, int8_path, (tune.volume(i, plane) for i in tune.ids), exclude=exclude,
                           prepared=prepared)
            swapped = discordance(reference, split_logits(int8_path, tune, plane))
            if swapped <= max(gate, 0.0) or k == len(LADDER) - 1:
                return name, swapped
    raise AssertionError("unreachable")


@dataclass
class QuantizeReport:
    """What the manifest records under "quantization", and the lines the export says."""

    manifest: dict
    int8_keys: tuple[str, ...]
    messages: list[str]


def quantize_run(staging: Path, entries: dict[str, dict], run: RunRecord, fusion: dict, gate: float = AUC_GATE,
                 fused_gate: float | None = None, on_model: Callable[[str], None] | None = None) -> QuantizeReport:
    """Quantise every fp32 model in `staging`, gate it on the valid split, add "int8" to passing entries.

    `entries` are the manifest's model entries (changed in place); `fusion` the bundle's fusion dict;
    `fused_gate` (default: `gate`) is the bound on each task's fused AUC delta.
    """
    fused_gate = gate if fused_gate is None else fused_gate
    planes, tasks = run.spec.planes, run.spec.tasks
    tune = calibration_split(run)
    valid = load_split(run.spec.data, "valid", planes)
    fingerprint = calibration_fingerprint(tune, planes)
    messages: list[str] = []
    models: dict[str, dict] = {}
    logits: dict[str, dict[str, np.ndarray]] = {"fp32": {}, "int8": {}}
    for plane in planes:
        for task in tasks:
            key = model_key(plane, task)
            fp32_path = staging / entries[key]["file"]
            int8_path = staging / f"{key}.int8.onnx"
            level, tune_swaps = _climb_ladder(fp32_path, int8_path, tune, plane, gate)
            carry_metadata(fp32_path, int8_path, fingerprint)
            labels = valid.labels[task]
            cams: dict[str, list] = {"fp32": [], "int8": []}
            logits["fp32"][key] = split_logits(fp32_path, valid, plane, cams["fp32"])
            logits["int8"][key] = split_logits(int8_path, valid, plane, cams["int8"])
            fp32_auc, int8_auc = metrics.auc(labels, logits["fp32"][key]), metrics.auc(labels, logits["int8"][key])
            delta = _delta(fp32_auc, int8_auc)
            models[key] = {"quantized": level, "tune_pairs_reordered": tune_swaps,
                           "fp32_auc": fp32_auc, "int8_auc": int8_auc, "auc_delta": delta,
                           "logit_max_abs_diff": float(np.abs(logits["int8"][key] - logits["fp32"][key]).max()),
                           "cam_max_rel_diff": _cam_error(cams["fp32"], cams["int8"]),
                           "passed": _passes(delta, gate)}
            if not models[key]["passed"]:
                why = "AUC undefined on valid (one class only)" if math.isnan(delta) else f"AUC delta {delta:+.4f}"
                messages.append(f"{key}: int8 fails the gate ({why}, gate ±{gate}); keeping fp32")
            if on_model:
                on_model(key)

    fused: dict[str, dict] = {}
    for task in tasks:
        keys = {p: model_key(p, task) for p in planes}
        labels = valid.labels[task]
        full = FusionModel.from_dict(fusion[task][subset_key(planes)])
        shipped = {p: logits["int8" if models[k]["passed"] else "fp32"][k] for p, k in keys.items()}
        fp32_auc = _fused_auc(full, {p: logits["fp32"][k] for p, k in keys.items()}, labels)
        int8_auc = _fused_auc(full, shipped, labels)
        all_int8_auc = _fused_auc(full, {p: logits["int8"][k] for p, k in keys.items()}, labels)
        delta = _delta(fp32_auc, int8_auc)
        n_int8 = sum(models[k]["passed"] for k in keys.values())
        # The gate applies to what ships (int8 where the model passed); all-int8 is for the record.
        fused[task] = {"fp32_auc": fp32_auc, "int8_auc": int8_auc, "auc_delta": delta, "int8_models": n_int8,
                       "all_int8_auc": all_int8_auc, "all_int8_auc_delta": _delta(fp32_auc, all_int8_auc),
                       "passed": _passes(delta, fused_gate) or n_int8 == 0}
        if not fused[task]["passed"]:
            why = "AUC undefined on valid (one class only)" if math.isnan(delta) else f"AUC delta {delta:+.4f}"
            messages.append(f"{task}: fused int8 fails the gate ({why}, gate ±{fused_gate}); keeping fp32 for "
                            f"{', '.join(k for k in keys.values() if models[k]['passed'])}")
            for key in keys.values():
                if models[key]["passed"]:
                    models[key]["passed"] = False
                    models[key]["failed_by"] = "fused gate"
            fused[task]["int8_models"] = 0  # what ships; the delta above is for the set that was tried
            fused[task]["int8_models_tried"] = n_int8

    int8_keys = []
    for key, result in models.items():
        int8_path = staging / f"{key}.int8.onnx"
        if result["passed"]:
            entries[key]["int8"] = {"file": int8_path.name, "sha256": sha256_file(int8_path), "precision": "int8",
                                    "valid_auc": result["int8_auc"], "auc_delta": result["auc_delta"],
                                    "logit_max_abs_diff": result["logit_max_abs_diff"]}
            int8_keys.append(key)
        else:
            int8_path.unlink()
    precision = "int8" if len(int8_keys) == len(models) else ("mixed" if int8_keys else "fp32")
    manifest = {
        "precision": precision,
        "int8_models": len(int8_keys),
        "method": {"format": "QDQ", "weights": "int8 symmetric, per channel", "activations": "uint8, per tensor",
                   "calibration_method": CALIBRATION_METHOD, "op_types": list(QUANTIZED_OPS),
                   "ladder": [n for n, _ in LADDER],
                   "ladder_rule": "per model, the first step that reorders at most a fraction <gate> of the "
                                  "pairs of tuning exams (else the last step)",
                   "tool": "onnxruntime.quantization.quantize_static"},
        "calibration": {"split": "tune", "exams": len(tune), "fingerprint": fingerprint},
        "gate": {"split": "valid", "exams": len(valid), "max_abs_auc_delta": gate,
                 "max_abs_fused_auc_delta": fused_gate, "fusion": subset_key(planes)},
        "models": models,
        "fusion": fused,
    }
    return QuantizeReport(manifest=manifest, int8_keys=tuple(int8_keys), messages=messages)


def carry_metadata(fp32_path: Path, int8_path: Path, fingerprint: str) -> None:
    """The fp32 model's metadata (plane, task, preprocessing...), plus the precision and calibration."""
    metadata = read_metadata(fp32_path)
    metadata.update({"precision": "int8", "calibration_fingerprint": fingerprint})
    set_metadata(int8_path, metadata)
