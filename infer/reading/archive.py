"""The files of an exam, gathered safely from folders, zips and lists of paths.

A zip is read into memory and never extracted, so nothing is written anywhere. Entries that would
escape a folder (`..`, absolute paths), symbolic links (in zips and in folders) and archives that
expand beyond `MAX_ARCHIVE_BYTES` or by more than `MAX_COMPRESSION_RATIO` are refused.
"""

from __future__ import annotations

import io
import os
import re
import stat
import zipfile
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .types import ExamError, Problem

# What one exam may expand to in memory, and how much a single entry may be compressed.
# Real DICOM compresses 2-20 times; deflate cannot exceed about 1030, so 200 is no real
# study's ratio but well below a bomb's.
MAX_ARCHIVE_BYTES = 2 * 1024**3
MAX_COMPRESSION_RATIO = 200
# Small entries (headers, text) can compress very well and are harmless: the ratio applies above this.
RATIO_CHECK_ABOVE_BYTES = 1024**2
_READ_CHUNK = 1024**2


@dataclass(frozen=True)
class Source:
    """One file of an exam: its `name` relative to the exam (shown in messages), and either its
    `path` on disk or its `data`, read from an archive."""

    name: str
    path: Path | None = None
    data: bytes | None = None

    def head(self, size: int) -> bytes:
        if self.data is not None:
            return self.data[:size]
        with open(self.path, "rb") as handle:
            return handle.read(size)

    @contextmanager
    def open_binary(self):
        handle: BinaryIO = io.BytesIO(self.data) if self.data is not None else open(self.path, "rb")
        try:
            yield handle
        finally:
            handle.close()


def gather(paths: Sequence[str | os.PathLike]) -> tuple[list[Source], list[Problem]]:
    """Every file under `paths` (folders walked recursively, zips read into memory), and the
    entries that could not be read. Names are relative to the folder or zip they came from."""
    roots = [Path(p) for p in paths]
    missing = [str(p) for p in roots if not p.exists()]
    if missing:
        raise ExamError("NOT_FOUND", "no such file or folder", missing[0],
                        problems=[Problem("NOT_FOUND", m, "no such file or folder") for m in missing])
    sources, problems = [], []
    for root in roots:
        if root.is_dir():
            sources += _walk(root)
        elif _is_zip(root):
            found, bad = read_zip(root)
            sources += found
            problems += bad
        else:
            sources.append(Source(root.name, path=root))
    return sources, problems


def _is_zip(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(132)
    # A DICOM file is never taken for a zip, whatever bytes its preamble holds.
    return head[128:132] != b"DICM" and zipfile.is_zipfile(path)


def _walk(root: Path) -> list[Source]:
    """Regular files under `root`; a symbolic link anywhere refuses the whole folder, since it
    could point at files outside the exam."""
    sources, links = [], []
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in sorted(dirs + files):
            path = Path(folder) / name
            if path.is_symlink():
                links.append(path.relative_to(root).as_posix())
        dirs.sort()
        for name in sorted(files):
            path = Path(folder) / name
            if not path.is_symlink() and path.is_file():
                sources.append(Source(path.relative_to(root).as_posix(), path=path))
    if links:
        raise ExamError("UNSAFE_PATH", f"{len(links)} symbolic link(s) in the exam folder; "
                        "copy the files themselves", links[0],
                        problems=[Problem("UNSAFE_PATH", link, "a symbolic link") for link in links])
    return sources


def _unsafe_name(name: str) -> bool:
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return True
    return any(part == ".." for part in re.split(r"[\\/]", name))


def read_zip(path: Path) -> tuple[list[Source], list[Problem]]:
    """The files of a zip, read into memory after checking every entry; unreadable entries are
    returned as problems, unsafe or oversized archives raise."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise ExamError("CORRUPT_FILE", f"not a readable zip ({type(error).__name__})", path.name) from None
    with archive:
        entries = [info for info in archive.infolist() if not info.is_dir()]
        unsafe = [Problem("UNSAFE_ARCHIVE", info.filename, "a symbolic link")
                  for info in entries if stat.S_ISLNK(info.external_attr >> 16)]
        unsafe += [Problem("UNSAFE_ARCHIVE", info.filename, "a path outside the archive's folder")
                   for info in archive.infolist() if _unsafe_name(info.filename)]
        if unsafe:
            raise ExamError("UNSAFE_ARCHIVE", f"{len(unsafe)} unsafe entr{'y' if len(unsafe) == 1 else 'ies'} "
                            "(links or paths leaving the archive)", path.name, problems=unsafe)
        declared = sum(info.file_size for info in entries)
        if declared > MAX_ARCHIVE_BYTES:
            raise ExamError("ARCHIVE_TOO_LARGE", f"expands to {declared / 2**20:.0f} MiB, more than the "
                            f"{MAX_ARCHIVE_BYTES / 2**20:.0f} MiB allowed", path.name)
        for info in entries:
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > RATIO_CHECK_ABOVE_BYTES and ratio > MAX_COMPRESSION_RATIO:
                raise ExamError("ARCHIVE_TOO_LARGE", f"entry {info.filename} is compressed {ratio:.0f}:1, "
                                f"more than the {MAX_COMPRESSION_RATIO}:1 allowed (a zip bomb?)", path.name)

        sources, problems, total = [], [], 0
        for info in entries:
            try:
                data = _read_entry(archive, info, MAX_ARCHIVE_BYTES - total)
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError) as error:
                # A damaged, encrypted or oddly compressed entry among good ones is left out.
                problems.append(Problem("CORRUPT_FILE", info.filename,
                                        f"unreadable zip entry ({type(error).__name__})"))
                continue
            total += len(data)
            sources.append(Source(info.filename, data=data))
    return sources, problems


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> bytes:
    """An entry's bytes, counted as they come: a header that lies about sizes cannot make it
    expand beyond the budget."""
    chunks, size = [], 0
    with archive.open(info) as handle:
        while chunk := handle.read(_READ_CHUNK):
            size += len(chunk)
            if size > budget:
                raise ExamError("ARCHIVE_TOO_LARGE", f"expands beyond the {MAX_ARCHIVE_BYTES / 2**20:.0f} MiB "
                                "allowed", info.filename)
            chunks.append(chunk)
    return b"".join(chunks)
