"""DICOM studies for the report and node tests: the shared real knee series and a phantom
three-plane study written by pydicom with made-up patient attributes (`FAKE_PATIENT`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import SHARED_DICOM
from mrnet.infer.synthetic.phantom import PhantomConfig, make_exam
from mrnet.infer.synthetic.scanner_files import FAKE_PATIENT, Study, write_study

__all__ = ["FAKE_PATIENT", "phantom_study", "real_dicom", "write_phantom_study"]


@pytest.fixture(scope="session")
def real_dicom() -> Path:
    """The shared real anonymised knee series (read-only: copy it before changing anything)."""
    path = Path(os.environ.get("MRNET_TEST_DICOM", SHARED_DICOM))
    if not path.is_dir():
        pytest.skip(f"the real knee series is not at {path} (set MRNET_TEST_DICOM)")
    return path


def write_phantom_study(folder: Path, seed: int = 3, slices: int = 20) -> tuple[Path, Study]:
    """A three-plane phantom study (one series per plane) under `folder`."""
    volumes, _ = make_exam(seed, config=PhantomConfig(slice_range=(slices, slices)))
    study = Study(seed=seed)
    write_study(volumes, folder, study)
    return folder, study


@pytest.fixture(scope="session")
def phantom_study(tmp_path_factory) -> Path:
    folder, _ = write_phantom_study(tmp_path_factory.mktemp("phantom-study") / "study")
    return folder


def copy_tree(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target
