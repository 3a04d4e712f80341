"""What several test folders share that is not a fixture: paths and small helpers.

Imported as `helpers` (pytest puts this folder on sys.path for the root conftest); the fixtures
themselves live in the conftest.py of the folder that uses them, or in the root one when several do.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The real anonymised knee series lent to the project; another copy can be named with MRNET_TEST_DICOM.
SHARED_DICOM = Path(os.environ.get("MRNET_TEST_DICOM", REPO.parent / "shared" / "data" / "knee-mese-t2-dicom"))


def train_cli(*args: str) -> None:
    """Run `mrnet-train` in-process and fail with its output when it does not exit 0."""
    from typer.testing import CliRunner

    from mrnet.train.cli import app

    result = CliRunner().invoke(app, [*args, "--quiet"] if args[0] not in ("synth", "check") else list(args))
    assert result.exit_code == 0, result.output


def files_under(folder: Path) -> list[Path]:
    """Every file (not folder) below `folder`."""
    return sorted(p for p in folder.rglob("*") if p.is_file())


def write_phantom_study(folder: Path, seed: int = 3, slices: int = 20):
    """A three-plane phantom DICOM study (one series per plane, made-up patient attributes) under
    `folder`; returns the folder and its `Study`."""
    from mrnet.infer.synthetic.phantom import PhantomConfig, make_exam
    from mrnet.infer.synthetic.scanner_files import Study, write_study

    volumes, _ = make_exam(seed, config=PhantomConfig(slice_range=(slices, slices)))
    study = Study(seed=seed)
    write_study(volumes, folder, study)
    return folder, study
