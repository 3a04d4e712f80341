"""Fixtures several test folders use: small phantom data sets, a tiny trained run and its bundle,
made on the fly once per test session, and the real DICOM series."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import SHARED_DICOM, train_cli, write_phantom_study

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def shared_dicom() -> Path:
    """The real anonymised knee series (read-only: copy it before changing it)."""
    if not SHARED_DICOM.is_dir():
        pytest.skip(f"the real DICOM series is not at {SHARED_DICOM} (set MRNET_TEST_DICOM to its folder)")
    return SHARED_DICOM


@pytest.fixture(scope="session")
def phantom_study(tmp_path_factory) -> Path:
    """A three-plane phantom DICOM study written by pydicom (made-up patient attributes)."""
    folder, _ = write_phantom_study(tmp_path_factory.mktemp("phantom-study") / "study")
    return folder


@pytest.fixture(scope="session")
def phantom_root(tmp_path_factory) -> Path:
    """A small phantom data set in the MRNet-v1.0 layout (24 train + 8 valid exams)."""
    from mrnet.infer.synthetic.dataset import write_dataset
    from mrnet.infer.synthetic.phantom import PhantomConfig

    root = tmp_path_factory.mktemp("phantom")
    write_dataset(root, 24, 8, seed=7, config=PhantomConfig(slice_range=(17, 20)), workers=2)
    return root


@pytest.fixture(scope="session")
def tiny_run(phantom_root, tmp_path_factory) -> Path:
    """A finished baseline run of all nine tiny models, one epoch each (a fixture, not a model)."""
    out = tmp_path_factory.mktemp("runs") / "baseline"
    train_cli("baseline", str(phantom_root), "--out", str(out), "--preset", "demo", "--epochs", "1")
    return out


@pytest.fixture(scope="session")
def tiny_bundle(tiny_run, tmp_path_factory) -> Path:
    """The nine models of `tiny_run` exported to a verified ONNX bundle."""
    out = tmp_path_factory.mktemp("bundles") / "tiny"
    train_cli("export", str(tiny_run), "--out", str(out))
    return out


@pytest.fixture(scope="session")
def npy_exam(phantom_root, tmp_path_factory) -> Path:
    """One valid-split phantom exam as a folder of axial.npy, coronal.npy and sagittal.npy."""
    import shutil

    folder = tmp_path_factory.mktemp("exam") / "knee"
    folder.mkdir()
    for plane in ("axial", "coronal", "sagittal"):
        shutil.copy(phantom_root / "valid" / plane / "0024.npy", folder / f"{plane}.npy")
    return folder
