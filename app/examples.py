"""The example exams the demo offers: one phantom knee, written as a user would upload it.

The same knee (a fixed seed, ACL tear) is written twice: as MRNet's three npy volumes, and as a
zipped DICOM study of three series as a PACS would export it, so that clicking an example runs
the whole path (upload, reading, series choice, models) and not a shortcut around it.
"""

from __future__ import annotations

import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrnet.infer.synthetic.phantom import PhantomConfig, make_exam
from mrnet.infer.synthetic.scanner_files import Study, write_study

EXAMPLE_SEED = 11
EXAMPLE_LABELS = {"abnormal": 1, "acl": 1, "meniscus": 0}
# Slice counts like a real MRNet exam's lower end: enough to page through, quick to render.
EXAMPLE_CONFIG = PhantomConfig(slice_range=(22, 28))


@dataclass(frozen=True)
class Example:
    label: str
    files: tuple[Path, ...]


def write_examples(folder: str | Path, seed: int = EXAMPLE_SEED) -> list[Example]:
    """Write the example exams under `folder` (which must outlive the app) and describe them."""
    folder = Path(folder)
    volumes, _ = make_exam(seed, labels=EXAMPLE_LABELS, config=EXAMPLE_CONFIG)

    npy_folder = folder / "npy"
    npy_folder.mkdir(parents=True, exist_ok=True)
    npy_files = []
    for plane, volume in volumes.items():
        path = npy_folder / f"{plane}.npy"
        np.save(path, volume)
        npy_files.append(path)

    archive = folder / "phantom-knee-dicom.zip"
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        write_study(volumes, scratch, study=Study(seed=seed))
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as out:
            for path in sorted(p for p in Path(scratch).rglob("*") if p.is_file()):
                out.write(path, path.relative_to(scratch).as_posix())

    return [Example("Phantom knee, ACL tear: MRNet npy volumes (3 planes)", tuple(npy_files)),
            Example("Phantom knee, ACL tear: zipped DICOM study (3 series)", (archive,))]
