"""The MRNet-v1.0 data set layout: label files, memory-mapped volumes and a full validation.

    ROOT/{train,valid}/{axial,coronal,sagittal}/NNNN.npy   uint8 (S, 256, 256)
    ROOT/{train,valid}-{abnormal,acl,meniscus}.csv          "0000,1" lines, no header

Volumes are opened with ``mmap_mode="r"``: a full data set never sits in memory.
This module uses numpy only, so both the trainer and `mrnet-predict --split` read data the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DatasetError
from .registry import MAX_SLICES, MIN_SLICES, PLANES, SLICE_SIZE, SPLITS, TASKS

_ID_PATTERN = re.compile(r"^\d{4}$")

ERROR = "error"
UNUSABLE_LABEL = -1
WARNING = "warning"


@dataclass(frozen=True)
class DatasetProblem:
    """One finding of `check_dataset`: a severity, a stable code, the file and what is wrong."""

    severity: str
    code: str
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{self.severity.upper()} {where}: {self.message} [{self.code}]"


def label_csv_path(root: Path, split: str, task: str) -> Path:
    return Path(root) / f"{split}-{task}.csv"


def volume_path(root: Path, split: str, plane: str, exam_id: str) -> Path:
    return Path(root) / split / plane / f"{exam_id}.npy"


def parse_label_csv(path: Path) -> tuple[dict[str, int], list[DatasetProblem]]:
    """Read one label file. Returns its labels (`UNUSABLE_LABEL` where a label is not 0/1) and problems."""
    labels: dict[str, int] = {}
    problems: list[DatasetProblem] = []
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return labels, [DatasetProblem(ERROR, "MISSING_LABEL_CSV", name, "label file is missing")]
    except (OSError, UnicodeDecodeError) as exc:
        return labels, [DatasetProblem(ERROR, "UNREADABLE_LABEL_CSV", name, f"cannot read: {exc}")]

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 2:
            problems.append(DatasetProblem(ERROR, "MALFORMED_LINE", name,
                                    f"expected 'id,label', got {line[:40]!r}", number))
            continue
        exam_id, label = fields
        if not _ID_PATTERN.match(exam_id):
            if number == 1 and not exam_id.isdigit():
                problems.append(DatasetProblem(ERROR, "CSV_HEADER", name,
                                        f"MRNet label files have no header, got {line[:40]!r}", number))
            else:
                problems.append(DatasetProblem(ERROR, "MALFORMED_LINE", name,
                                        f"exam id {exam_id[:20]!r} is not 4 zero-padded digits", number))
            continue
        if exam_id in labels:
            problems.append(DatasetProblem(ERROR, "DUPLICATE_ID", name, f"exam {exam_id} appears twice", number))
            continue
        if label not in ("0", "1"):
            problems.append(DatasetProblem(ERROR, "LABEL_NOT_BINARY", name,
                                    f"label of exam {exam_id} is {label[:20]!r}, not 0 or 1", number))
            labels[exam_id] = UNUSABLE_LABEL  # the id is known; only its label is not
            continue
        labels[exam_id] = int(label)
    if not labels and not problems:
        problems.append(DatasetProblem(ERROR, "EMPTY_LABEL_CSV", name, "label file holds no exams"))
    return labels, problems


def _short_list(items: list[str], most: int = 8) -> str:
    shown = ", ".join(items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")


def _check_labels(root: Path, split: str) -> tuple[list[str], dict[str, np.ndarray], list[DatasetProblem]]:
    """Parse the three label files of a split and cross-check them."""
    problems: list[DatasetProblem] = []
    per_task: dict[str, dict[str, int]] = {}
    for task in TASKS:
        labels, found = parse_label_csv(label_csv_path(root, split, task))
        per_task[task] = labels
        problems += found

    reference_task = TASKS[0]
    reference_ids = set(per_task[reference_task])
    for task in TASKS[1:]:
        ids = set(per_task[task])
        if not ids or not reference_ids or ids == reference_ids:
            continue
        missing = sorted(reference_ids - ids)
        extra = sorted(ids - reference_ids)
        detail = []
        if missing:
            detail.append(f"lacks {_short_list(missing)}")
        if extra:
            detail.append(f"has extra {_short_list(extra)}")
        problems.append(DatasetProblem(
            ERROR, "IDS_DIFFER_BETWEEN_CSVS", str(label_csv_path(root, split, task)),
            f"exam ids differ from {label_csv_path(root, split, reference_task).name}: " + "; ".join(detail)))

    ids = sorted(set().union(*(set(v) for v in per_task.values())))
    arrays = {task: np.array([per_task[task].get(i, UNUSABLE_LABEL) for i in ids], dtype=np.int64)
              for task in TASKS}

    if all(per_task.values()):
        abnormal = per_task["abnormal"]
        for task in ("acl", "meniscus"):
            odd = [i for i, y in per_task[task].items() if y == 1 and abnormal.get(i) == 0]
            if odd:
                problems.append(DatasetProblem(
                    WARNING, "POSITIVE_BUT_NOT_ABNORMAL", str(label_csv_path(root, split, task)),
                    f"{len(odd)} exam(s) positive here but abnormal=0: {_short_list(odd)}"))
    return ids, arrays, problems


def _check_volumes(root: Path, split: str, ids: list[str], deep: bool
                   ) -> tuple[dict[str, list[int]], list[DatasetProblem]]:
    """Check every plane folder: missing and extra files, dtype, shape, slice count."""
    problems: list[DatasetProblem] = []
    slice_counts: dict[str, list[int]] = {}
    expected = {f"{i}.npy" for i in ids}
    for plane in PLANES:
        folder = Path(root) / split / plane
        counts: list[int] = []
        slice_counts[plane] = counts
        if not folder.is_dir():
            problems.append(DatasetProblem(ERROR, "MISSING_PLANE_FOLDER", str(folder), "folder is missing"))
            continue
        present = {p.name for p in folder.iterdir()}
        for name in sorted(present - expected):
            problems.append(DatasetProblem(ERROR, "EXTRA_FILE", str(folder / name),
                                    "file does not belong to any exam in the label files"))
        for name in sorted(expected - present):
            problems.append(DatasetProblem(ERROR, "MISSING_VOLUME", str(folder / name), "volume is missing"))
        for name in sorted(expected & present):
            path = folder / name
            try:
                volume = np.load(path, mmap_mode="r", allow_pickle=False)
            except Exception as exc:  # noqa: BLE001 - any failure to parse is reported, not raised
                problems.append(DatasetProblem(ERROR, "UNREADABLE_VOLUME", str(path), f"not a readable npy file ({exc})"))
                continue
            if volume.dtype != np.uint8:
                problems.append(DatasetProblem(ERROR, "WRONG_DTYPE", str(path), f"dtype is {volume.dtype}, expected uint8"))
            if volume.ndim != 3 or volume.shape[1:] != (SLICE_SIZE, SLICE_SIZE):
                problems.append(DatasetProblem(ERROR, "WRONG_SHAPE", str(path),
                                        f"shape is {volume.shape}, expected (S, {SLICE_SIZE}, {SLICE_SIZE})"))
                continue
            counts.append(int(volume.shape[0]))
            if not MIN_SLICES <= volume.shape[0] <= MAX_SLICES:
                problems.append(DatasetProblem(WARNING, "SLICE_COUNT_OUT_OF_RANGE", str(path),
                                        f"{volume.shape[0]} slices, MRNet has {MIN_SLICES} to {MAX_SLICES}"))
            if deep and volume.dtype == np.uint8:
                low, high = int(volume.min()), int(volume.max())
                if (low, high) != (0, 255):
                    problems.append(DatasetProblem(WARNING, "INTENSITY_RANGE", str(path),
                                            f"values span {low}..{high}; MRNet volumes span 0..255"))
    return slice_counts, problems


@dataclass
class SplitSummary:
    exams: int
    prevalence: dict[str, float]
    slice_range: dict[str, tuple[int, int] | None]


@dataclass
class CheckReport:
    root: str
    problems: list[DatasetProblem] = field(default_factory=list)
    summaries: dict[str, SplitSummary] = field(default_factory=dict)

    @property
    def errors(self) -> list[DatasetProblem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[DatasetProblem]:
        return [p for p in self.problems if p.severity == WARNING]


def check_dataset(root: str | Path, deep: bool = False) -> CheckReport:
    """Validate an MRNet-v1.0 folder and list every problem found, each naming its file.

    `deep` also reads every voxel to check that each volume spans 0..255 (slow on the real set).
    """
    root = Path(root)
    report = CheckReport(root=str(root))
    if not root.is_dir():
        report.problems.append(DatasetProblem(ERROR, "MISSING_ROOT", str(root), "data set folder does not exist"))
        return report
    split_ids: dict[str, set[str]] = {}
    for split in SPLITS:
        if not (root / split).is_dir():
            report.problems.append(DatasetProblem(ERROR, "MISSING_SPLIT_FOLDER", str(root / split), "folder is missing"))
        ids, labels, problems = _check_labels(root, split)
        report.problems += problems
        split_ids[split] = set(ids)
        slice_counts: dict[str, list[int]] = {plane: [] for plane in PLANES}
        if (root / split).is_dir():
            slice_counts, problems = _check_volumes(root, split, ids, deep)
            report.problems += problems
        prevalence = {task: float(np.mean(labels[task][labels[task] >= 0])) if (labels[task] >= 0).any()
                      else float("nan") for task in TASKS}
        report.summaries[split] = SplitSummary(
            exams=len(ids), prevalence=prevalence,
            slice_range={p: (min(c), max(c)) if c else None for p, c in slice_counts.items()})
    shared = split_ids.get("train", set()) & split_ids.get("valid", set())
    if shared:
        report.problems.append(DatasetProblem(ERROR, "IDS_SHARED_BETWEEN_SPLITS", str(root),
                                       f"exam ids in both train and valid: {_short_list(sorted(shared))}"))
    return report


@dataclass(frozen=True)
class MRNetSplit:
    """One split of an MRNet-layout data set: exam ids, their labels, and memory-mapped volumes."""

    root: Path
    split: str
    ids: tuple[str, ...]
    labels: dict[str, np.ndarray]  # task -> int64 array aligned with `ids`

    def volume_path(self, exam_id: str, plane: str) -> Path:
        return volume_path(self.root, self.split, plane, exam_id)

    def volume(self, exam_id: str, plane: str) -> np.ndarray:
        """The uint8 (S, 256, 256) volume, memory-mapped (read-only)."""
        return np.load(self.volume_path(exam_id, plane), mmap_mode="r", allow_pickle=False)

    def label(self, exam_id: str, task: str) -> int:
        return int(self.labels[task][self.ids.index(exam_id)])

    def subset(self, ids: list[str] | tuple[str, ...]) -> "MRNetSplit":
        index = {exam_id: k for k, exam_id in enumerate(self.ids)}
        missing = [i for i in ids if i not in index]
        if missing:
            raise DatasetError("UNKNOWN_EXAM_ID", f"no exam {_short_list(missing)} in the {self.split} split",
                               self.root)
        rows = np.array([index[i] for i in ids], dtype=np.int64)
        return MRNetSplit(self.root, self.split, tuple(ids), {t: v[rows] for t, v in self.labels.items()})

    def __len__(self) -> int:
        return len(self.ids)


def load_split(root: str | Path, split: str, planes: tuple[str, ...] = PLANES) -> MRNetSplit:
    """Open one split, refusing it with every problem listed when its labels or files are unusable.

    Only the label files and the presence of each volume are checked here (fast); run
    `check_dataset` for dtype and shape checks of every file.
    """
    root = Path(root)
    if split not in SPLITS:
        raise DatasetError("UNKNOWN_SPLIT", f"split must be one of {', '.join(SPLITS)}, not {split!r}", root)
    if not root.is_dir():
        raise DatasetError("MISSING_ROOT", "data set folder does not exist", root)
    ids, labels, problems = _check_labels(root, split)
    for plane in planes:
        for exam_id in ids:
            path = volume_path(root, split, plane, exam_id)
            if not path.is_file():
                problems.append(DatasetProblem(ERROR, "MISSING_VOLUME", str(path), "volume is missing"))
    errors = [p for p in problems if p.severity == ERROR]
    if errors:
        lines = "\n  ".join(str(p) for p in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise DatasetError(errors[0].code, f"the {split} split cannot be used:\n  {lines}{more}", root)
    return MRNetSplit(root=root, split=split, ids=tuple(ids), labels=labels)


def fingerprint(splits: list[MRNetSplit], planes: tuple[str, ...] = PLANES) -> str:
    """A short, stable fingerprint of the data a model saw.

    It hashes the ids, the labels, each volume's shape and a 64 KiB sample from the middle of
    every file, so that a relabelled or regenerated data set changes it without reading every
    voxel of an 8 GB set.
    """
    digest = hashlib.sha256()
    for split in splits:
        digest.update(json.dumps({"split": split.split, "ids": list(split.ids),
                                  "labels": {t: v.tolist() for t, v in split.labels.items()}}).encode())
        for exam_id in split.ids:
            for plane in planes:
                path = split.volume_path(exam_id, plane)
                size = path.stat().st_size
                digest.update(f"{plane}/{exam_id}:{size}".encode())
                with open(path, "rb") as handle:
                    handle.seek(max(0, size // 2 - 32768))
                    digest.update(handle.read(65536))
    return "sha256:" + digest.hexdigest()[:16]
