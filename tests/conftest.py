"""Shared fixtures: small phantom data sets made on the fly, once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO = Path(__file__).resolve().parents[1]
SHARED_DICOM = REPO.parent / "shared" / "data" / "knee-mese-t2-dicom"


@pytest.fixture(scope="session")
def phantom_root(tmp_path_factory) -> Path:
    """A small phantom data set in the MRNet-v1.0 layout (24 train + 8 valid exams)."""
    from mrnet.infer.phantom import PhantomConfig, write_dataset

    root = tmp_path_factory.mktemp("phantom")
    write_dataset(root, 24, 8, seed=7, config=PhantomConfig(slice_range=(17, 20)), workers=2)
    return root
