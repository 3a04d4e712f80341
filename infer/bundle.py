"""Model bundles: nine ONNX files and a manifest, verified before anything runs.

    BUNDLE/manifest.json        schema and bundle versions, provenance, per-model sha256, metrics
                                and (optional) calibration, the fusion per task and plane subset,
                                intended use
    BUNDLE/<plane>-<task>.onnx  uint8 (S, 256, 256) in; `logit` (1,) and `cam` (S, 7, 7) out

`load_bundle` refuses a bundle whose files do not match their sha256, whose plane x task grid is
incomplete, or whose manifest is malformed. The ONNX metadata are checked against the manifest when
the sessions open (`Predictor`), since reading them costs a session anyway.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from .calibration import PlaneCalibration, describe
from .errors import BundleError
from .fusion import FusionModel
from .registry import PLANES, PREPROCESSING_VERSION, TASKS, model_key

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
INTENDED_USE = ("Research and education: reproducing and extending MRNet experiments on knee MRI. "
                "Not a medical device; not for diagnosis, triage or any clinical decision.")
# ONNX metadata that must agree with the manifest, model by model.
CHECKED_METADATA = ("plane", "task", "preprocessing")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelFile:
    key: str
    plane: str
    task: str
    path: Path
    sha256: str
    precision: str
    metrics: dict
    calibration: PlaneCalibration | None = None  # None: an older bundle, raw sigmoids per plane


@dataclass(frozen=True)
class Bundle:
    root: Path
    manifest: dict
    models: dict[str, ModelFile]  # key -> the file to run (the precision chosen at load time)
    fusion: dict[str, dict[str, FusionModel]]  # task -> subset key -> model
    precision: str  # what was asked for: fp32 or int8

    @property
    def model_precision(self) -> str:
        """What runs: fp32, int8, or mixed (int8 asked for, some models have only fp32)."""
        used = {m.precision for m in self.models.values()}
        return used.pop() if len(used) == 1 else "mixed"

    @property
    def version(self) -> str:
        return self.manifest["bundle_version"]

    @property
    def synthetic(self) -> bool:
        return bool(self.manifest["provenance"].get("synthetic", False))

    @property
    def manifest_sha256(self) -> str:
        return sha256_file(self.root / MANIFEST)  # the bundle's identity: it pins every model's sha256

    @property
    def plane_calibration(self) -> dict:
        """Whether (and how) the per-plane probabilities are calibrated: `calibration.describe`."""
        return describe(m.calibration for m in self.models.values())

    def planes(self) -> tuple[str, ...]:
        return tuple(p for p in PLANES if any(m.plane == p for m in self.models.values()))


def default_bundle_path() -> Path:
    """The demo bundle shipped with the package (trained on synthetic phantoms)."""
    return Path(str(files("mrnet.models") / "demo"))


def _require(condition: bool, code: str, message: str, path) -> None:
    if not condition:
        raise BundleError(code, message, path)


def available_precisions(manifest: dict) -> set[str]:
    """fp32 always; int8 when at least one model has an int8 file (those that failed the export's
    AUC gate have none and run in fp32: see `load_bundle`)."""
    models = manifest.get("models", {}).values()
    return {"fp32"} | ({"int8"} if any("int8" in m for m in models) else set())


def read_manifest(path: str | Path | None = None) -> dict:
    """The bundle's manifest, parsed but not yet verified."""
    root = Path(path) if path is not None else default_bundle_path()
    manifest_path = root / MANIFEST
    _require(root.is_dir(), "BUNDLE_NOT_FOUND", "model bundle folder does not exist", root)
    _require(manifest_path.is_file(), "MANIFEST_MISSING", f"no {MANIFEST}: not a model bundle", root)
    try:
        return json.loads(manifest_path.read_text())
    except (OSError, ValueError) as error:
        raise BundleError("MANIFEST_INVALID", f"cannot read the manifest ({error})", manifest_path) from None


def load_bundle(path: str | Path | None = None, precision: str = "fp32") -> Bundle:
    """Read and verify a bundle (the shipped demo bundle when `path` is None)."""
    root = Path(path) if path is not None else default_bundle_path()
    manifest_path = root / MANIFEST
    manifest = read_manifest(root)
    _require(isinstance(manifest, dict) and manifest.get("schema_version") == SCHEMA_VERSION, "SCHEMA_VERSION",
             f"manifest schema {manifest.get('schema_version') if isinstance(manifest, dict) else '?'} is not "
             f"the supported {SCHEMA_VERSION}", manifest_path)
    for field in ("bundle_version", "models", "fusion", "provenance", "preprocessing"):
        _require(field in manifest, "MANIFEST_INVALID", f"manifest lacks '{field}'", manifest_path)
    _require(manifest["preprocessing"] == PREPROCESSING_VERSION, "PREPROCESSING_MISMATCH",
             f"bundle preprocessing {manifest['preprocessing']!r} is not this toolkit's {PREPROCESSING_VERSION!r}",
             manifest_path)
    _require(precision in available_precisions(manifest), "PRECISION_UNAVAILABLE",
             f"the bundle has no {precision} models", manifest_path)

    entries = manifest["models"]
    missing = [model_key(p, t) for p in PLANES for t in TASKS if model_key(p, t) not in entries]
    _require(not missing, "INCOMPLETE_GRID", f"the plane x task grid lacks {', '.join(missing)}", manifest_path)
    models = {}
    for key, entry in entries.items():
        # int8: the int8 file where the model has one, its fp32 file where it failed the AUC gate.
        runs = precision if precision != "fp32" and precision in entry else "fp32"
        chosen = {**entry, **entry[runs]} if runs != "fp32" else entry
        file_path = root / chosen["file"]
        _require(Path(chosen["file"]).name == chosen["file"], "MANIFEST_INVALID",
                 f"model file name {chosen['file']!r} must not contain a folder", manifest_path)
        _require(file_path.is_file(), "MODEL_MISSING", f"model file of {key} is missing", file_path)
        _require(sha256_file(file_path) == chosen["sha256"], "CHECKSUM_MISMATCH",
                 f"sha256 of {key} does not match the manifest: the file was changed or damaged", file_path)
        _require((entry["plane"], entry["task"]) in ((p, t) for p in PLANES for t in TASKS) and
                 model_key(entry["plane"], entry["task"]) == key, "MANIFEST_INVALID",
                 f"entry {key} names plane {entry['plane']!r} and task {entry['task']!r}", manifest_path)
        try:
            calibration = PlaneCalibration.from_dict(entry["calibration"]) if "calibration" in entry else None
        except (KeyError, TypeError, ValueError) as error:
            raise BundleError("MANIFEST_INVALID", f"calibration of {key} is malformed ({error})",
                              manifest_path) from None
        models[key] = ModelFile(key=key, plane=entry["plane"], task=entry["task"], path=file_path,
                                sha256=chosen["sha256"], precision=runs,
                                metrics=entry.get("metrics", {}), calibration=calibration)
    fusion = {}
    for task in TASKS:
        _require(task in manifest["fusion"], "MANIFEST_INVALID", f"no fusion for task {task}", manifest_path)
        fusion[task] = {k: FusionModel.from_dict(v) for k, v in manifest["fusion"][task].items()}
    return Bundle(root=root, manifest=manifest, models=models, fusion=fusion, precision=precision)


def check_metadata(model: ModelFile, metadata: dict[str, str], manifest: dict) -> None:
    """The ONNX file's own metadata_props must agree with the manifest."""
    expected = {"plane": model.plane, "task": model.task, "preprocessing": manifest["preprocessing"]}
    for name in CHECKED_METADATA:
        if metadata.get(name) != expected[name]:
            raise BundleError("METADATA_MISMATCH", f"ONNX metadata says {name}={metadata.get(name)!r}, the "
                              f"manifest {expected[name]!r}", model.path)
