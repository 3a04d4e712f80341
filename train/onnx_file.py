"""What the exporter and the quantiser both do to an ONNX file: read and write its metadata.

`metadata_props` carry plane, task, preprocessing, versions and metrics (see `export.py`); the
int8 twin of a model carries its fp32 model's metadata plus its own precision and calibration.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import onnx


def read_metadata(path: str | Path) -> dict[str, str]:
    """The file's metadata_props as a dict (the weights are not loaded)."""
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def set_metadata(path: str | Path, metadata: dict[str, str]) -> None:
    """Replace the file's metadata_props, stamp the producer, and check the result in full."""
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "mrnet-toolkit"
    model.producer_version = version("mrnet-toolkit")
    onnx.save(model, str(path))
    onnx.checker.check_model(str(path), full_check=True)
