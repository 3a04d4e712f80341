"""Export a run to a verified bundle: nine ONNX models (preprocessing inside), fusion, manifest.

Every file passes `onnx.checker.check_model(full_check=True)` and a parity check against the torch
model at S in {1, 17, 61} (rtol 1e-3, atol 1e-4) in ONNX Runtime; export fails loudly otherwise.
With precision int8, each model also gets a calibrated int8 twin where it passes the AUC gate
(train/quantize.py). `export_nets` makes a bundle from torch models without a run (benchmarks).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from mrnet.infer.bundle import INTENDED_USE, MANIFEST, SCHEMA_VERSION, sha256_file
from mrnet.infer.errors import InputError, RunError
from mrnet.infer.fusion import FusionModel, all_subsets, subset_key
from mrnet.infer.registry import (MAX_SLICES, NOT_FOR_CLINICAL_USE, PLANES, PREPROCESSING_VERSION, SLICE_SIZE, TASKS,
                                  model_key)
from mrnet.infer.runtime import open_session

from .checkpoint import load_torch
from .rundir import RunFolder, RunRecord
from .calibration import calibrate_run, fused_valid, fusion_manifest
from .fusion import fit_fusion
from .model import MRNet, VolumeModel
from .onnx_file import set_metadata

OPSET = 18
MAX_EXPORT_SLICES = 128
PARITY_SLICES = (1, 17, MAX_SLICES)
PARITY_RTOL, PARITY_ATOL = 1e-3, 1e-4
PRECISIONS = ("fp32", "int8")


class ExportError(RunError):
    """An export that failed on its own (e.g. the ONNX graph lost parity with torch): exit status 4."""


def export_onnx(net: MRNet, path: Path) -> None:
    """The dynamo exporter, a dynamic slice axis 1..128, opset 18; uint8 volume in, logit and cam out."""
    model = VolumeModel(net).eval()
    example = torch.zeros((17, SLICE_SIZE, SLICE_SIZE), dtype=torch.uint8)
    slices = torch.export.Dim("slices", min=1, max=MAX_EXPORT_SLICES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), dynamo=True, dynamic_shapes=({0: slices},),
                                    opset_version=OPSET, input_names=["volume"], output_names=["logit", "cam"],
                                    verbose=False)
    program.save(str(path))


def check_parity(net: MRNet, path: Path, seed: int = 0) -> float:
    """Largest |torch - ORT| over logit and CAM at S in {1, 17, 61}; raises when out of tolerance."""
    session = open_session(path)
    model = VolumeModel(net).eval()
    rng = np.random.default_rng(seed)
    worst = 0.0
    for slices in PARITY_SLICES:
        volume = rng.integers(0, 256, (slices, SLICE_SIZE, SLICE_SIZE), dtype=np.uint8)
        with torch.no_grad():
            expected = [t.numpy() for t in model(torch.from_numpy(volume))]
        got = session.run(["logit", "cam"], {"volume": volume})
        for name, e, g in zip(("logit", "cam"), expected, got):
            if e.shape != g.shape or not np.allclose(g, e, rtol=PARITY_RTOL, atol=PARITY_ATOL):
                raise ExportError("PARITY_FAILED", f"ONNX {name} differs from torch at S={slices} "
                                  f"(max |diff| {np.abs(g - e).max():.3g})", path)
            worst = max(worst, float(np.abs(g - e).max()))
    return worst


def _semver_from_run(run: RunRecord) -> str:
    """Bundles start at 1.0.0; the build metadata carry the run's configuration hash."""
    return f"1.0.0+{run.config_hash}"


def export_model(net: MRNet, path: Path, metadata: dict[str, str]) -> dict:
    """One checked ONNX file with its metadata; returns the manifest entry's file fields."""
    net.eval()
    export_onnx(net, path)
    worst = check_parity(net, path)
    set_metadata(path, {**metadata, "preprocessing": PREPROCESSING_VERSION, "notice": NOT_FOR_CLINICAL_USE})
    return {"file": path.name, "sha256": sha256_file(path), "precision": "fp32", "parity_max_abs_diff": worst}


def mean_logit_fusion(planes: tuple[str, ...] = PLANES, tasks: tuple[str, ...] = TASKS) -> dict:
    """Untrained fusion for every task and plane subset: the mean of the plane logits, threshold 0.5."""
    return {task: {subset_key(s): FusionModel(planes=s, weights=tuple(1.0 / len(s) for _ in s), bias=0.0,
                                              threshold=0.5, method="mean-logit").to_dict()
                   for s in all_subsets() if set(s) <= set(planes)} for task in tasks}


def _manifest(entries: dict, fusion: dict, provenance: dict, bundle_version: str, created: str, **extra) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "bundle_version": bundle_version,
        "created": created,
        "toolkit_version": version("mrnet-toolkit"),
        "notice": NOT_FOR_CLINICAL_USE,
        "intended_use": INTENDED_USE,
        "preprocessing": PREPROCESSING_VERSION,
        "input": {"name": "volume", "dtype": "uint8", "shape": ["slices", SLICE_SIZE, SLICE_SIZE],
                  "slices": [1, MAX_EXPORT_SLICES]},
        "outputs": {"logit": [1], "cam": ["slices", 7, 7]},
        "provenance": provenance,
        "models": entries,
        "fusion": fusion,
        **extra,
    }


def _write_bundle(out: Path, build: Callable[[Path], dict]) -> Path:
    """Build the bundle in a staging folder beside `out` (`build` writes the files and returns the
    manifest), then rename it into place: a failed export leaves nothing behind."""
    if out.exists() and any(out.iterdir()):
        raise InputError("OUTPUT_NOT_EMPTY", "bundle folder exists and is not empty; choose a new one", out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))  # same file system: rename
    try:
        manifest = build(staging)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            out.rmdir()
        staging.chmod(0o755)  # mkdtemp makes it private
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def export_nets(nets: dict[str, MRNet], out: str | Path, fusion: dict | None = None,
                provenance: dict | None = None, bundle_version: str = "0.0.0+untrained",
                on_model: Callable[[str], None] | None = None) -> Path:
    """A valid bundle from nine torch models without a training run (benchmarks, tests, demos).

    `nets` maps every `plane-task` key to its MRNet; the fusion defaults to the mean of the plane
    logits. The manifest marks the bundle as untrained unless `provenance` says otherwise.
    """
    out = Path(out)
    missing = [model_key(p, t) for p in PLANES for t in TASKS if model_key(p, t) not in nets]
    if missing:
        raise InputError("RUN_INCOMPLETE", f"no model for {', '.join(missing)}")
    provenance = provenance or {"dataset": "none (untrained weights)", "synthetic": True, "training": None}

    def build(staging: Path) -> dict:
        entries = {}
        for plane in PLANES:
            for task in TASKS:
                key = model_key(plane, task)
                net = nets[key]
                entries[key] = {**export_model(net, staging / f"{key}.onnx", {
                    "plane": plane, "task": task, "model": key, "backbone": net.backbone_name,
                    "training": "untrained", "toolkit_version": version("mrnet-toolkit")}),
                    "plane": plane, "task": task, "backbone": net.backbone_name}
                if on_model:
                    on_model(key)
        return _manifest(entries, fusion or mean_logit_fusion(), provenance, bundle_version,
                         datetime.now(timezone.utc).isoformat(timespec="seconds"))

    return _write_bundle(out, build)


def export_run(run_dir: str | Path, out: str | Path, on_model: Callable[[str], None] | None = None,
               precision: str = "fp32", auc_gate: float | None = None,
               on_message: Callable[[str], None] | None = None) -> Path:
    """Export the nine models of a run (its selected epochs) into a new bundle folder `out`.

    precision "int8" also writes a calibrated int8 twin of each model that passes the AUC gate
    (see train/quantize.py); `on_message` hears which models fail it and keep fp32 only.
    """
    from . import quantize

    if precision not in PRECISIONS:
        raise InputError("BAD_OPTION", f"one of {', '.join(PRECISIONS)}, not {precision!r}", option="precision")
    run_dir, out = Path(run_dir), Path(out)
    folder = RunFolder(run_dir)
    run = folder.record()
    config = run.spec.identity()
    planes, tasks = run.spec.planes, run.spec.tasks
    if out.exists() and any(out.iterdir()):
        raise InputError("OUTPUT_NOT_EMPTY", "bundle folder exists and is not empty; choose a new one", out)
    for plane in planes:
        for task in tasks:
            if not folder.model(model_key(plane, task)).finished:
                raise InputError("RUN_INCOMPLETE", f"model {model_key(plane, task)} has not finished training",
                                 run_dir)
    fusion, fusion_report = fit_fusion(run_dir, planes, tasks)
    # Per-plane calibration (Platt, fitted on the tuning split; train/calibration.py) and the fused
    # probability's calibration on valid.
    calibrations = calibrate_run(run_dir)
    fusion_calibration = fusion_manifest(fused_valid(run_dir, fusion, planes, tasks))
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")

    def build(staging: Path) -> dict:
        entries = {}
        for plane in planes:
            for task in tasks:
                key = model_key(plane, task)
                best = load_torch(folder.model(key).best)
                summary = best["summary"]
                net = MRNet(best["backbone"])
                net.load_state_dict(best["model"])
                files = export_model(net, staging / f"{key}.onnx", {
                    "plane": plane, "task": task, "model": key, "backbone": best["backbone"],
                    "training": summary["mode"], "eps": repr(summary["eps"]),
                    "retrain_pct": repr(summary["retrain_pct"]), "protocol": str(summary["protocol"]),
                    "clamp": summary["clamp"], "toolkit_version": version("mrnet-toolkit"),
                    "data_fingerprint": run.data_fingerprint,
                    "synthetic_data": str(run.synthetic_data).lower(),
                    "selected_epoch": str(summary["selected_epoch"]), "select_on": summary["select_on"],
                    "metrics_tune": json.dumps(summary["tune"]), "metrics_valid": json.dumps(summary["valid"])})
                entries[key] = {**files, "plane": plane, "task": task, "backbone": best["backbone"],
                                "metrics": {"tune": summary["tune"], "valid": summary["valid"],
                                            "valid_auc_ci95": summary["valid_auc_ci95"]}}
                if key in calibrations:
                    entries[key]["calibration"] = calibrations[key].to_manifest()
                if on_model:
                    on_model(key)
        extra = {"fusion_metrics": fusion_report, "fusion_calibration": fusion_calibration}
        if precision == "int8":
            report = quantize.quantize_run(staging, entries, run, fusion,
                                           quantize.AUC_GATE if auc_gate is None else auc_gate,
                                           on_model=(lambda key: on_model(f"{key} int8")) if on_model else None)
            for message in report.messages:
                if on_message:
                    on_message(message)
            extra["quantization"] = report.manifest
        provenance = {
            "dataset": "synthetic knee phantom (MRNet-v1.0 layout)" if run.synthetic_data else "MRNet-v1.0",
            "data_fingerprint": run.data_fingerprint, "synthetic": run.synthetic_data,
            "training": {"kind": run.kind, "preset": config["preset"]["name"],
                         "backbone": config["preset"]["backbone"], "eps": config["eps"],
                         "retrain_pct": config["retrain_pct"], "protocol": config["protocol"],
                         "clamp": config["clamp"], "select_on": config["select_on"], "seed": config["seed"],
                         "config_hash": run.config_hash},
            "versions": run.versions}
        return _manifest(entries, fusion, provenance, _semver_from_run(run), created, **extra)

    return _write_bundle(out, build)
