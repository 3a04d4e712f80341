"""How long an uploaded exam lives on the server: until no one needs it any more.

Gradio stores every upload in its upload folder under the hash of its content, so two visitors who
upload the same file (a class trying one sample exam, eight API clients sending one test exam) share
one path. Deleting it the moment the first request has read it would pull it from under the others.
So each browser session or API call *claims* the files it uploaded (when the browser reports the
upload, and when a request joins the queue) and *releases* them once they have been read (or when
the browser tab closes). A file nobody claims any more is deleted `grace_s` seconds later, unless a
new upload of the same content has replaced it meanwhile (a new inode): its uploader deletes that one.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path


def remove_uploads(paths: Iterable[str | Path], upload_root: str | Path) -> int:
    """Delete files now, and their folders once empty; return how many files were deleted.

    Only files under `upload_root` are touched: anything else (the example exams) stays.
    """
    root = Path(upload_root).resolve()
    removed = 0
    for path in paths:
        path = Path(path).resolve()
        if path == root or not path.is_relative_to(root):
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed += 1
        # Gradio keeps each upload in a folder of its own; leave no empty folders behind.
        folder = path.parent
        while folder != root and folder.is_relative_to(root):
            try:
                folder.rmdir()
            except OSError:  # not empty (another upload's file), or gone already
                break
            folder = folder.parent
    return removed


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_ctime_ns


class UploadJanitor:
    """Tracks which sessions still need which uploaded files, and deletes the files nobody needs."""

    def __init__(self, upload_root: str | Path, grace_s: float):
        self.root = Path(upload_root).resolve()
        self.grace_s = grace_s
        self._claims: dict[Path, set[str]] = {}  # file -> sessions that still need it
        self._due: list[tuple[float, Path, tuple[int, int]]] = []  # heap: (deadline, file, identity)
        self._lock = threading.Condition()
        self._worker: threading.Thread | None = None

    def _uploads(self, paths: Iterable[str | Path]) -> list[Path]:
        resolved = (Path(p).resolve() for p in paths)
        return [p for p in resolved if p != self.root and p.is_relative_to(self.root)]

    def claim(self, session: str, paths: Sequence[str | Path]) -> None:
        """`session` has uploaded these files and will read them."""
        with self._lock:
            for path in self._uploads(paths):
                self._claims.setdefault(path, set()).add(session)

    def release(self, session: str, paths: Sequence[str | Path] | None = None) -> None:
        """`session` needs these files (all its files, when `paths` is None) no more."""
        with self._lock:
            mine = self._uploads(paths) if paths is not None else [
                p for p, sessions in self._claims.items() if session in sessions]
            unclaimed = []
            for path in mine:
                sessions = self._claims.get(path, set())
                sessions.discard(session)
                if not sessions:
                    self._claims.pop(path, None)
                    unclaimed.append(path)
            if self.grace_s > 0:
                deadline = time.monotonic() + self.grace_s
                for path in unclaimed:
                    identity = _identity(path)
                    if identity is not None:
                        heapq.heappush(self._due, (deadline, path, identity))
                self._start_worker()
                self._lock.notify()
        if self.grace_s <= 0:  # no grace period (tests): delete at once
            remove_uploads(unclaimed, self.root)

    def pending(self) -> int:
        """Files waiting for their deadline."""
        with self._lock:
            return len(self._due)

    def _start_worker(self) -> None:
        if self._worker is None and self._due:
            self._worker = threading.Thread(target=self._run, name="mrnet-upload-janitor", daemon=True)
            self._worker.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._lock.wait(timeout=self._due[0][0] - time.monotonic() if self._due else None)
                due = []
                while self._due and self._due[0][0] <= time.monotonic():
                    _, path, identity = heapq.heappop(self._due)
                    if path not in self._claims:  # claimed again meanwhile: its new owner releases it
                        due.append((path, identity))
            for path, identity in due:
                # Another identity: a new upload of the same content replaced the file after it was
                # released, and that upload's session deletes it in its turn.
                if _identity(path) == identity:
                    remove_uploads([path], self.root)
