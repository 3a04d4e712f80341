"""The run folder, and the one module that knows its format (train's twin of `infer/bundle.py`).

    RUN/run.json                      `RunRecord`: kind, config (`RunSpec.identity()`), config_hash,
                                      data_fingerprint, synthetic_data, tune_ids, versions
    RUN/models/<plane>-<task>/
        checkpoint.pt                 resume state, rewritten atomically after every epoch
        metrics.csv                   one row per epoch (`loop.EpochRecord`)
        best.pt                       the selected epoch's weights, its job and summary
        predictions.csv               split, exam_id, label, logit, probability (tune and valid)
        done.json                     the model's summary; it exists once the model is finished
    RUN/report.md, learning_curves.png, roc.png
    RUN/robustness.json               {"results": DIR}: where the latest evaluation under attack that
                                      included this run wrote its files (DIR relative to RUN)

Everything here is text and JSON; the torch files are written by the trainer (`checkpoint.py`).
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from mrnet.infer.errors import InputError
from mrnet.infer.registry import PLANES, TASKS, model_key

from .checkpoint import save_json, save_text
from .spec import RunSpec

RUN_JSON = "run.json"


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


@dataclass(frozen=True)
class RunRecord:
    """run.json: what a run is, what data it saw and with which tuning split."""

    kind: str
    spec: RunSpec
    config_hash: str
    data_fingerprint: str
    synthetic_data: bool
    tune_ids: tuple[str, ...]
    versions: dict

    def to_dict(self) -> dict:
        return {"kind": self.kind, "config": self.spec.identity(), "config_hash": self.config_hash,
                "data_fingerprint": self.data_fingerprint, "synthetic_data": self.synthetic_data,
                "tune_ids": list(self.tune_ids), "versions": self.versions}

    @staticmethod
    def from_dict(data: dict, device: str = "auto", workers: int = 0) -> "RunRecord":
        return RunRecord(kind=data["kind"], spec=RunSpec.from_dict(data["config"], device, workers),
                         config_hash=data["config_hash"], data_fingerprint=data["data_fingerprint"],
                         synthetic_data=bool(data["synthetic_data"]), tune_ids=tuple(data["tune_ids"]),
                         versions=dict(data["versions"]))


@dataclass(frozen=True)
class FinishedModel:
    """What a finished model left: its summary, its per-epoch metrics and its predictions."""

    summary: dict
    epochs: list[dict]
    predictions: dict[str, dict[str, np.ndarray]]


@dataclass(frozen=True)
class ModelFolder:
    """RUN/models/<plane>-<task>/."""

    path: Path

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    @property
    def done_json(self) -> Path:
        return self.path / "done.json"

    @property
    def metrics_csv(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def predictions_csv(self) -> Path:
        return self.path / "predictions.csv"

    @property
    def finished(self) -> bool:
        return self.done_json.exists()

    def summary(self) -> dict:
        return json.loads(self.done_json.read_text())

    def write_summary(self, summary: dict) -> None:
        save_json(summary, self.done_json)

    def write_metrics(self, history: list) -> None:
        """metrics.csv: one row per epoch record (a dataclass), floats to 6 significant digits."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=[f.name for f in fields(history[0])] if history else [],
                                lineterminator="\n")
        writer.writeheader()
        for record in history:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in asdict(record).items()})
        save_text(buffer.getvalue(), self.metrics_csv)

    def read_metrics(self) -> list[dict]:
        with open(self.metrics_csv, newline="") as stream:
            return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(stream)]

    def write_predictions(self, rows: list[tuple[str, str, int, float]]) -> None:
        """predictions.csv from (split, exam_id, label, logit) rows; the probability is the sigmoid."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["split", "exam_id", "label", "logit", "probability"])
        for split, exam_id, label, logit in rows:
            writer.writerow([split, exam_id, label, f"{logit:.6f}", f"{sigmoid(logit):.6f}"])
        save_text(buffer.getvalue(), self.predictions_csv)

    def read_predictions(self) -> dict[str, dict[str, np.ndarray]]:
        """predictions.csv -> {split: {"exam_id", "label", "logit", "probability"}} arrays."""
        out: dict[str, dict[str, list]] = {}
        with open(self.predictions_csv, newline="") as stream:
            for row in csv.DictReader(stream):
                split = out.setdefault(row["split"], {"exam_id": [], "label": [], "logit": [], "probability": []})
                split["exam_id"].append(row["exam_id"])
                split["label"].append(int(row["label"]))
                split["logit"].append(float(row["logit"]))
                split["probability"].append(float(row["probability"]))
        return {s: {k: np.asarray(v) for k, v in cols.items()} for s, cols in out.items()}

    def load(self) -> FinishedModel:
        return FinishedModel(self.summary(), self.read_metrics(), self.read_predictions())


class RunFolder:
    """RUN/: run.json, one folder per model, the report."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def run_json(self) -> Path:
        return self.path / RUN_JSON

    @property
    def report(self) -> Path:
        return self.path / "report.md"

    def exists(self) -> bool:
        return self.run_json.exists()

    def record(self, device: str = "auto", workers: int = 0) -> RunRecord:
        """run.json as a typed record (the spec set to run on `device`); NOT_A_RUN without one."""
        if not self.run_json.exists():
            raise InputError("NOT_A_RUN", "no run.json here: not a training run folder", self.path)
        return RunRecord.from_dict(json.loads(self.run_json.read_text()), device, workers)

    def write_record(self, record: RunRecord) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        save_json(record.to_dict(), self.run_json)

    def point_to_robustness(self, results: str | Path) -> None:
        """Record that the latest evaluation under attack of this run is in `results`."""
        save_json({"results": os.path.relpath(Path(results).resolve(), self.path.resolve())},
                  self.path / "robustness.json")

    def robustness_results(self) -> Path | None:
        """The folder of the latest evaluation under attack that included this run, if any."""
        pointer = self.path / "robustness.json"
        return (self.path / json.loads(pointer.read_text())["results"]).resolve() if pointer.exists() else None

    def model(self, key: str) -> ModelFolder:
        return ModelFolder(self.path / "models" / key)

    def finished_models(self) -> dict[str, FinishedModel]:
        """Every finished model, keyed `plane-task`, in registry order."""
        out = {}
        for plane in PLANES:
            for task in TASKS:
                folder = self.model(model_key(plane, task))
                if folder.finished:
                    out[folder.path.name] = folder.load()
        return out


def read_run(path: str | Path) -> RunRecord:
    """The record of the run in `path` (run.json)."""
    return RunFolder(path).record()


# A replicate set: the same run trained with several seeds, one run folder per seed.
#     SET/seed-<seed>/   a run folder as above       SET/report.md   the set's report (replicates.py)
SEED_FOLDER = "seed-"


def replicate_path(out: str | Path, seed: int, seeds: tuple[int, ...]) -> Path:
    """Where the run of `seed` goes: `out` itself for a single seed, else `out/seed-<seed>`."""
    return Path(out) if len(seeds) == 1 else Path(out) / f"{SEED_FOLDER}{seed}"


def replicate_folders(path: str | Path) -> dict[int, Path]:
    """{seed: run folder} of a replicate set, or of a single run ({its seed: path})."""
    path = Path(path)
    if (path / RUN_JSON).exists():
        return {RunFolder(path).record().spec.seed: path}
    found = {int(p.name[len(SEED_FOLDER):]): p for p in path.glob(f"{SEED_FOLDER}*")
             if p.name[len(SEED_FOLDER):].isdigit() and (p / RUN_JSON).exists()}
    if not found:
        raise InputError("NOT_A_RUN", "no run.json here, nor seed-<N> run folders: not a training run", path)
    return dict(sorted(found.items()))
