"""Received instances, grouped by study in the work folder; a study is complete when no new
instance has arrived for `stable_seconds` (what Orthanc calls a stable study).

Files are named after a hash of their SOP Instance UID and folders after a hash of the Study
Instance UID (`study_key`), so the work folder's names carry no identifier, and an instance sent
twice is stored once. An instance that arrives after its study was taken for processing starts
the study anew, and it is processed again when that is stable.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


def study_key(study_uid: str) -> str:
    """What logs and folder names call a study: not its UID, a short hash of it."""
    return hashlib.sha256(study_uid.encode()).hexdigest()[:12]


@dataclass
class _Pending:
    folder: Path
    instances: int = 0
    last: float = field(default_factory=time.monotonic)  # when the last instance arrived
    last_wall: float = field(default_factory=time.time)


@dataclass(frozen=True)
class CompleteStudy:
    key: str
    folder: Path
    instances: int
    last_received: float  # wall-clock time of the last instance (for the latency in the log)


class StudyStore:
    """Thread-safe: the SCP's association threads add files, the service's monitor takes studies."""

    def __init__(self, work_dir: Path, stable_seconds: float):
        self.incoming = work_dir / "incoming"
        self.processing = work_dir / "processing"
        self.partial = work_dir / "partial"
        for folder in (self.incoming, self.processing, self.partial):
            folder.mkdir(parents=True, exist_ok=True)
        self.stable_seconds = stable_seconds
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._sequence = itertools.count(1)  # names of partial files
        self._recover()

    def _recover(self) -> None:
        """Studies left by a node that stopped: what was processing and what was still arriving
        are both taken up again, as if their last instance had just arrived."""
        for folder in sorted(self.processing.iterdir()):
            target = self.incoming / folder.name.split("-")[0]
            if target.exists():
                for file in folder.iterdir():
                    os.replace(file, target / file.name)
                shutil.rmtree(folder)
            else:
                os.replace(folder, target)
        for folder in sorted(self.incoming.iterdir()):
            self._pending[folder.name] = _Pending(folder, instances=sum(1 for _ in folder.iterdir()))
        for leftover in self.partial.iterdir():
            leftover.unlink()

    def partial_path(self) -> Path:
        """Where an association thread writes a file before it is added."""
        return self.partial / f"{threading.get_ident()}-{next(self._sequence)}.part"

    def add(self, written: Path, study_uid: str, sop_instance_uid: str) -> str:
        """Move a fully written file into its study's folder; returns the study's key."""
        key = study_key(study_uid)
        name = hashlib.sha256(sop_instance_uid.encode()).hexdigest()[:24] + ".dcm"
        with self._lock:
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = _Pending(self.incoming / key)
                pending.folder.mkdir(exist_ok=True)
            target = pending.folder / name
            if not target.exists():
                pending.instances += 1
            os.replace(written, target)
            pending.last, pending.last_wall = time.monotonic(), time.time()
        return key

    def take_complete(self) -> list[CompleteStudy]:
        """The studies stable for `stable_seconds`, moved out of the way of new arrivals."""
        now = time.monotonic()
        complete = []
        with self._lock:
            for key, pending in list(self._pending.items()):
                if now - pending.last < self.stable_seconds:
                    continue
                del self._pending[key]
                # Unique across restarts: the name is also the result's name in the outbox.
                folder = self.processing / f"{key}-{time.time_ns():x}"
                os.replace(pending.folder, folder)
                complete.append(CompleteStudy(key, folder, pending.instances, pending.last_wall))
        return complete

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)
