"""Fixtures of the web demo's tests: one Predictor, a phantom exam on disk (the server itself is
`mrnet.app.ui.serving`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mrnet.infer.synthetic.phantom import PhantomConfig, make_exam

PHANTOM_LABELS = {"abnormal": 1, "acl": 1, "meniscus": 0}


@pytest.fixture(scope="session")
def predictor():
    """The shipped demo bundle, opened once for every app test (as the server does)."""
    from mrnet.infer.predictor import Predictor

    return Predictor()


@pytest.fixture(scope="session")
def phantom_files(tmp_path_factory) -> list[Path]:
    """A small phantom exam as MRNet npy files: axial.npy, coronal.npy, sagittal.npy."""
    volumes, _ = make_exam(3, labels=PHANTOM_LABELS, config=PhantomConfig(slice_range=(17, 20)))
    folder = tmp_path_factory.mktemp("phantom-exam")
    paths = []
    for plane, volume in volumes.items():
        np.save(folder / f"{plane}.npy", volume)
        paths.append(folder / f"{plane}.npy")
    return paths
